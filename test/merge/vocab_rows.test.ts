// Vocabularies padded differently between the base and the fine-tunes (docs/design.md §10):
// the shared rows are merged, a fine-tune's extra rows are dropped, rows it lacks keep
// the base's value (task vector 0), the output has the base's shape, and a warning
// names the tensor, both row counts and the models. Against the float64 reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointWriter, type TensorSpec } from '../../src/io/writer.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { runMerge } from '../../src/merge/run.js';
import { validateConfig, type MergeConfig } from '../../src/merge/config.js';
import type { ComputeDtype } from '../../src/native/addon.js';
import { Rng, compare, decode, deltas, encode, refDeltaSum, refLinear, refSignElect, trimTies, type RefResult } from './reference.js';
import { runCli, tempDir } from '../helpers.js';

const root = tempDir('dfmerge-vocab-');
const HIDDEN = 4;
const BASE_ROWS = 10;
const rng = new Rng(9);

function specs(rows: number, layerShape = [6]): TensorSpec[] {
  return [
    { name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [rows, HIDDEN] },
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: layerShape },
    { name: 'lm_head.weight', dtype: 'F32', shape: [rows, HIDDEN] },
  ];
}

interface Folder { dir: string; values: Map<string, Float64Array> }

function writeModel(name: string, sp: TensorSpec[], around?: Map<string, Float64Array>): Folder {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', vocab_size: sp[0]!.shape[0] }));
  const values = new Map<string, Float64Array>();
  const w = new CheckpointWriter(dir, sp);
  for (const s of sp) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = (around?.get(s.name)?.[i] ?? 0) + (rng.next() * 2 - 1) * (around ? 0.1 : 1);
    const d = s.dtype as ComputeDtype;
    const exact = decode(encode(v, d), d);
    values.set(s.name, exact);
    w.write(s.name, encode(exact, d));
  }
  w.finish();
  return { dir, values };
}

const base = writeModel('base', specs(BASE_ROWS));
const more = writeModel('more', specs(BASE_ROWS + 3), base.values);   // e.g. 128320 vs 128256
const fewer = writeModel('fewer', specs(BASE_ROWS - 2), base.values); // e.g. a fine-tune before tokens were added

/** A fine-tune's tensor as the merge must see it: the base's rows, its own where it has them. */
function seen(f: Folder, name: string): Float64Array {
  const b = base.values.get(name)!;
  const x = f.values.get(name)!;
  return b.map((v, i) => (i < x.length ? x[i]! : v));
}

function expectClose(ck: Checkpoint, name: string, ref: RefResult): void {
  const { file, info } = ck.locate(name);
  assert.deepEqual(info.shape, name.includes('layers') ? [6] : [BASE_ROWS, HIDDEN], `${name}: the output has the base's shape`);
  const r = compare(file.bytes(name), info.dtype as ComputeDtype, ref);
  assert.equal(r.badCount, 0, `${name}: ${JSON.stringify(r.bad)}`);
}

async function merged(config: MergeConfig, out: string): Promise<{ ck: Checkpoint; warnings: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let warnings = '';
  process.stderr.write = ((chunk: string | Uint8Array) => { warnings += String(chunk); return true; }) as typeof process.stderr.write;
  try {
    await runMerge(validateConfig(config), { out: join(root, out), quiet: true });
  } finally {
    process.stderr.write = write;
  }
  return { ck: Checkpoint.open(join(root, out)), warnings };
}

const W = [0.6, 0.7];
const cfg = (method: MergeConfig['method'], parameters: MergeConfig['parameters'] = {}): MergeConfig => ({
  method, base: base.dir, models: [more, fewer].map((m, k) => ({ path: m.dir, parameters: { weight: W[k]! } })), parameters, seed: 3,
});

test('task arithmetic, TIES and linear merge the shared rows, drop extra rows and keep the base where a fine-tune has none', async () => {
  const ta = await merged(cfg('task_arithmetic'), 'ta');
  const ti = await merged(cfg('ties', { density: 0.5 }), 'ties');
  const li = await merged(cfg('linear'), 'linear');
  for (const name of base.values.keys()) {
    const b = base.values.get(name)!;
    const xs = [seen(more, name), seen(fewer, name)];
    expectClose(ta.ck, name, refDeltaSum(b, deltas(b, xs), W, false));
    expectClose(ti.ck, name, refSignElect(b, deltas(b, xs).map((t) => trimTies(t, 0.5)), W, true));
    expectClose(li.ck, name, refLinear(xs, W, true));
  }
  for (const r of [ta, ti, li]) r.ck.close();
  // one line per model and vocabulary tensor, naming both row counts and both models
  const lines = ta.warnings.trim().split('\n');
  assert.equal(lines.length, 4, ta.warnings);
  assert.ok(lines.every((l) => l.startsWith('warning: vocabulary sizes differ')), ta.warnings);
  for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
    assert.ok(lines.some((l) => l.includes(`"${name}" has 13 rows in ${more.dir} and 10 in the base ${base.dir}`) && l.includes('rows 10–12 are dropped')), ta.warnings);
    assert.ok(lines.some((l) => l.includes(`"${name}" has 8 rows in ${fewer.dir} and 10 in the base ${base.dir}`) && l.includes("rows 8–9 keep the base's values there (task vector 0)")), ta.warnings);
  }
});

test('a YAML config through the CLI merges differently padded vocabularies and says so on stderr', () => {
  const yaml = join(root, 'merge.yaml');
  writeFileSync(yaml, [
    'merge_method: task_arithmetic',
    `base_model: ${base.dir}`,
    'models:',
    `  - model: ${more.dir}`,
    '    parameters: { weight: 1.0 }',
    `  - model: ${fewer.dir}`,
    '    parameters: { weight: 1.0 }',
  ].join('\n'));
  const out = join(root, 'cli-out');
  const r = runCli(['merge', '-c', yaml, '-o', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: vocabulary sizes differ: tensor "model\.embed_tokens\.weight" has 13 rows in .*more and 10 in the base/);
  const ck = Checkpoint.open(out);
  try {
    const b = base.values.get('lm_head.weight')!;
    expectClose(ck, 'lm_head.weight', refDeltaSum(b, deltas(b, [seen(more, 'lm_head.weight'), seen(fewer, 'lm_head.weight')]), [1, 1], false));
  } finally {
    ck.close();
  }
});

test('any other shape difference is still an error naming both sides', async () => {
  const other = writeModel('other-layer', specs(BASE_ROWS, [7]), undefined);
  await assert.rejects(runMerge(validateConfig({ ...cfg('task_arithmetic'), models: [{ path: other.dir, parameters: { weight: 1 } }] }), { out: join(root, 'bad1'), quiet: true }),
    (e: Error) => e.message.includes(other.dir) && e.message.includes('"model.layers.0.mlp.up_proj.weight" has shape [7], the reference has [6]'));
  const wide: TensorSpec[] = specs(BASE_ROWS).map((s) => (s.name === 'lm_head.weight' ? { ...s, shape: [BASE_ROWS, HIDDEN + 1] } : s));
  const hidden = writeModel('other-hidden', wide, undefined);
  await assert.rejects(runMerge(validateConfig({ ...cfg('task_arithmetic'), models: [{ path: hidden.dir, parameters: { weight: 1 } }] }), { out: join(root, 'bad2'), quiet: true }),
    (e: Error) => e.message.includes(hidden.dir) && e.message.includes('"lm_head.weight" has shape [10, 5], the reference has [10, 4]'));
});
