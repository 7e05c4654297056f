// The main job end to end on the fast zoo: experts learn their tasks, every merge
// beats the base, DF-Merge's optimisation never loses its best initial point,
// and a second run resumes (reuses the zoo and the journals) without evaluating again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runDemo, type DemoOptions } from '../../src/demo/demo.js';
import { tempDir } from '../helpers.js';

const root = tempDir();
const mean = (s: Record<string, number> | undefined) => {
  const v = Object.values(s ?? {});
  return v.reduce((a, b) => a + b, 0) / v.length;
};

test('dfmerge demo (fast): experts beat the base, every merge beats the base, DF-Merge keeps its best initial point, resume', async () => {
  let evaluations = 0;
  const options: DemoOptions = {
    zoo: join(root, 'zoo'), out: join(root, 'demo'), seed: 0, fast: true, initPoints: 3, iterations: 3, fisherSamples: 10,
    validationFraction: 0.5, log: () => {}, onEvaluation: () => { evaluations++; },
  };
  const r = await runDemo(options);
  assert.equal(evaluations, 12, 'DF-Merge and the ablation each run 3 + 3 evaluations');
  const byName = (prefix: string) => r.rows.filter((x) => x.name.startsWith(prefix));
  const base = byName('base')[0]!;
  for (const t of r.tasks) {
    const expert = byName(`fine-tuned: ${t}`)[0]!;
    assert.ok(expert.test![t]! > base.test![t]!, `expert ${t}: ${expert.test![t]} vs base ${base.test![t]}`);
  }
  const merges = r.rows.filter((x) => !x.name.startsWith('base') && !x.name.startsWith('fine-tuned') && !x.name.startsWith('multi-task'));
  assert.deepEqual(merges.map((x) => x.name.split(' ')[0]), ['linear', 'task', 'TIES', 'DARE', 'Fisher', 'DF-Merge', 'DF-Merge']);
  for (const m of merges) assert.ok(mean(m.test) > mean(base.test), `${m.name}: ${mean(m.test)} vs base ${mean(base.test)}`);
  for (const run of [r.dfmerge, r.noFisher]) {
    const initial = Math.max(...run.history.filter((e) => e.phase === 'initial').map((e) => e.objective ?? -1));
    assert.ok(run.best.objective! >= initial);
  }
  assert.ok(existsSync(r.reportPath));
  assert.ok(existsSync(join(r.dfmerge.out, 'model.safetensors')));

  evaluations = 0;
  const again = await runDemo(options);
  assert.equal(evaluations, 0, 'a finished run is resumed, not repeated');
  assert.deepEqual(again.dfmerge.best.lambda, r.dfmerge.best.lambda);
  assert.deepEqual(again.rows.map((x) => x.test), r.rows.map((x) => x.test));
});
