// `optimize --parallel q` (docs/design.md §8): batches of q proposals evaluated as
// jobs of an executor (`local` processes; `ray` against a stand-in for the Jobs
// REST API, test/dfmerge/fake_ray.ts; the real Ray head is in ray_cluster.test.ts),
// every dispatch journalled before its end, the same results whatever executor
// runs them, a coordinator killed -9 in the middle of a batch resumed to exactly
// the uninterrupted run, failed and timed-out jobs journalled with their reason,
// and Ctrl-C stopping the jobs in flight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { optimize, type OptimizeOptions } from '../../src/dfmerge/optimize.js';
import { processAlive } from '../../src/io/leftovers.js';
import { ROOT, runCli, tempDir } from '../helpers.js';
import { makeTinyRun } from './support.js';
import { startFakeRay } from './fake_ray.js';

const root = tempDir();
const run = await makeTinyRun(root, 2, 0.05);
let n = 0;

interface Rec { type: string; index: number; lambda: number[]; scores?: Record<string, number>; objective?: number | null; failed?: boolean; error?: string; phase?: string; job?: string; executor?: string }
const lines = (journal: string): Rec[] => readFileSync(journal, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec).filter((r) => r.type !== 'header');
/** The evaluations of a journal in index order, without times and job ids (what must not depend on who ran them). */
const results = (journal: string) => lines(journal).filter((r) => r.type === 'evaluation').sort((a, b) => a.index - b.index)
  .map((r) => ({ index: r.index, lambda: r.lambda, scores: r.scores, objective: r.objective, failed: r.failed, phase: r.phase }));

/**
 * A Fisher-weighted DF-Merge run scored by `evaluator` (below): a hash of the merged weights, so any
 * difference in the merge a job computes shows in its score (the tiny task's accuracy is too coarse).
 */
function opts(extra: Partial<OptimizeOptions> = {}): OptimizeOptions {
  return {
    base: run.base, models: run.models, tasks: run.tasks.map((validation) => ({ validation })), evaluator: `${evaluator} {dir}`,
    out: join(root, `out${n++}`), initPoints: 3, iterations: 3, fisherSamples: 3, seed: 5, baselines: false, workerThreads: 1, ...extra,
  };
}

// An evaluator that scores a candidate by a hash of its weights (a deterministic function of λ).
// Calls are numbered atomically (mkdir); when HOLD exists, call 3 writes its PID to HELD and sleeps.
const evaluator = join(root, 'ev.sh');
writeFileSync(evaluator, `#!/bin/sh
d=$(dirname "$0")
n=1; while ! mkdir "$d/calls/$n" 2>/dev/null; do n=$((n + 1)); done
if [ -f "$d/HOLD" ] && [ $n -eq 3 ]; then echo $$ > "$d/HELD"; exec sleep 300; fi
if [ -f "$d/SLOW" ] && [ $n -eq 2 ]; then exec sleep 300; fi
h=$(sha256sum "$1/model.safetensors" | cut -c1-6)
echo "{\\"task0\\": 0.$((0x$h % 900 + 100)), \\"task1\\": 0.5}"
`);
chmodSync(evaluator, 0o755);
const resetCalls = () => { rmSync(join(root, 'calls'), { recursive: true, force: true }); mkdirSync(join(root, 'calls')); };

/** Each index dispatched before it ends, and batch b dispatched only after every evaluation of batch b − 1 ended. */
function assertBatches(journal: string, q: number, total: number): void {
  const ls = lines(journal);
  const pos = (type: string, i: number) => ls.findIndex((r) => r.type === type && r.index === i);
  for (let i = 0; i < total; i++) {
    assert.ok(pos('dispatch', i) >= 0 && pos('dispatch', i) < pos('evaluation', i), `evaluation ${i}: dispatched, then ended`);
    const batchStart = Math.floor(i / q) * q;
    for (let j = batchStart - q; j < batchStart; j++) if (j >= 0) assert.ok(pos('evaluation', j) < pos('dispatch', i), `${i} dispatched after ${j} ended`);
  }
}

test('--parallel 2 (local jobs) journals every dispatch, is reproducible, and --executor local at q = 1 equals the in-process run', async () => {
  resetCalls();
  const inProcess = await optimize(opts());
  const localQ1 = await optimize(opts({ executor: 'local' }));
  assert.deepEqual(results(localQ1.journal), results(inProcess.journal), 'a job computes what the in-process evaluation computes');
  assert.ok(lines(localQ1.journal).filter((r) => r.type === 'evaluation').every((r) => /^local:\d+$/.test(r.job ?? '')), 'each evaluation names its job');

  const a = await optimize(opts({ parallel: 2 }));
  const b = await optimize(opts({ parallel: 2 }));
  assert.equal(a.history.length, 6);
  assert.deepEqual(results(b.journal), results(a.journal), 'same seed and q: same proposals and results');
  assertBatches(a.journal, 2, 6);
  assert.deepEqual(results(a.journal).slice(0, 3), results(inProcess.journal).slice(0, 3), 'the initial design does not depend on q');
  assert.notDeepEqual(results(a.journal).slice(3).map((r) => r.lambda), results(inProcess.journal).slice(3).map((r) => r.lambda), 'q = 2 proposes its BO points in pairs (kriging believer)');
  assert.deepEqual(readdirSync(root).filter((f) => f.includes('.candidates-')), [], 'no scratch folder left');
});

function cliArgs(out: string, extra: string[] = []): string[] {
  return ['optimize', '--base', run.base, ...run.models.flatMap((m) => ['-m', m]), ...run.tasks.flatMap((t) => ['--task', t]),
    '--no-fisher', '--evaluator', `${evaluator} {dir}`, '--init-points', '3', '--iterations', '3', '--seed', '3',
    '-o', out, '--no-baselines', '-q', '--parallel', '2', '--worker-threads', '1', ...extra];
}

test('a coordinator killed -9 during a batch resumes to the uninterrupted run: in-flight work dispatched again, nothing finished repeated', async () => {
  resetCalls();
  rmSync(join(root, 'HOLD'), { force: true });
  const whole = runCli(cliArgs(join(root, 'whole')));
  assert.equal(whole.status, 0, whole.stderr);
  const want = results(join(root, 'whole.journal.jsonl'));
  assert.equal(want.length, 6);

  resetCalls();
  writeFileSync(join(root, 'HOLD'), '');
  const out = join(root, 'killed');
  const journal = `${out}.journal.jsonl`;
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'dfmerge.js'), ...cliArgs(out)], { stdio: 'ignore' });
  const held = join(root, 'HELD');
  rmSync(held, { force: true });
  for (let i = 0; i < 3000 && !existsSync(held); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(existsSync(held), 'the run reached its 3rd evaluation (the second batch)');
  // the other job of the batch may finish meanwhile: wait until the journal shows it
  for (let i = 0; i < 1500 && results(journal).length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  const evaluatorPid = Number(readFileSync(held, 'utf8'));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  const before = lines(journal);
  assert.deepEqual(before.filter((r) => r.type === 'dispatch').map((r) => r.index), [0, 1, 2, 3], 'both jobs of the second batch were journalled as dispatched');
  assert.equal(results(journal).length, 3, 'the batch\'s other job finished and was journalled');
  const stuck = [2, 3].find((i) => !results(journal).some((r) => r.index === i))!;
  for (let i = 0; i < 250 && processAlive(evaluatorPid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(processAlive(evaluatorPid), false, 'the held evaluator died with the coordinator');

  rmSync(join(root, 'HOLD'));
  const resumed = runCli(cliArgs(out, ['--resume']));
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.deepEqual(results(journal), want, 'the same proposals and results as the uninterrupted run');
  const after = lines(journal);
  assert.equal(after.filter((r) => r.type === 'evaluation').length, 6, 'no finished evaluation repeated');
  assert.equal(after.filter((r) => r.type === 'dispatch' && r.index === stuck).length, 2, `the in-flight evaluation ${stuck} was dispatched again`);
  assert.equal(after.filter((r) => r.type === 'dispatch').length, 7);
  assert.ok(existsSync(join(out, 'model.safetensors')));
  assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('.killed.') || f.endsWith('.lock')), [], 'no scratch, staging or lock left');
});

test('a job past --evaluation-timeout is killed and journalled as failed with its reason; --evaluator-timeout is its alias and must agree', () => {
  resetCalls();
  writeFileSync(join(root, 'SLOW'), '');
  try {
    const out = join(root, 'timeout');
    const r = runCli(cliArgs(out, ['--evaluation-timeout', '15', '--evaluator-timeout', '15']));
    assert.equal(r.status, 0, r.stderr);
    const failed = lines(`${out}.journal.jsonl`).filter((e) => e.type === 'evaluation' && e.failed);
    assert.equal(failed.length, 1, 'exactly the slow call failed');
    assert.match(failed[0]!.error!, /timed out after 15 s \(its processes were killed\)/);
    const clash = runCli(cliArgs(join(root, 'clash'), ['--evaluation-timeout', '15', '--evaluator-timeout', '5']));
    assert.equal(clash.status, 2, clash.stderr);
    assert.match(clash.stderr, /--evaluator-timeout is the old name of --evaluation-timeout/);
  } finally {
    rmSync(join(root, 'SLOW'), { force: true });
  }
});

test('--executor ray (Jobs REST API): the same journal and results as local jobs; resources sent; failed and timed-out jobs journalled with the reason', async () => {
  const ray = await startFakeRay();
  try {
    resetCalls();
    const local = await optimize(opts({ parallel: 2, initPoints: 2, iterations: 2 }));
    const viaRay = await optimize(opts({ parallel: 2, initPoints: 2, iterations: 2, executor: 'ray', rayAddress: ray.address, jobCpus: 1, rayPollSeconds: 0.1, scratch: join(root, 'shared') }));
    assert.deepEqual(results(viaRay.journal), results(local.journal), 'Ray jobs compute what local jobs compute');
    assertBatches(viaRay.journal, 2, 4);
    const dispatches = lines(viaRay.journal).filter((r) => r.type === 'dispatch');
    assert.ok(dispatches.every((d) => d.executor === 'ray' && new RegExp(`^dfmerge-[0-9a-f]{12}-${d.index}-0$`).test(d.job ?? '')), 'each dispatch names its Ray submission id');
    assert.equal(ray.jobs.size, 4);
    for (const j of ray.jobs.values()) {
      assert.equal(j.body.entrypoint_num_cpus, 1);
      assert.match(j.entrypoint, / evaluate-candidate .*shared\/dfmerge-[0-9a-f]{12}\/eval-\d-0\/spec\.json$/);
      assert.equal(j.status, 'SUCCEEDED');
    }
    assert.deepEqual(readdirSync(join(root, 'shared')), [], 'the scratch run folder is removed at the end');

    // a worker that dies: every evaluation fails, each journalled with Ray's reason
    const failing = opts({ parallel: 2, initPoints: 2, iterations: 0, executor: 'ray', rayAddress: ray.address, rayPollSeconds: 0.1, workerCommand: 'echo worker broke >&2; exit 3; :' });
    await assert.rejects(optimize(failing), /every one of the 2 evaluations failed/);
    const failed = lines(`${failing.out}.journal.jsonl`).filter((r) => r.type === 'evaluation');
    assert.equal(failed.length, 2);
    for (const f of failed) assert.match(f.error!, /Ray job dfmerge-[0-9a-f]{12}-\d-0 FAILED: .*exit code 3[\s\S]*worker broke/);

    // a job past the timeout is stopped through the API
    const slow = opts({ parallel: 2, initPoints: 2, iterations: 0, executor: 'ray', rayAddress: ray.address, rayPollSeconds: 0.1, evaluationTimeout: 1, workerCommand: 'sleep 60; :' });
    await assert.rejects(optimize(slow), /every one of the 2 evaluations failed/);
    for (const f of lines(`${slow.out}.journal.jsonl`).filter((r) => r.type === 'evaluation')) {
      assert.match(f.error!, /timed out after 1 s \(Ray job dfmerge-[0-9a-f]{12}-\d-0 stopped; it was RUNNING\)/);
      assert.equal(ray.jobs.get(f.job!)!.status, 'STOPPED');
    }
    // a result the coordinator cannot see as a file is read from the job's logs (the worker prints it last)
    const printed = JSON.stringify({ lambda: [0, 0], scores: { task0: 0.625, task1: 0.5 }, objective: 0.5625, failed: false, seconds: { fisher: 0, merge: 0, eval: 0, total: 0 } });
    const fromLogs = opts({ parallel: 2, initPoints: 2, iterations: 0, executor: 'ray', rayAddress: ray.address, rayPollSeconds: 0.1, workerCommand: `echo 'dfmerge-candidate-result: ${printed}'; :` });
    const logged = await optimize(fromLogs);
    assert.deepEqual(logged.history.map((e) => e.scores), [{ task0: 0.625, task1: 0.5 }, { task0: 0.625, task1: 0.5 }]);
    assert.deepEqual(logged.history.map((e) => e.lambda), results(local.journal).slice(0, 2).map((r) => r.lambda), 'the journalled λ is the dispatched one');
    // no head at the address: refused before any job, naming it
    await assert.rejects(optimize(opts({ parallel: 2, executor: 'ray', rayAddress: 'http://127.0.0.1:9' })), /Ray at http:\/\/127\.0\.0\.1:9: GET \/api\/version failed/);
  } finally {
    await ray.close();
  }
});

test('Ctrl-C stops the Ray jobs in flight, exits 130 and leaves them to --resume', async () => {
  const ray = await startFakeRay();
  try {
    resetCalls();
    writeFileSync(join(root, 'HOLD'), '');
    rmSync(join(root, 'HELD'), { force: true });
    const out = join(root, 'sigint');
    const args = [...cliArgs(out), '--executor', 'ray', '--ray-address', ray.address];
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'dfmerge.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    for (let i = 0; i < 3000 && !existsSync(join(root, 'HELD')); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(existsSync(join(root, 'HELD')));
    child.kill('SIGINT');
    const code = await new Promise((r) => child.on('exit', (c) => r(c)));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /the ray jobs in flight were stopped/);
    const stopped = [...ray.jobs.values()].filter((j) => j.stopRequests > 0);
    assert.ok(stopped.length >= 1 && stopped.every((j) => j.status === 'STOPPED' || j.status === 'SUCCEEDED'), 'the held job was stopped');
    const journal = `${out}.journal.jsonl`;
    assert.ok(!results(journal).some((r) => r.failed), 'a cancelled job is not a failed evaluation');
    rmSync(join(root, 'HOLD'));
    // (not spawnSync: the stand-in head answers from this process's event loop)
    const resumed = spawn(process.execPath, [join(ROOT, 'bin', 'dfmerge.js'), ...args, '--resume'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let resumedErr = '';
    resumed.stderr!.on('data', (d: Buffer) => { resumedErr += d.toString('utf8'); });
    assert.equal(await new Promise((r) => resumed.on('exit', (c) => r(c))), 0, resumedErr);
    assert.deepEqual(results(journal), results(join(root, 'whole.journal.jsonl')), 'resumed to the uninterrupted run');
  } finally {
    await ray.close();
  }
});

test('bad executor and lm-eval flags are refused before any work, naming the flag', () => {
  const base = cliArgs(join(root, 'flags'));
  const cases: [string[], RegExp][] = [
    [['--executor', 'ray'], /--executor ray needs --ray-address http:\/\/HOST:8265/],
    [['--ray-address', 'http://127.0.0.1:8265'], /--ray-address, --job-gpus and --ray-runtime-env need --executor ray/],
    [['--executor', 'ray', '--ray-address', 'ftp://x'], /--ray-address ftp:\/\/x: must be http:\/\/ or https:\/\//],
    [['--executor', 'ray', '--ray-address', 'http://x', '--ray-runtime-env', '[1]'], /--ray-runtime-env must be a JSON object/],
    [['--parallel', '0'], /--parallel/],
    [['--lm-eval-tasks', 'a,b'], /--lm-eval-tasks needs --evaluator lm-eval/],
  ];
  for (const [extra, want] of cases) {
    const r = runCli([...base, ...extra]);
    assert.equal(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
  }
  const lm = ['optimize', '--base', run.base, ...run.models.flatMap((m) => ['-m', m]), '--no-fisher', '--evaluator', 'lm-eval', '-o', join(root, 'lm')];
  for (const [extra, want] of [
    [[], /--evaluator lm-eval needs --lm-eval-tasks/],
    [['--lm-eval-tasks', 'hellaswag'], /--lm-eval-tasks lists 1 entry for 2 models/],
    [['--lm-eval-tasks', 'a,b', '--python', join(root, 'no-python')], /--evaluator lm-eval needs a Python with lm_eval: none found \(--python .*no-python\)/],
  ] as [string[], RegExp][]) {
    const r = runCli([...lm, ...extra]);
    assert.equal(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
  }
});
