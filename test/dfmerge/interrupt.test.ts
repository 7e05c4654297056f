// A DF-Merge run really interrupted: `dfmerge optimize` killed with -9 in the middle
// of an evaluation, a torn line left at the end of its journal, then resumed twice.
// The resumed run repeats no evaluation, loses none, proposes exactly what an
// uninterrupted run proposes, and leaves no scratch folder or evaluator behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../../src/io/leftovers.js';
import { ROOT, runCli, tempDir } from '../helpers.js';
import { makeTinyRun } from './support.js';

const root = tempDir();
const run = await makeTinyRun(root, 2, 0.05);

// Scores a candidate by a hash of its weights (a deterministic function of λ). When
// the file HOLD exists, its 3rd call writes its PID to HELD and sleeps instead.
const evaluator = join(root, 'ev.sh');
writeFileSync(evaluator, `#!/bin/sh
d=$(dirname "$0")
n=$(cat "$d/calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$d/calls"
if [ -f "$d/HOLD" ] && [ $n -eq 3 ]; then echo $$ > "$d/HELD"; exec sleep 300; fi
h=$(sha256sum "$1/model.safetensors" | cut -c1-6)
echo "{\\"task0\\": 0.$((0x$h % 900 + 100)), \\"task1\\": 0.5}"
`);
chmodSync(evaluator, 0o755);

function args(out: string, iterations: number, extra: string[] = []): string[] {
  return ['optimize', '--base', run.base, ...run.models.flatMap((m) => ['-m', m]), ...run.tasks.flatMap((t) => ['--task', t]),
    '--no-fisher', '--evaluator', `${evaluator} {dir}`, '--init-points', '3', '--iterations', String(iterations), '--seed', '3',
    '-o', out, '--no-baselines', '-q', ...extra];
}

interface Rec { type: string; index?: number; lambda?: number[] }
const records = (journal: string) => readFileSync(journal, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec).filter((r) => r.type === 'evaluation');

test('optimize killed with -9 mid-evaluation, with a torn journal line, resumes to what an uninterrupted run gives', async () => {
  const whole = runCli(args(join(root, 'whole'), 3));
  assert.equal(whole.status, 0, whole.stderr);
  const want = records(join(root, 'whole.journal.jsonl')).map((r) => r.lambda);
  assert.equal(want.length, 6);

  const out = join(root, 'killed');
  const journal = `${out}.journal.jsonl`;
  writeFileSync(join(root, 'calls'), '0');
  writeFileSync(join(root, 'HOLD'), '');
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'dfmerge.js'), ...args(out, 3)], { stdio: 'ignore' });
  const held = join(root, 'HELD');
  for (let i = 0; i < 3000 && !existsSync(held); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(existsSync(held), 'the run reached its 3rd evaluation');
  const evaluatorPid = Number(readFileSync(held, 'utf8'));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  assert.equal(records(journal).length, 2, 'two evaluations were journalled before the kill');
  assert.ok(readdirSync(root).some((f) => f.startsWith('.killed.candidates-')), 'the kill left a scratch folder (to be cleaned)');
  // a crash in the middle of appending the 3rd record
  appendFileSync(journal, '{"type":"evaluation","index":2,"lambda":[0.1');

  for (let i = 0; i < 250 && processAlive(evaluatorPid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(processAlive(evaluatorPid), false, 'the evaluator died with dfmerge');

  const first = runCli(args(out, 1, ['--resume']));  // resume, but stop after 4 evaluations
  assert.equal(first.status, 0, first.stderr);
  const second = runCli(args(out, 3, ['--resume']));  // and again, to the full 6
  assert.equal(second.status, 0, second.stderr);
  const got = records(journal);
  assert.deepEqual(got.map((r) => r.index), [0, 1, 2, 3, 4, 5], 'each evaluation once, in order');
  assert.deepEqual(got.map((r) => r.lambda), want, 'the same proposals as the uninterrupted run');
  assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('.killed.') || f.endsWith('.lock')), [], 'no scratch, staging or lock left');
  for (const f of ['model.safetensors', 'config.json', 'dfmerge-report.json']) assert.ok(existsSync(join(out, f)), f);
});

test('a second run on a journal in use is refused while the first runs', async () => {
  const out = join(root, 'locked');
  writeFileSync(join(root, 'calls'), '0');
  writeFileSync(join(root, 'HOLD'), '');
  const held = join(root, 'HELD');
  writeFileSync(held, '');
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'dfmerge.js'), ...args(out, 0)], { stdio: 'ignore' });
  for (let i = 0; i < 3000 && readFileSync(held, 'utf8') === ''; i++) await new Promise((r) => setTimeout(r, 20));
  const evaluatorPid = Number(readFileSync(held, 'utf8'));
  const second = runCli(args(out, 0, ['--resume']));
  assert.equal(second.status, 1, second.stderr);
  assert.match(second.stderr, /locked\.journal\.jsonl: in use by another dfmerge run \(PID \d+/);
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  for (let i = 0; i < 250 && processAlive(evaluatorPid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(processAlive(evaluatorPid), false);
  assert.equal(existsSync(`${out}.journal.jsonl.lock`), false, 'SIGTERM released the lock');
  assert.equal(records(`${out}.journal.jsonl`).length, 2);
});

test('resume is refused when a model changed in place since the journal was written, or the dtype differs', () => {
  const out = join(root, 'changed');
  rmSync(join(root, 'HOLD'), { force: true });
  const r = runCli(args(out, 0));
  assert.equal(r.status, 0, r.stderr);
  const dtype = runCli(args(out, 1, ['--resume', '--dtype', 'float16']));
  assert.equal(dtype.status, 1, dtype.stderr);
  assert.match(dtype.stderr, /written by a different configuration \(differs in: dtype\)/);
  assert.equal(runCli(args(out, 1, ['--resume'])).status, 0, 'unchanged: resumes');
  const weights = join(run.models[1]!, 'model.safetensors');
  const before = statSync(weights);
  utimesSync(weights, before.atime, new Date(before.mtimeMs + 60_000));  // rewritten in place: same path and size
  const again = runCli(args(out, 2, ['--resume']));
  assert.equal(again.status, 1, again.stderr);
  assert.match(again.stderr, /written by a different configuration \(differs in: models\)/);
});
