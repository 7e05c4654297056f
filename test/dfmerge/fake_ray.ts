/**
 * A small stand-in for a Ray head's Jobs REST API (the routes and JSON shapes of
 * ray/dashboard/modules/job/job_head.py in Ray 2.58) on 127.0.0.1, for tests
 * where the real dashboard cannot run: each submitted entrypoint really runs
 * (`sh -c ENTRYPOINT` in its own process group), its output is the job's logs,
 * its exit status gives SUCCEEDED or FAILED, and stop kills it (STOPPED).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeJob {
  submission_id: string;
  entrypoint: string;
  body: Record<string, unknown>;
  status: 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'STOPPED';
  message: string;
  logs: string;
  child?: ChildProcess;
  stopRequests: number;
}

export interface FakeRay {
  address: string;
  jobs: Map<string, FakeJob>;
  /** Every request as "METHOD PATH". */
  requests: string[];
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (d: Buffer) => { s += d.toString('utf8'); });
    req.on('end', () => resolve(s));
  });
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
  res.end(text);
}

export async function startFakeRay(): Promise<FakeRay> {
  const jobs = new Map<string, FakeJob>();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '').split('?')[0]!;
      requests.push(`${req.method} ${path}`);
      if (req.method === 'GET' && path === '/api/version') return reply(res, 200, { version: '4', ray_version: '2.58.0-fake', ray_commit: 'fake' });
      if (req.method === 'POST' && path === '/api/jobs/') {
        const body = JSON.parse(await readBody(req)) as Record<string, unknown>;
        const id = typeof body.submission_id === 'string' ? body.submission_id : `raysubmit_${jobs.size}`;
        if (typeof body.entrypoint !== 'string') return reply(res, 400, 'entrypoint is required');
        if (jobs.has(id)) return reply(res, 500, `Job with submission_id ${id} already exists. Please use a different submission_id.`);
        const job: FakeJob = { submission_id: id, entrypoint: body.entrypoint, body, status: 'PENDING', message: 'Job has not started yet.', logs: '', stopRequests: 0 };
        jobs.set(id, job);
        const env = { ...process.env, ...((body.runtime_env as { env_vars?: Record<string, string> } | undefined)?.env_vars ?? {}) };
        const child = spawn('/bin/sh', ['-c', body.entrypoint], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
        job.child = child;
        job.status = 'RUNNING';
        job.message = 'Job is currently running.';
        child.stdout!.on('data', (d: Buffer) => { job.logs += d.toString('utf8'); });
        child.stderr!.on('data', (d: Buffer) => { job.logs += d.toString('utf8'); });
        child.on('close', (code) => {
          if (job.status === 'STOPPED') return;
          job.status = code === 0 ? 'SUCCEEDED' : 'FAILED';
          job.message = code === 0 ? 'Job finished successfully.' : `Job entrypoint command failed with exit code ${code}, last available logs (truncated to 20,000 chars):\n${job.logs.slice(-2000)}`;
        });
        return reply(res, 200, { job_id: null, submission_id: id });
      }
      const m = /^\/api\/jobs\/([^/]+)(\/logs|\/stop)?$/.exec(path);
      const job = m ? jobs.get(decodeURIComponent(m[1]!)) : undefined;
      if (!m || !job) return reply(res, 404, `Job ${m?.[1] ?? '?'} does not exist`);
      if (req.method === 'GET' && m[2] === undefined) {
        return reply(res, 200, { type: 'SUBMISSION', submission_id: job.submission_id, entrypoint: job.entrypoint, status: job.status, message: job.message, error_type: null });
      }
      if (req.method === 'GET' && m[2] === '/logs') return reply(res, 200, { logs: job.logs });
      if (req.method === 'POST' && m[2] === '/stop') {
        job.stopRequests++;
        const running = job.status === 'RUNNING' || job.status === 'PENDING';
        if (running) {
          job.status = 'STOPPED';
          job.message = 'Job was intentionally stopped.';
          try { process.kill(-job.child!.pid!, 'SIGKILL'); } catch { /* gone */ }
        }
        return reply(res, 200, { stopped: running });
      }
      return reply(res, 405, 'method not allowed');
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `http://127.0.0.1:${port}`, jobs, requests,
    close: async () => {
      for (const j of jobs.values()) if (j.status === 'RUNNING') try { process.kill(-j.child!.pid!, 'SIGKILL'); } catch { /* gone */ }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
