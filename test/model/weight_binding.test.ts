/**
 * Weight access (docs/design.md §5): parameters bound to bf16
 * checkpoints and to scaled models θ_pre + λτ formed inside the GEMMs, and the
 * fused DF-Merge accumulators S and W, against independent computations from
 * f32 weights and full per-choice gradients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { CheckpointWriter } from '../../src/io/writer.js';
import { addon } from '../../src/native/addon.js';
import { LlamaRuntime, checkpointSource, newFloatBuffer } from '../../src/model/runtime.js';
import { FIXTURES, fisherFromGradients, goldenJson } from './helpers.js';

/** Writes the fixture's weights, perturbed by `shift(i)`, as a BF16 checkpoint; returns them decoded to f32. */
function writeBf16(dir: string, variant: string, shift: (x: number, i: number) => number): Map<string, Float32Array> {
  mkdirSync(dir, { recursive: true });
  const model = LlamaRuntime.fromCheckpoint(join(FIXTURES, variant));
  const w = new CheckpointWriter(dir, model.params.map((p) => ({ name: p.name, dtype: 'BF16', shape: p.shape })));
  const decoded = new Map<string, Float32Array>();
  for (const p of model.params) {
    const bf = addon().fromFloat32(model.getWeight(p.name).map(shift), 'BF16');
    w.write(p.name, bf);
    decoded.set(p.name, addon().toFloat32(bf, 'BF16'));
  }
  w.finish();
  for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(FIXTURES, variant, f), join(dir, f));
  return decoded;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Elementwise |a − b| ≤ rel·|b| + abs for every element. */
function assertElementwise(a: ArrayLike<number>, b: ArrayLike<number>, rel: number, abs: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    assert.ok(d <= rel * Math.abs(b[i]!) + abs, `${what}[${i}]: ${a[i]} vs ${b[i]} (|Δ| ${d.toExponential(2)})`);
  }
}

for (const variant of ['gqa', 'tied'] as const) {
  test(`${variant}: a scaled model of two BF16 checkpoints, formed in the GEMMs, equals it built in f32`, async () => {
    const root = mkdtempSync(join(tmpdir(), 'dfm-bind-'));
    try {
      const baseDir = join(root, 'base'), expertDir = join(root, 'expert');
      const base = writeBf16(baseDir, variant, (x, i) => x * 0.8 + 0.01 * Math.sin(i));
      const expert = writeBf16(expertDir, variant, (x) => x);
      const lambda = 0.65;
      const scaled = LlamaRuntime.fromCheckpoint(expertDir, { base: baseDir, scale: lambda });
      const f32 = new Map<string, Float32Array>();
      for (const [name, b] of base) {
        const e = expert.get(name)!;
        f32.set(name, b.map((x, i) => x + lambda * (e[i]! - x)));
      }
      const ref = LlamaRuntime.fromWeights(scaled.config, f32);
      const ex = goldenJson(variant).examples;
      const tokens = Int32Array.from([...ex[0]!.prompt, ...ex[0]!.choices[0]!]);
      const a = await scaled.logits(tokens), b = await ref.logits(tokens);
      assert.ok(maxAbsDiff(a, b) <= 1e-5 * (1 + Math.max(...b.map(Math.abs))), `logits differ by ${maxAbsDiff(a, b)}`);
      // short (T < 12) and long sequences take different GEMM paths
      const long = Int32Array.from({ length: 20 }, (_, i) => tokens[i % tokens.length]!);
      assert.ok(maxAbsDiff(await scaled.logits(long), await ref.logits(long)) <= 1e-4, 'long-sequence logits');
      // a bound parameter reads back as the scaled f32 values
      for (const p of scaled.params) assert.ok(maxAbsDiff(scaled.getWeight(p.name), f32.get(p.name)!) <= 1e-6, p.name);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test(`${variant}: the fused Fisher fold gives S = (1/N)Σ p·g² + ε and W = S ⊙ λτ, equal to full per-choice gradients`, async () => {
    const root = mkdtempSync(join(tmpdir(), 'dfm-fold-'));
    try {
      const baseDir = join(root, 'base'), expertDir = join(root, 'expert');
      const base = writeBf16(baseDir, variant, (x, i) => x * 0.9 - 0.005 * Math.cos(i));
      const expert = writeBf16(expertDir, variant, (x) => x);
      const lambda = 0.4;
      const rt = LlamaRuntime.fromConfig(LlamaRuntime.fromCheckpoint(expertDir).config);
      const baseCk = Checkpoint.open(baseDir), expertCk = Checkpoint.open(expertDir);
      rt.bind(checkpointSource(baseCk, rt.params), checkpointSource(expertCk, rt.params), lambda);
      const examples = goldenJson(variant).examples.map((e) => ({
        prompt: Int32Array.from(e.prompt), choices: e.choices.map((c) => Int32Array.from(c)), answer: e.answer, u: 0,
      }));
      const N = examples.length, eps = 1e-6;  // a visible ε, so that its fold is checked too
      const S = newFloatBuffer(rt.numParams), W = newFloatBuffer(rt.numParams);
      await rt.accumulateFisher(S, examples.slice(0, 2), 'expected', { w: W, scale: 1 / N });
      await rt.accumulateFisher(S, examples.slice(2), 'expected', { w: W, scale: 1 / N });
      await rt.fisherEpsilon(S, W, eps);
      // independent: f32 copy of the scaled model, full gradients of every choice (the unfused backward)
      const f32 = new Map<string, Float32Array>();
      for (const [name, b] of base) f32.set(name, b.map((x, i) => x + lambda * (expert.get(name)![i]! - x)));
      const ref = LlamaRuntime.fromWeights(rt.config, f32);
      const F = await fisherFromGradients(ref, examples, 0);
      for (const p of rt.params) {
        const s = S.view(p.offset, p.numel), w = W.view(p.offset, p.numel);
        const b = base.get(p.name)!, x = expert.get(p.name)!;
        const fRef = Float64Array.from({ length: p.numel }, (_, j) => F[p.offset + j]! + eps);
        const wRef = fRef.map((f, j) => f * lambda * (x[j]! - b[j]!));
        const floor = 1e-6 * Math.max(...fRef);
        assertElementwise(s, fRef, 1e-3, floor, `S ${p.name}`);
        assertElementwise(w, wRef, 1e-3, floor * Math.max(1e-3, ...wRef.map((v, j) => Math.abs(v) / fRef[j]!)), `W ${p.name}`);
      }
      baseCk.close();
      expertCk.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

test('FloatBuffer: more than 2^32 floats, zero-copy views, zero() clears', () => {
  const n = 2 ** 32 + 1024;  // 16 GiB of address space; only the touched pages are resident
  const buf = newFloatBuffer(n);
  assert.equal(buf.length, n);
  const tail = buf.view(n - 8, 8);
  tail.set([1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...buf.view(n - 4, 4)], [5, 6, 7, 8], 'views alias the same memory');
  buf.zero();
  assert.deepEqual([...tail], [0, 0, 0, 0, 0, 0, 0, 0], 'zero() clears what views see');
  assert.throws(() => buf.view(n - 4, 8), /outside the buffer/);
});
