/**
 * `optimize --parallel 2 --executor ray` against a real Ray head on 127.0.0.1
 * (`ray start --head` in .venv-ray, made by scripts/ray/make_venv.sh from the
 * local package stores): the journal's proposals and results equal the `local`
 * executor's with the same seed, and the node is stopped (its processes, found
 * by this test's own Ray temp dir, killed by PID) even when the run fails.
 *
 * Runs when DFMERGE_RAY_TEST=1 (.ci/run sets it; making the venv takes a minute
 * or two) or when .venv-ray already exists; skipped, saying why, otherwise and
 * when Ray's dashboard cannot start (scripts/ray/make_venv.sh names the missing
 * modules). The Jobs API itself is also tested, always, against a stand-in
 * (parallel.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { optimize, type OptimizeOptions } from '../../src/dfmerge/optimize.js';
import { ROOT, tempDir } from '../helpers.js';
import { makeTinyRun } from './support.js';

const VENV = join(ROOT, '.venv-ray');

function prepare(): string | false {
  if (process.env.DFMERGE_RAY_TEST !== '1' && !existsSync(join(VENV, 'bin', 'ray'))) {
    return 'set DFMERGE_RAY_TEST=1 to make .venv-ray (scripts/ray/make_venv.sh) and start a local Ray head; .ci/run does';
  }
  const r = spawnSync(join(ROOT, 'scripts', 'ray', 'make_venv.sh'), [VENV], { encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) return `Ray cannot run here: ${(r.stdout + r.stderr).trim().split('\n').filter((l) => !l.includes('is ignored')).slice(-1)[0] ?? `make_venv.sh exited ${r.status}`}`;
  return false;
}

const skip = prepare();
if (skip) process.stdout.write(`# Ray integration test skipped: ${skip}\n`);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** PIDs of processes whose command line names `dir` (the Ray processes of this test's head). */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)) pids.push(Number(p));
    } catch { /* gone */ }
  }
  return pids;
}

test('optimize --parallel 2 --executor ray on a local Ray head gives the journal and results of the local executor', { skip, timeout: 1_200_000 }, async () => {
  const root = tempDir();
  const run = await makeTinyRun(root, 2, 0.05);
  // Ray's socket paths must stay short: its temp dir directly under /tmp
  const rayTmp = mkdtempSync('/tmp/dfm-ray-');
  const [gcs, dashboard] = [await freePort(), await freePort()];
  const env = { ...process.env, RAY_USAGE_STATS_ENABLED: '0', RAY_ADDRESS: '' };
  try {
    const start = spawnSync(join(VENV, 'bin', 'ray'), ['start', '--head', '--node-ip-address', '127.0.0.1', '--port', String(gcs),
      '--dashboard-host', '127.0.0.1', '--dashboard-port', String(dashboard), '--include-dashboard', 'true', '--num-cpus', '2',
      '--temp-dir', rayTmp, '--disable-usage-stats'], { encoding: 'utf8', env, timeout: 300_000 });
    assert.equal(start.status, 0, `ray start failed:\n${(start.stdout + start.stderr).slice(-4000)}`);
    const address = `http://127.0.0.1:${dashboard}`;
    for (let i = 0; i < 120; i++) {
      try { if ((await fetch(`${address}/api/version`)).ok) break; } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 1000));
    }
    const opts = (extra: Partial<OptimizeOptions>): OptimizeOptions => ({
      base: run.base, models: run.models, tasks: run.tasks.map((validation) => ({ validation })), initPoints: 2, iterations: 2,
      fisherSamples: 3, seed: 5, baselines: false, parallel: 2, workerThreads: 1, out: join(root, `out-${extra.executor}`), ...extra,
    });
    const local = await optimize(opts({ executor: 'local' }));
    const viaRay = await optimize(opts({ executor: 'ray', rayAddress: address, jobCpus: 1, scratch: join(root, 'shared') }));
    const results = (journal: string) => readFileSync(journal, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; index: number })
      .filter((r) => r.type === 'evaluation').sort((a, b) => a.index - b.index)
      .map((r) => { const { seconds: _s, finished: _f, job: _j, ...rest } = r as Record<string, unknown>; return rest; });
    assert.deepEqual(results(viaRay.journal), results(local.journal));
    const jobs = readFileSync(viaRay.journal, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; job?: string }).filter((r) => r.type === 'dispatch');
    assert.equal(jobs.length, 4);
    for (const j of jobs) {
      const info = await (await fetch(`${address}/api/jobs/${j.job!}`)).json() as { status: string; entrypoint_num_cpus?: number };
      assert.equal(info.status, 'SUCCEEDED', `Ray job ${j.job!}`);
    }
  } finally {
    // not `ray stop`: it stops every Ray node of the machine, other users' too; this head's
    // processes all name its temp dir on their command lines
    for (const pid of processesUsing(rayTmp)) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    for (let i = 0; i < 50 && processesUsing(rayTmp).length > 0; i++) await new Promise((r) => setTimeout(r, 200));
    for (const pid of processesUsing(rayTmp)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    rmSync(rayTmp, { recursive: true, force: true });
  }
});
