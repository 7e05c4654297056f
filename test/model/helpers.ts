/** Shared helpers for the model tests: fixture paths, golden tensors, tolerances. */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { LlamaRuntime, TokenizedExample } from '../../src/model/runtime.js';

// dist/test/model -> repository root
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'llama');
export const VARIANTS = ['mha', 'gqa', 'tied', 'qwen2'] as const;

export interface GoldenJson {
  examples: { prompt: number[]; choices: number[][]; answer: number }[];
  loglik: number[][];
  prob: number[][];
  gradient: { example: number; choice: number };
  fisherEps: number;
}

export function goldenJson(variant: string): GoldenJson {
  return JSON.parse(readFileSync(join(FIXTURES, variant, 'golden.json'), 'utf8')) as GoldenJson;
}

export function goldenTensors(variant: string): { get(name: string): Float32Array; names: string[]; tokens: Int32Array; close(): void } {
  const f = SafetensorsFile.open(join(FIXTURES, variant, 'golden.safetensors'));
  const tokBytes = f.bytes('seq_tokens');
  const tokens = new Int32Array(tokBytes.slice().buffer);
  return { get: (n) => f.toFloat32(n), names: f.tensors.map((t) => t.name), tokens, close: () => f.close() };
}

/** max |a − b| / max |b| (per tensor). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}

export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  const e = relErr(a, b);
  assert.ok(e <= tol, `${what}: max-abs-error / max-abs-value = ${e.toExponential(3)} > ${tol}`);
}

/** The config families of test/fixtures/families (scripts/fixtures/make_family_fixtures.py). */
export const FAMILY_FIXTURES = join(ROOT, 'test', 'fixtures', 'families');
export const FAMILIES = ['llama3', 'linear', 'dynamic', 'yarn', 'longrope', 'mistral', 'qwen2_window', 'qwen3', 'gemma2', 'gemma3'] as const;

export function familyGoldenJson(family: string): GoldenJson & { sequenceLengths: number[][] } {
  return JSON.parse(readFileSync(join(FAMILY_FIXTURES, family, 'golden.json'), 'utf8')) as GoldenJson & { sequenceLengths: number[][] };
}

export function familyGoldenTensors(family: string): ReturnType<typeof goldenTensors> {
  return goldenTensors(join('..', 'families', family));
}

/**
 * Elementwise |a − b| <= rtol·|b| + atol for every element (the atol floor
 * covers elements that are zero up to rounding); reports the worst element.
 */
export function assertAllClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length mismatch`);
  let worst = -1, excess = 0;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) - (rtol * Math.abs(b[i]!) + atol);
    if (!(e <= 0) && (worst < 0 || !(e <= excess))) { worst = i; excess = e; }
  }
  assert.ok(worst < 0, `${what}: element ${worst}: ${a[worst]} vs ${b[worst]} (|diff| ${Math.abs(a[worst]! - b[worst]!).toExponential(3)} > ${rtol}·|b| + ${atol})`);
}

/**
 * F = (1/N) Σ_n Σ_y p(y|x_n)·(∇ℓ(y|x_n))² + eps from the runtime's full per-choice gradients (its unfused
 * backward), squared and summed here in f64: a check that shares no Fisher code with the fused path.
 */
export async function fisherFromGradients(rt: LlamaRuntime, examples: readonly TokenizedExample[], eps = 1e-12): Promise<Float64Array> {
  const F = new Float64Array(rt.numParams);
  for (const e of examples) {
    const ll = (await rt.score([e]))[0]!;
    const mx = Math.max(...ll);
    const z = ll.reduce((a, x) => a + Math.exp(x - mx), 0);
    for (let y = 0; y < e.choices.length; y++) {
      const p = Math.exp(ll[y]! - mx) / z;
      const { grad } = await rt.gradient(e.prompt, e.choices[y]!);
      for (let j = 0; j < grad.length; j++) F[j] += (p * grad[j]! * grad[j]!) / examples.length;
    }
  }
  return F.map((f) => f + eps);
}
