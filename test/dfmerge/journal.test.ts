// The run journal: one run at a time (PID lock, stale locks taken over), a torn
// last line cut off before appending, and a resume hash of the models' contents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Journal, type JournalDispatch, type JournalEvaluation } from '../../src/dfmerge/journal.js';
import { checkpointFingerprint } from '../../src/dfmerge/fingerprint.js';
import { FIXTURES, tempDir } from '../helpers.js';

const config = { seed: 1, models: ['a', 'b'] };

function evaluation(index: number): JournalEvaluation {
  return {
    type: 'evaluation', index, lambda: [index / 10, 0.5], scores: { t: 0.5 }, objective: 0.5, failed: false,
    seconds: { fisher: 0, merge: 0, eval: 0, total: 0 }, phase: 'initial', finished: new Date(0).toISOString(),
  };
}

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

test('a second opener is refused while the first holds the journal; the lock goes with close()', () => {
  const d = tempDir();
  const path = join(d, 'run.journal.jsonl');
  const j = Journal.open(path, config, false);
  assert.equal(readFileSync(`${path}.lock`, 'utf8').trim(), String(process.pid));
  assert.throws(() => Journal.open(path, config, true), { code: 'JournalLocked', message: new RegExp(`in use by another dfmerge run \\(PID ${process.pid}`) });
  j.append(evaluation(0));
  j.close();
  assert.equal(existsSync(`${path}.lock`), false);
  const again = Journal.open(path, config, true);
  assert.equal(again.evaluations.length, 1);
  again.close();
});

test('a lock left by a killed run (its PID is gone) is taken over', () => {
  const d = tempDir();
  const path = join(d, 'run.journal.jsonl');
  Journal.open(path, config, false).close();
  writeFileSync(`${path}.lock`, `${deadPid()}\n`);
  const j = Journal.open(path, config, true);
  assert.equal(readFileSync(`${path}.lock`, 'utf8').trim(), String(process.pid));
  j.close();
});

test('a torn last line is cut off before appending, so every later resume reads every record', () => {
  const d = tempDir();
  const path = join(d, 'run.journal.jsonl');
  const j = Journal.open(path, config, false);
  j.append(evaluation(0));
  j.append(evaluation(1));
  j.close();
  const whole = readFileSync(path, 'utf8');
  appendFileSync(path, JSON.stringify(evaluation(2)).slice(0, 40));  // a crash mid-write
  const r1 = Journal.open(path, config, true);
  assert.equal(r1.evaluations.length, 2);
  assert.equal(readFileSync(path, 'utf8'), whole, 'the fragment is gone before anything is appended');
  r1.append(evaluation(2));
  r1.close();
  const r2 = Journal.open(path, config, true);
  assert.deepEqual(r2.evaluations.map((e) => e.index), [0, 1, 2]);
  r2.close();
  for (const line of readFileSync(path, 'utf8').trim().split('\n')) JSON.parse(line);
});

test('a corrupt line that is not the last, or duplicate indices from two writers, are refused naming the line', () => {
  const d = tempDir();
  const path = join(d, 'run.journal.jsonl');
  const j = Journal.open(path, config, false);
  j.append(evaluation(0));
  j.close();
  const good = readFileSync(path, 'utf8');
  writeFileSync(path, good + '{"type":"evalu\n' + JSON.stringify(evaluation(1)) + '\n');
  assert.throws(() => Journal.open(path, config, true), { code: 'CorruptJournal', message: /run\.journal\.jsonl:3: not valid JSON/ });
  writeFileSync(path, good + JSON.stringify(evaluation(0)) + '\n');
  assert.throws(() => Journal.open(path, config, true), { code: 'CorruptJournal', message: /:3: evaluation index 0 where 1 was expected/ });
});

test('the resume fingerprint changes when a model\'s weights change in place, not when nothing does', () => {
  const d = tempDir();
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(FIXTURES, 'llama', 'gqa', f), join(d, f));
  const a = checkpointFingerprint(d);
  assert.deepEqual(checkpointFingerprint(d), a);
  const t = new Date(Date.now() + 10_000);
  utimesSync(join(d, 'model.safetensors'), t, t);  // rewritten: same path, same size
  assert.notDeepEqual(checkpointFingerprint(d), a);
  // another checkpoint copied over with the original mtime restored still differs by its header
  const b = checkpointFingerprint(d);
  copyFileSync(join(FIXTURES, 'llama', 'mha', 'model.safetensors'), join(d, 'model.safetensors'));
  utimesSync(join(d, 'model.safetensors'), t, t);
  const c = checkpointFingerprint(d);
  assert.notEqual(c.files.find((f) => f.name === 'model.safetensors')!.sha256, b.files.find((f) => f.name === 'model.safetensors')!.sha256);
});

function dispatch(index: number): JournalDispatch {
  return { type: 'dispatch', index, lambda: [index / 10, 0.5], phase: 'initial', executor: 'local', started: new Date(0).toISOString() };
}

test('version 2: dispatch lines mark what is in flight, evaluations may end out of order, and each index ends once', () => {
  const d = tempDir();
  const path = join(d, 'run.journal.jsonl');
  const j = Journal.open(path, config, false);
  for (const i of [0, 1, 2, 3]) j.append(dispatch(i));
  j.append(evaluation(1));
  j.append(evaluation(0));
  j.append(evaluation(3));
  assert.deepEqual(j.evaluations.map((e) => e.index), [0, 1, 3], 'kept in index order');
  assert.throws(() => j.append(evaluation(3)), { code: 'DuplicateEvaluation' });
  j.close();
  const r = Journal.open(path, config, true);
  assert.deepEqual(r.evaluations.map((e) => e.index), [0, 1, 3]);
  assert.deepEqual(r.inFlight.map((x) => x.index), [2], 'dispatched, never ended: in flight when the run stopped');
  assert.equal(r.attempts(2), 1);
  r.append(dispatch(2));
  r.append(evaluation(2));
  r.close();
  const again = Journal.open(path, config, true);
  assert.deepEqual(again.inFlight, []);
  assert.equal(again.attempts(2), 2, 'the re-dispatch is counted (a fresh job id next time)');
  again.close();
  // a dispatch of an evaluation that had ended: two writers
  writeFileSync(path, readFileSync(path, 'utf8') + JSON.stringify(dispatch(1)) + '\n');
  assert.throws(() => Journal.open(path, config, true), { code: 'CorruptJournal', message: /dispatch of evaluation 1, which had already finished/ });
});

test('a version 1 journal (no dispatch lines) resumes as it is; an unknown version is refused naming it', () => {
  const d = tempDir();
  const path = join(d, 'run.journal.jsonl');
  const j = Journal.open(path, config, false);
  j.close();
  const header = JSON.parse(readFileSync(path, 'utf8').trim()) as Record<string, unknown>;
  writeFileSync(path, JSON.stringify({ ...header, version: 1 }) + '\n' + JSON.stringify(evaluation(0)) + '\n' + JSON.stringify(evaluation(1)) + '\n');
  const r = Journal.open(path, config, true);
  assert.deepEqual(r.evaluations.map((e) => e.index), [0, 1]);
  assert.deepEqual(r.inFlight, []);
  r.close();
  writeFileSync(path, JSON.stringify({ ...header, version: 3 }) + '\n');
  assert.throws(() => Journal.open(path, config, true), { code: 'JournalVersion', message: /run\.journal\.jsonl:1: journal version 3, which this dfmerge cannot read/ });
});
