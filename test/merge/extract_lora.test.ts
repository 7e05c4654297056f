/**
 * extract-lora: the task vectors of peft's merged fixture model are exactly rank
 * 4 (q_proj, up_proj) and 2 (v_proj); extracting at rank 4 and merging the
 * adapter back gives the fine-tuned weights (to f32 rounding of the SVD); lower
 * ranks give the Eckart–Young error; peft loads the adapter when .venv has it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { validateConfig } from '../../src/merge/config.js';
import { extractLora } from '../../src/merge/extract_lora.js';
import { runMerge } from '../../src/merge/run.js';
import { truncatedSvd } from '../../src/merge/svd.js';
import { FIXTURES, ROOT, runCli, tempDir } from '../helpers.js';

const LORA = join(FIXTURES, 'lora');
const root = tempDir();
const TARGETS = ['q_proj', 'v_proj', 'up_proj'];

function f32(dir: string, name: string): Float32Array {
  const ck = Checkpoint.open(dir);
  const v = ck.locate(name).file.toFloat32(name);
  ck.close();
  return v;
}

test('truncated SVD recovers a rank-3 matrix and orders the singular values', () => {
  const m = 13;
  const n = 9;
  const a = new Float32Array(m * n);
  const sv = [5, 2, 0.5];
  for (let q = 0; q < 3; q += 1) {
    for (let i = 0; i < m; i += 1) for (let j = 0; j < n; j += 1) a[i * n + j] += sv[q]! * Math.sin((q + 1) * (i + 1) * 0.7) * Math.cos((q + 2) * (j + 1) * 0.3);
  }
  const s = truncatedSvd(a, m, n, 3);
  let back = 0;
  let norm = 0;
  for (let i = 0; i < m; i += 1) {
    for (let j = 0; j < n; j += 1) {
      let x = 0;
      for (let q = 0; q < 3; q += 1) x += s.u[i * 3 + q]! * s.s[q]! * s.vt[q * n + j]!;
      back += (x - a[i * n + j]!) ** 2;
      norm += a[i * n + j]! ** 2;
    }
  }
  assert.ok(back / norm < 1e-12, `reconstruction error ${back / norm}`);
  assert.ok(s.s[0]! >= s.s[1]! && s.s[1]! >= s.s[2]!);
});

test('extract-lora at the true rank, merged back, gives the fine-tuned model; lm_head is reported as not expressible', async () => {
  const out = join(root, 'ex4');
  const r = extractLora({ base: join(LORA, 'base'), model: join(LORA, 'merged_a'), out, rank: 4, targets: TARGETS });
  assert.equal(r.modules, 6);
  assert.ok(r.relativeError < 1e-10, `relative error ${r.relativeError}`);
  assert.deepEqual(r.untouched, ['lm_head.weight']);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as { r: number; target_modules: string[]; rank_pattern: Record<string, number> };
  assert.equal(cfg.r, 4);
  assert.deepEqual([...cfg.target_modules].sort(), [...TARGETS].sort());
  const merged = join(root, 'ex4-merged');
  await runMerge(validateConfig({ method: 'linear', base: join(LORA, 'base'), models: [{ path: out, parameters: { weight: 1 } }], parameters: {}, seed: 0 }), { out: merged, quiet: true });
  for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.1.self_attn.v_proj.weight', 'model.layers.1.mlp.up_proj.weight']) {
    const got = f32(merged, name);
    const want = f32(join(LORA, 'merged_a'), name);
    const base = f32(join(LORA, 'base'), name);
    got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) <= 1e-5 * (Math.abs(base[i]!) + Math.abs(want[i]! - base[i]!)) + 1e-7, `${name}[${i}]: ${g} vs ${want[i]}`));
  }
});

test('extract-lora below the true rank has the Eckart–Young error; the CLI refuses a bad rank', () => {
  const r1 = extractLora({ base: join(LORA, 'base'), model: join(LORA, 'merged_a'), out: join(root, 'ex1'), rank: 1, targets: TARGETS });
  assert.ok(r1.relativeError > 0.05 && r1.relativeError < 1, `relative error ${r1.relativeError}`);
  const bad = runCli(['extract-lora', '--base', join(LORA, 'base'), '-m', join(LORA, 'merged_a'), '--rank', '0', '-o', join(root, 'x')]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--rank must be a positive integer/);
});

test('peft loads the extracted adapter and merges it like dfmerge (when .venv has peft)', async (t) => {
  const py = join(ROOT, '.venv', 'bin', 'python');
  const probe = existsSync(py) ? spawnSync(py, ['-c', 'import peft, torch, transformers'], { encoding: 'utf8' }) : undefined;
  if (!probe || probe.status !== 0) {
    t.skip('.venv has no peft/torch/transformers: the peft load check is skipped');
    return;
  }
  const out = join(root, 'ex-peft');
  extractLora({ base: join(LORA, 'base'), model: join(LORA, 'merged_b'), out, rank: 3, targets: ['q_proj', 'k_proj', 'down_proj'] });
  const peftOut = join(root, 'ex-peft-merged');
  const script = [
    'import sys, torch', 'from transformers import AutoModelForCausalLM', 'from peft import PeftModel',
    'base = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32)',
    'm = PeftModel.from_pretrained(base, sys.argv[2]).merge_and_unload()', 'm.save_pretrained(sys.argv[3], safe_serialization=True)',
  ].join('\n');
  const r = spawnSync(py, ['-c', script, join(LORA, 'base'), out, peftOut], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ours = join(root, 'ex-peft-ours');
  await runMerge(validateConfig({ method: 'linear', base: join(LORA, 'base'), models: [{ path: out, parameters: { weight: 1 } }], parameters: {}, seed: 0 }), { out: ours, quiet: true });
  for (const name of ['model.layers.0.self_attn.k_proj.weight', 'model.layers.1.mlp.down_proj.weight']) {
    const a = f32(ours, name);
    const b = f32(peftOut, name);
    a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= 1e-5 * Math.abs(b[i]!) + 1e-6, `${name}[${i}]: ${x} vs ${b[i]}`));
  }
});
