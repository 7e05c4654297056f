// End to end: config -> plan -> kernels -> writer -> folder, against the float64
// reference, plus the folder contract (side files, --force, mismatches).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointWriter, type TensorSpec } from '../../src/io/writer.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { runMerge } from '../../src/merge/run.js';
import { loadConfigFile, validateConfig, type MergeConfig } from '../../src/merge/config.js';
import { fnv1a64 } from '../../src/merge/kernels.js';
import { addon, type ComputeDtype } from '../../src/native/addon.js';
import {
  Rng, compare, decode, deltas, encode, dareKeepMask, refDeltaSum, refFisher, refLinear, refSignElect, trimTies, type RefResult,
} from './reference.js';
import { runCli, tempDir } from '../helpers.js';

const root = tempDir();
const SPECS: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [13, 7] },
  { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [4097] },
  { name: 'model.norm.weight', dtype: 'F16', shape: [3, 5] },
  { name: 'model.scalar', dtype: 'F32', shape: [] },
  { name: 'position_ids', dtype: 'I64', shape: [3] },
];
const FLOAT = SPECS.filter((s) => s.dtype !== 'I64');

interface Folder { dir: string; values: Map<string, Float64Array> }

function writeModel(dir: string, values: Map<string, Float64Array>, specs = SPECS, extraConfig: object = {}): Folder {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', torch_dtype: 'bfloat16', ...extraConfig }));
  writeFileSync(join(dir, 'tokenizer.json'), '{"version":"1.0"}');
  const w = new CheckpointWriter(dir, specs);
  for (const s of specs) {
    if (s.dtype === 'I64') w.write(s.name, new BigInt64Array([1n, 2n, 3n]));
    else w.write(s.name, encode(values.get(s.name)!, s.dtype as ComputeDtype));
  }
  w.finish();
  return { dir, values };
}

const rng = new Rng(42);
function randomValues(around?: Map<string, Float64Array>, scale = 1): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const s of FLOAT) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const v = new Float64Array(n);
    const dtype = s.dtype as ComputeDtype;
    for (let i = 0; i < n; i++) v[i] = (around?.get(s.name)![i] ?? 0) + (rng.next() * 2 - 1) * scale;
    out.set(s.name, decode(encode(v, dtype), dtype)); // exactly representable in its dtype
  }
  return out;
}

const base = writeModel(join(root, 'base'), randomValues());
const models = [0, 1, 2].map((k) => writeModel(join(root, `m${k}`), randomValues(base.values, 0.1)));
const fisherDirs = [0, 1, 2].map((k) => {
  const v = new Map<string, Float64Array>();
  for (const s of FLOAT) v.set(s.name, Float64Array.from(models[k]!.values.get(s.name)!, () => Math.fround(rng.next() * 2)));
  const dir = join(root, `fisher${k}`);
  mkdirSync(dir);
  const w = new CheckpointWriter(dir, FLOAT.map((s) => ({ ...s, dtype: 'F32' })));
  for (const s of FLOAT) w.write(s.name, new Float32Array(v.get(s.name)!));
  w.finish();
  return { dir: join(dir, 'model.safetensors'), values: v };
});

let outN = 0;
async function merged(config: MergeConfig): Promise<{ out: string; ck: Checkpoint }> {
  const out = join(root, `out${outN++}`);
  await runMerge(validateConfig(config), { out, quiet: true });
  return { out, ck: Checkpoint.open(out) };
}

function expectClose(ck: Checkpoint, name: string, dtype: ComputeDtype, ref: RefResult): void {
  const { file, info } = ck.locate(name);
  assert.equal(info.dtype, dtype, name);
  const r = compare(file.bytes(name), dtype, ref);
  assert.equal(r.badCount, 0, `${name}: ${JSON.stringify(r.bad)}`);
}

const W = [0.5, 0.3, 0.2];
const cfg = (method: MergeConfig['method'], parameters: MergeConfig['parameters'] = {}, extra: Partial<MergeConfig> = {}): MergeConfig => ({
  method, base: base.dir, models: models.map((m, k) => ({ path: m.dir, parameters: { weight: W[k]! } })), parameters, seed: 7, ...extra,
});

test('linear, task arithmetic, TIES, DARE and Fisher merges match the float64 reference tensor by tensor', async () => {
  const lin = await merged(cfg('linear'));
  const ta = await merged(cfg('task_arithmetic'));
  const ti = await merged(cfg('ties', { density: 0.4 }));
  const dl = await merged(cfg('dare_linear', { density: 0.6 }));
  const fi = await merged({ ...cfg('fisher', { fisher_floor: 1e-6 }), base: undefined, models: models.map((m, k) => ({ path: m.dir, parameters: { weight: W[k]! }, fisher: fisherDirs[k]!.dir })) });
  for (const s of FLOAT) {
    const d = s.dtype as ComputeDtype;
    const xs = models.map((m) => m.values.get(s.name)!);
    const b = base.values.get(s.name)!;
    expectClose(lin.ck, s.name, d, refLinear(xs, W, true));
    expectClose(ta.ck, s.name, d, refDeltaSum(b, deltas(b, xs), W, false));
    expectClose(ti.ck, s.name, d, refSignElect(b, deltas(b, xs).map((t) => trimTies(t, 0.4)), W, true));
    const id = fnv1a64(s.name);
    const dropped = deltas(b, xs).map((t, k) => {
      const mask = dareKeepMask(7n, id, k, t.length, 0.6);
      return t.map((v, i) => (mask[i] ? v / 0.6 : 0));
    });
    expectClose(dl.ck, s.name, d, refDeltaSum(b, dropped, W, false));
    expectClose(fi.ck, s.name, d, refFisher(xs, fisherDirs.map((f) => f.values.get(s.name)!), W, [1, 1, 1], 1e-6));
  }
  for (const r of [lin, ta, ti, dl, fi]) {
    // non-float tensors are copied from the reference model untouched
    assert.deepEqual(Array.from(new BigInt64Array(r.ck.locate('position_ids').file.bytes('position_ids').slice().buffer)), [1n, 2n, 3n]);
    r.ck.close();
  }
});

test('Fisher merging with per-model L2 normalisation uses c_k = 1/||F_k|| over the whole model', async () => {
  const fi = await merged({ ...cfg('fisher', { normalize_fisher: true, fisher_floor: 0 }), base: undefined, models: models.map((m, k) => ({ path: m.dir, parameters: { weight: W[k]! }, fisher: fisherDirs[k]!.dir })) });
  const c = fisherDirs.map((f) => {
    let ss = 0;
    for (const v of f.values.values()) for (const x of v) ss += x * x;
    return 1 / Math.sqrt(ss);
  });
  for (const s of FLOAT) {
    expectClose(fi.ck, s.name, s.dtype as ComputeDtype, refFisher(models.map((m) => m.values.get(s.name)!), fisherDirs.map((f) => f.values.get(s.name)!), W, c, 0));
  }
  fi.ck.close();
});

test('per-tensor parameters by filter, output dtype, side files and the saved config', async () => {
  const yamlPath = join(root, 'merge.yaml');
  writeFileSync(yamlPath, [
    'merge_method: task_arithmetic',
    `base_model: ${base.dir}`,
    'models:',
    `  - model: ${models[0]!.dir}`,
    '    parameters:',
    '      weight: [ { filter: embed_tokens, value: 0 }, { value: 1.0 } ]',
    `  - model: ${models[1]!.dir}`,
    '    parameters: { weight: 0.5 }',
    'dtype: float32',
  ].join('\n'));
  const config = loadConfigFile(yamlPath);
  const out = join(root, 'yaml-out');
  await runMerge(config, { out, quiet: true });
  const ck = Checkpoint.open(out);
  for (const s of FLOAT) {
    const b = base.values.get(s.name)!;
    const xs = [models[0]!.values.get(s.name)!, models[1]!.values.get(s.name)!];
    const w0 = s.name.includes('embed_tokens') ? 0 : 1;
    expectClose(ck, s.name, 'F32', refDeltaSum(b, deltas(b, xs), [w0, 0.5], false));
  }
  ck.close();
  assert.deepEqual(readdirSync(out).sort(), ['README.md', 'config.json', 'dfmerge.yaml', 'model.safetensors', 'tokenizer.json']);
  assert.match(readFileSync(join(out, 'README.md'), 'utf8'), /task_arithmetic[\s\S]*```yaml\nmerge_method: task_arithmetic/, 'the model card holds the config');
  assert.equal((JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { torch_dtype: string }).torch_dtype, 'float32');
  const again = loadConfigFile(join(out, 'dfmerge.yaml'));
  assert.deepEqual(again, config, 'the saved dfmerge.yaml reproduces the merge');
});

test('sharded output, a non-empty output refused without --force, stale shards removed with it', async () => {
  const out = join(root, 'sharded-out');
  await runMerge(validateConfig(cfg('linear')), { out, quiet: true, shardSize: 9000 });
  const shards = readdirSync(out).filter((f) => f.endsWith('.safetensors'));
  assert.ok(shards.length > 1, `expected several shards, got ${shards.join(', ')}`);
  assert.ok(existsSync(join(out, 'model.safetensors.index.json')));
  await assert.rejects(runMerge(validateConfig(cfg('linear')), { out, quiet: true }), { code: 'Usage', message: /not empty; pass --force/ });
  await runMerge(validateConfig(cfg('linear')), { out, quiet: true, force: true });
  assert.deepEqual(readdirSync(out).filter((f) => f.includes('safetensors')), ['model.safetensors']);
  await assert.rejects(runMerge(validateConfig(cfg('linear')), { out: base.dir, quiet: true, force: true }), { message: /is one of the input models/ });
});

test('each finished tensor is handed to writeback while the next is merged, in its own shard', async () => {
  const out = join(root, 'writeback-out');
  const calls: Array<[number, number, number]> = [];
  const native = addon();
  const original = native.startWriteback;
  native.startWriteback = (fd, offset, length) => {
    calls.push([fd, offset, length]);
    original.call(native, fd, offset, length);
  };
  try {
    await runMerge(validateConfig(cfg('ties', { density: 0.4 })), { out, quiet: true, shardSize: 9000 });
  } finally {
    native.startWriteback = original;
  }
  const ck = Checkpoint.open(out);
  try {
    // every tensor's slot (byte range in its shard), the merged ones and the copied one
    const slots = new Set(SPECS.map((s) => {
      const { file, info } = ck.locate(s.name);
      return `${file.path}:${file.dataStart + info.begin}:${info.end - info.begin}`;
    }));
    assert.ok(new Set(SPECS.map((s) => ck.locate(s.name).file.path)).size > 1, 'several shards');
    // all but the last tensor, each once; the fd tells the shard (descriptors are not reused while the writer is open)
    assert.equal(calls.length, SPECS.length - 1, JSON.stringify(calls));
    const shardOf = new Map<number, string>();
    for (const [fd, offset, length] of calls) {
      const hit = [...slots].find((k) => k.endsWith(`:${offset}:${length}`) && (!shardOf.has(fd) || k.startsWith(shardOf.get(fd)! + ':')));
      assert.ok(hit, `a slot at ${offset} (+${length}) of fd ${fd}: ${[...slots].join(', ')}`);
      shardOf.set(fd, hit.slice(0, hit.lastIndexOf(':', hit.lastIndexOf(':') - 1)));
      slots.delete(hit);
    }
    assert.equal(slots.size, 1, 'only the last tensor is left to the final fsync');
  } finally {
    ck.close();
  }
});

test('mismatched models are refused with every problem listed, and nothing is written', async () => {
  // transposed embedding, no model.scalar
  writeModel(join(root, 'odd'), randomValues(), [
    { name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [7, 13] },
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [4097] },
    { name: 'model.norm.weight', dtype: 'F16', shape: [3, 5] },
    { name: 'position_ids', dtype: 'I64', shape: [3] },
  ]);
  const out = join(root, 'mismatch-out');
  await assert.rejects(
    runMerge(validateConfig({ ...cfg('linear'), models: [{ path: models[0]!.dir, parameters: { weight: 1 } }, { path: join(root, 'odd'), parameters: { weight: 1 } }] }), { out, quiet: true }),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ModelMismatch');
      assert.match(e.message, /odd: does not match the reference model/);
      assert.match(e.message, /"model\.embed_tokens\.weight" has shape \[7, 13\], the reference has \[13, 7\]/);
      assert.match(e.message, /"model\.scalar" is missing/);
      return true;
    },
  );
  assert.equal(existsSync(out), false);
});

test('dfmerge merge CLI: flags, YAML, and errors that say what to do', () => {
  const out = join(root, 'cli-out');
  const r = runCli(['merge', '--method', 'ties', '--base', base.dir, '-m', models[0]!.dir, '-m', models[1]!.dir, '--density', '0.5', '--dtype', 'bf16', '-o', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /wrote 1 file\(s\)/);
  const again = runCli(['merge', '--method', 'ties', '--base', base.dir, '-m', models[0]!.dir, '--density', '0.5', '-o', out]);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /not empty; pass --force/);
  const noBase = runCli(['merge', '--method', 'ties', '-m', models[0]!.dir, '-o', join(root, 'x')]);
  assert.equal(noBase.status, 2);
  assert.match(noBase.stderr, /needs a base model/);
  const weights = runCli(['merge', '--base', base.dir, '-m', models[0]!.dir, '-m', models[1]!.dir, '-w', '1', '-w', '2', '-w', '3', '-o', join(root, 'x')]);
  assert.match(weights.stderr, /--weight was given 3 times for 2 models/);
  const unused = runCli(['merge', '--method', 'linear', '-m', models[0]!.dir, '--density', '0.5', '-o', join(root, 'x')]);
  assert.match(unused.stderr, /parameter "density" is not used by this method/);
  const missing = runCli(['merge', '-m', join(root, 'nope'), '-o', join(root, 'x')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nope: no such file or folder/);
  assert.equal(existsSync(join(root, 'x')), false, 'failed merges create no output folder');
  if (addon().buildInfo().cudaDevices === 0) {
    const cuda = runCli(['merge', '--method', 'ties', '--base', base.dir, '-m', models[0]!.dir, '--density', '0.5', '--device', 'cuda', '-o', join(root, 'x')]);
    assert.equal(cuda.status, 1);
    assert.match(cuda.stderr, /CUDA|cuda/);
    assert.equal(existsSync(join(root, 'x')), false, 'a merge that fails in the kernel leaves no output folder');
  }
  const help = runCli(['merge', '--help']);
  assert.match(help.stdout, /ties +keep the top density of \|τ_k\|/);
  assert.match(help.stdout, /slerp +θ = sin/);
});
