/**
 * The `ray` executor: each evaluation job is submitted to an existing Ray
 * cluster through the Ray Jobs REST API of its dashboard (`--ray-address
 * http://HOST:8265`, docs/design.md §8):
 *
 *   POST /api/jobs/                 {entrypoint, submission_id, entrypoint_num_cpus, entrypoint_num_gpus, runtime_env, metadata}
 *   GET  /api/jobs/{id}             {status: PENDING | RUNNING | SUCCEEDED | FAILED | STOPPED, message, ...}
 *   GET  /api/jobs/{id}/logs        {logs}
 *   POST /api/jobs/{id}/stop        {stopped}
 *
 * The entrypoint is `WORKER evaluate-candidate SPEC`; the worker merges and
 * evaluates there and writes its result next to the spec on the scratch path
 * both sides see; when that file is not visible here the result is read from
 * the job's logs (the worker prints it last). A job that fails, is stopped or
 * passes the evaluation timeout (counted from submission; it is then stopped) is
 * a failed evaluation with its reason; Ctrl-C stops every job in flight.
 * Node's global fetch; no client library.
 */
import { DfmergeError, UsageError } from '../errors.js';
import { resultFromLogs } from './candidate.js';
import { Slots, readResultFile, workerEntrypoint, type EvaluationJob, type Executor, type JobOutcome } from './executor.js';

export class RayError extends DfmergeError {}

export interface RayExecutorOptions {
  /** The dashboard's address, http://HOST:PORT. */
  address: string;
  slots: number;
  /** Seconds from submission before a job is stopped and counts as failed (0: no limit). */
  timeoutSeconds: number;
  /** The shell words that run dfmerge on a worker. */
  worker: string;
  /** entrypoint_num_cpus / entrypoint_num_gpus of each job (the resources Ray reserves for it). */
  cpus?: number;
  gpus?: number;
  /** Ray runtime_env of each job (env_vars, working_dir, ...). */
  runtimeEnv?: Record<string, unknown>;
  /** Names this run's jobs: dfmerge-RUNID-INDEX-ATTEMPT. */
  runId: string;
  /** Seconds between status polls (default 1). */
  pollSeconds?: number;
}

type RayStatus = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'STOPPED';
const TERMINAL = new Set<RayStatus>(['SUCCEEDED', 'FAILED', 'STOPPED']);
/** Consecutive failed polls before a job counts as lost. */
const POLL_RETRIES = 10;

/** The Ray Jobs REST API of one cluster. */
export class RayJobsClient {
  readonly address: string;
  constructor(address: string) {
    let u: URL;
    try { u = new URL(address); } catch { throw new UsageError(`--ray-address ${address}: not a URL; give the dashboard's address, e.g. http://127.0.0.1:8265`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--ray-address ${address}: must be http:// or https:// (the Ray dashboard, port 8265 by default)`);
    this.address = address.replace(/\/+$/, '');
  }

  private async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.address}${path}`, {
        method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new RayError('RayUnreachable', `Ray at ${this.address}: ${method} ${path} failed (${cause}); is the head running with its dashboard (ray start --head --dashboard-host ...)?`);
    }
    const text = await res.text();
    if (!res.ok) throw new RayError('RayRequestFailed', `Ray at ${this.address}: ${method} ${path} answered ${res.status}: ${text.trim().split('\n').slice(-2).join(' | ').slice(0, 500)}`);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new RayError('RayBadAnswer', `Ray at ${this.address}: ${method} ${path} answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`);
    }
  }

  /** The cluster's Ray version (GET /api/version): checks the address before any job is sent. */
  async version(): Promise<string> {
    const v = await this.call('GET', '/api/version') as { ray_version?: unknown };
    return typeof v.ray_version === 'string' ? v.ray_version : 'unknown';
  }

  async submit(body: Record<string, unknown>): Promise<string> {
    const r = await this.call('POST', '/api/jobs/', body) as { submission_id?: unknown; job_id?: unknown };
    const id = r.submission_id ?? r.job_id;
    if (typeof id !== 'string') throw new RayError('RayBadAnswer', `Ray at ${this.address}: POST /api/jobs/ returned no submission_id`);
    return id;
  }

  async status(id: string): Promise<{ status: RayStatus; message: string }> {
    const r = await this.call('GET', `/api/jobs/${encodeURIComponent(id)}`) as { status?: unknown; message?: unknown };
    if (typeof r.status !== 'string' || !['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED'].includes(r.status)) {
      throw new RayError('RayBadAnswer', `Ray at ${this.address}: job ${id} has the unknown status ${JSON.stringify(r.status)}`);
    }
    return { status: r.status as RayStatus, message: typeof r.message === 'string' ? r.message : '' };
  }

  async logs(id: string): Promise<string> {
    const r = await this.call('GET', `/api/jobs/${encodeURIComponent(id)}/logs`) as { logs?: unknown };
    return typeof r.logs === 'string' ? r.logs : '';
  }

  async stop(id: string): Promise<boolean> {
    const r = await this.call('POST', `/api/jobs/${encodeURIComponent(id)}/stop`) as { stopped?: unknown };
    return r.stopped === true;
  }
}

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(done, ms);
  function done() { clearTimeout(t); signal?.removeEventListener('abort', done); resolve(); }
  signal?.addEventListener('abort', done, { once: true });
});

export class RayExecutor implements Executor {
  readonly kind = 'ray' as const;
  readonly slots: number;
  readonly client: RayJobsClient;
  private readonly pool: Slots;

  constructor(private readonly o: RayExecutorOptions) {
    this.slots = o.slots;
    this.client = new RayJobsClient(o.address);
    this.pool = new Slots(o.slots);
  }

  jobId(job: EvaluationJob): string {
    return `dfmerge-${this.o.runId}-${job.index}-${job.attempt}`;
  }

  async run(job: EvaluationJob, signal: AbortSignal): Promise<JobOutcome> {
    const release = await this.pool.acquire();
    const id = this.jobId(job);
    try {
      if (signal.aborted) return { ok: false, aborted: true, reason: 'cancelled before it was submitted', log: '' };
      const started = Date.now();
      try {
        await this.client.submit({
          entrypoint: workerEntrypoint(this.o.worker, job.specPath), submission_id: id,
          ...(this.o.cpus !== undefined ? { entrypoint_num_cpus: this.o.cpus } : {}),
          ...(this.o.gpus !== undefined ? { entrypoint_num_gpus: this.o.gpus } : {}),
          ...(this.o.runtimeEnv ? { runtime_env: this.o.runtimeEnv } : {}),
          metadata: { dfmerge_run: this.o.runId, dfmerge_index: String(job.index) },
        });
      } catch (e) {
        return { ok: false, aborted: false, reason: `could not submit the Ray job ${id}: ${(e as Error).message}`, log: '', job: id };
      }
      let failures = 0;
      let last: { status: RayStatus; message: string } = { status: 'PENDING', message: '' };
      for (;;) {
        if (signal.aborted) {
          await this.stopQuietly(id);
          return { ok: false, aborted: true, reason: `cancelled (Ray job ${id} stopped)`, log: '', job: id };
        }
        const timeout = this.o.timeoutSeconds;
        if (timeout > 0 && Date.now() - started > timeout * 1000) {
          await this.stopQuietly(id);
          return { ok: false, aborted: false, reason: `timed out after ${timeout} s (Ray job ${id} stopped; it was ${last.status})`, log: await this.logsQuietly(id), job: id };
        }
        try {
          last = await this.client.status(id);
          failures = 0;
        } catch (e) {
          if (++failures >= POLL_RETRIES) return { ok: false, aborted: false, reason: `lost Ray job ${id}: ${(e as Error).message}`, log: '', job: id };
        }
        if (TERMINAL.has(last.status)) break;
        await sleep((this.o.pollSeconds ?? 1) * 1000, signal);
      }
      const log = await this.logsQuietly(id);
      if (last.status !== 'SUCCEEDED') {
        return { ok: false, aborted: false, reason: `Ray job ${id} ${last.status}${last.message ? `: ${last.message.trim().split('\n').slice(-3).join(' | ')}` : ''}`, log: log.slice(-8000), job: id };
      }
      const file = readResultFile(job.resultPath);
      if (file.result) return { ok: true, result: file.result, job: id };
      try {
        const fromLogs = resultFromLogs(log, `the logs of Ray job ${id}`);
        if (fromLogs) return { ok: true, result: fromLogs, job: id };
      } catch (e) {
        return { ok: false, aborted: false, reason: (e as Error).message, log: log.slice(-8000), job: id };
      }
      return { ok: false, aborted: false, reason: `Ray job ${id} SUCCEEDED but left no result (${file.problem}; none in its logs either)`, log: log.slice(-8000), job: id };
    } finally {
      release();
    }
  }

  private async stopQuietly(id: string): Promise<void> {
    try { await this.client.stop(id); } catch { /* already gone, or the head is down: nothing more to do */ }
  }

  private async logsQuietly(id: string): Promise<string> {
    try { return await this.client.logs(id); } catch { return ''; }
  }

  async stopStale(jobId: string): Promise<void> {
    await this.stopQuietly(jobId);
  }

  async close(): Promise<void> {}
}
