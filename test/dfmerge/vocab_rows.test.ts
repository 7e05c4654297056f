// DF-Merge with fine-tunes whose vocabularies are padded differently from the base's
// (docs/design.md §10): a fine-tune with more embedding / LM-head rows is read through a
// prefix of its tensor, one with fewer through a short scaled view whose missing rows
// read θ_pre (τ = 0). Both must give exactly what the same run gives on the equivalent
// fine-tunes of the base's shape (extra rows cut off, missing rows filled with the
// base's), Fisher included, and say what was done.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { CheckpointWriter } from '../../src/io/writer.js';
import { DfMergeObjective } from '../../src/dfmerge/objective.js';
import { loadSetup, type DfSetup } from '../../src/dfmerge/setup.js';
import { optimize } from '../../src/dfmerge/optimize.js';
import { makeTinyRun } from './support.js';
import { tempDir } from '../helpers.js';

const root = tempDir('dfmerge-vocab-df-');
const run = await makeTinyRun(root, 2, 0.05);
const VOCAB_TENSORS = ['model.embed_tokens.weight', 'lm_head.weight'];

/** A copy of `src` whose vocabulary tensors are rewritten by `edit` (given the tensor, its row length and the base's tensor). */
function variant(src: string, name: string, rows: number, edit: (x: Float32Array, hidden: number, base: Float32Array) => Float32Array): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, vocab_size: rows }));
  copyFileSync(join(src, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  const ck = Checkpoint.open(src);
  const base = Checkpoint.open(run.base);
  try {
    const specs = ck.names.map((n) => {
      const { info } = ck.locate(n);
      return { name: n, dtype: 'F32', shape: VOCAB_TENSORS.includes(n) ? [rows, info.shape[1]!] : [...info.shape] };
    });
    const w = new CheckpointWriter(dir, specs);
    for (const n of ck.names) {
      const x = ck.locate(n).file.toFloat32(n);
      w.write(n, VOCAB_TENSORS.includes(n) ? edit(x, ck.locate(n).info.shape[1]!, base.locate(n).file.toFloat32(n)) : x);
    }
    w.finish();
  } finally {
    ck.close();
    base.close();
  }
  return dir;
}

const V = 72;
// model 0 with three extra rows (their values must not matter); model 1 without its last two rows
const more = variant(run.models[0]!, 'more', V + 3, (x, h) => {
  const y = new Float32Array((V + 3) * h);
  y.set(x);
  y.fill(7, V * h);
  return y;
});
const fewer = variant(run.models[1]!, 'fewer', V - 2, (x, h) => x.slice(0, (V - 2) * h));
// what model 1 is taken to be: its own rows, the base's in the two it lacks
const fewerPadded = variant(run.models[1]!, 'fewer-padded', V, (x, h, b) => {
  const y = new Float32Array(x);
  y.set(b.subarray((V - 2) * h), (V - 2) * h);
  return y;
});

function setupOf(models: string[], warn: (l: string) => void = () => {}): DfSetup {
  return loadSetup({ base: run.base, models, tasks: run.tasks.map((validation) => ({ validation })), fisherSamples: 3, validationFraction: 1, seed: 4, needFisher: true, warn });
}

test('DF-Merge on differently padded vocabularies equals the run on their base-shaped equivalents, Fisher included', async () => {
  const lines: string[] = [];
  const odd = setupOf([more, fewer], (l) => lines.push(l));
  const same = setupOf([run.models[0]!, fewerPadded]);
  try {
    const lambda = [0.7, 0.4];
    const a = Float32Array.from((await new DfMergeObjective(odd, { fisher: true, fisherMode: 'expected' }).merge(lambda)).merged.view(0, odd.rt.numParams));
    const b = Float32Array.from((await new DfMergeObjective(same, { fisher: true, fisherMode: 'expected' }).merge(lambda)).merged.view(0, same.rt.numParams));
    assert.equal(a.length, b.length);
    let worst = 0;
    for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!));
    assert.equal(worst, 0, 'the merge (θ_pre + M·W/S) is the same bit for bit');
    // and the classic baselines read the fine-tunes with the base's rows too
    const ta = new DfMergeObjective(odd, { fisher: true, fisherMode: 'expected' });
    const tb = new DfMergeObjective(same, { fisher: true, fisherMode: 'expected' });
    const x = Float32Array.from((await ta.taskArithmetic([1, 1])).view(0, odd.rt.numParams));
    const y = Float32Array.from((await tb.taskArithmetic([1, 1])).view(0, same.rt.numParams));
    assert.deepEqual(x, y);
  } finally {
    odd.close();
    same.close();
  }
  assert.equal(lines.length, 4, lines.join(''));
  assert.ok(lines.some((l) => l.includes(`"lm_head.weight" has 75 rows in ${more} and 72 in the base ${run.base}`) && l.includes('rows 72–74 are dropped')), lines.join(''));
  assert.ok(lines.some((l) => l.includes(`"model.embed_tokens.weight" has 70 rows in ${fewer} and 72 in the base ${run.base}`) && l.includes("rows 70–71 keep the base's values there (task vector 0)")), lines.join(''));
});

test('optimize writes a merge of the base\'s shape from differently padded fine-tunes', async () => {
  const out = join(root, 'opt');
  const r = await optimize({
    base: run.base, models: [more, fewer], tasks: run.tasks.map((validation) => ({ validation })),
    out, initPoints: 2, iterations: 0, fisherSamples: 2, seed: 1, baselines: false,
  });
  const ck = Checkpoint.open(r.out);
  try {
    for (const n of VOCAB_TENSORS) assert.deepEqual(ck.locate(n).info.shape, [V, 32], n);
  } finally {
    ck.close();
  }
});

test('a fine-tune differing in anything but vocabulary rows is still refused, naming both sides', () => {
  const wide = variant(run.models[0]!, 'wide-mlp', V, (x) => x);
  // break one non-vocabulary tensor's shape
  const ck = Checkpoint.open(wide);
  const names = ck.names;
  const vals = new Map(names.map((n) => [n, ck.locate(n).file.toFloat32(n)] as const));
  const shapes = new Map(names.map((n) => [n, [...ck.locate(n).info.shape]] as const));
  ck.close();
  const bad = 'model.layers.0.mlp.up_proj.weight';
  shapes.set(bad, [shapes.get(bad)![0]! - 1, shapes.get(bad)![1]!]);
  const w = new CheckpointWriter(wide, names.map((n) => ({ name: n, dtype: 'F32', shape: shapes.get(n)! })));
  for (const n of names) w.write(n, n === bad ? vals.get(n)!.slice(0, shapes.get(n)![0]! * shapes.get(n)![1]!) : vals.get(n)!);
  w.finish();
  assert.throws(() => setupOf([wide, fewer]), (e: Error) => e.message.includes(wide) && e.message.includes(`"${bad}" has shape [47, 32], the reference has [48, 32]`));
});
