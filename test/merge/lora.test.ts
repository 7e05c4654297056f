/**
 * PEFT LoRA adapters as models: a merge through adapters equals the same merge of
 * peft's merge_and_unload outputs (committed fixture, test/fixtures/lora, made by
 * scripts/fixtures/make_lora_fixture.py: rank_pattern, alpha_pattern,
 * modules_to_save, use_rslora), and, when .venv has peft, of a freshly made one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { validateConfig } from '../../src/merge/config.js';
import { runMerge } from '../../src/merge/run.js';
import { compare, deltas, refDeltaSum, type RefResult } from './reference.js';
import { FIXTURES, ROOT, tempDir } from '../helpers.js';

const LORA = join(FIXTURES, 'lora');
const root = tempDir();

function values(dir: string): Map<string, Float64Array> {
  const ck = Checkpoint.open(dir);
  const out = new Map<string, Float64Array>();
  for (const n of ck.names) out.set(n, Float64Array.from(ck.locate(n).file.toFloat32(n)));
  ck.close();
  return out;
}

/** peft computes W + s·B·A in f32 too: allow a few f32 roundings of the terms |W| and |s·B·A|. */
function close(ref: Float64Array, base: Float64Array): RefResult {
  return { value: ref, mag: ref.map((v, i) => 4 * (Math.abs(base[i]!) + Math.abs(v - base[i]!))) };
}

function expectAll(out: string, want: (name: string) => RefResult): void {
  const ck = Checkpoint.open(out);
  for (const n of ck.names) {
    const r = compare(ck.locate(n).file.bytes(n), 'F32', want(n));
    assert.equal(r.badCount, 0, `${n}: ${JSON.stringify(r.bad)}`);
  }
  ck.close();
}

async function checkFolder(dir: string, tag: string): Promise<void> {
  const base = values(join(dir, 'base'));
  const merged = [values(join(dir, 'merged_a')), values(join(dir, 'merged_b'))];
  // one adapter alone: θ_a
  const one = join(root, `${tag}-one`);
  await runMerge(validateConfig({ method: 'linear', base: join(dir, 'base'), models: [{ path: join(dir, 'adapter_a'), parameters: { weight: 1 } }], parameters: {}, seed: 0 }), { out: one, quiet: true });
  expectAll(one, (n) => close(merged[0]!.get(n)!, base.get(n)!));
  // task arithmetic of both adapters against the same of peft's merged models
  const ta = join(root, `${tag}-ta`);
  const w = [0.5, 0.7];
  await runMerge(validateConfig({
    method: 'task_arithmetic', base: join(dir, 'base'),
    models: [{ path: join(dir, 'adapter_a'), parameters: { weight: w[0]! } }, { path: join(dir, 'adapter_b'), parameters: { weight: w[1]! } }], parameters: {}, seed: 0,
  }), { out: ta, quiet: true });
  expectAll(ta, (n) => {
    const b = base.get(n)!;
    const r = refDeltaSum(b, deltas(b, merged.map((m) => m.get(n)!)), w, false);
    return { value: r.value, mag: r.mag.map((m) => 4 * m) };
  });
}

test('LoRA adapters merge like peft merge_and_unload (committed fixture)', async () => {
  await checkFolder(LORA, 'fixture');
});

test('an adapter without base_model, and a broken adapter, are refused with the file named', async () => {
  await assert.rejects(
    runMerge(validateConfig({ method: 'linear', models: [{ path: join(LORA, 'adapter_a'), parameters: { weight: 1 } }], parameters: {}, seed: 0 }), { out: join(root, 'nobase'), quiet: true }),
    /adapter_a: is a LoRA adapter: give the model it was trained on as base_model/,
  );
  assert.equal(existsSync(join(root, 'nobase')), false);
  await assert.rejects(
    runMerge(validateConfig({ method: 'linear', base: join(FIXTURES, 'llama', 'gqa'), models: [{ path: join(LORA, 'adapter_a'), parameters: { weight: 1 } }], parameters: {}, seed: 0 }), { out: join(root, 'wrongbase'), quiet: true }),
    /adapter_model\.safetensors: .*(do not make a rank-4 update|neither a LoRA factor nor a tensor of the base model)/,
  );
});

test('LoRA adapters merge like peft merge_and_unload (fresh adapters made with peft)', async (t) => {
  const py = join(ROOT, '.venv', 'bin', 'python');
  const probe = existsSync(py) ? spawnSync(py, ['-c', 'import peft, torch, transformers'], { encoding: 'utf8' }) : undefined;
  if (!probe || probe.status !== 0) {
    t.skip('.venv has no peft/torch/transformers: the live peft check is skipped (the committed fixture test above still runs)');
    return;
  }
  const dir = join(root, 'fresh');
  const r = spawnSync(py, [join(ROOT, 'scripts', 'fixtures', 'make_lora_fixture.py'), dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  await checkFolder(dir, 'fresh');
});
