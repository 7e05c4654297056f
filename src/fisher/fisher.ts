/**
 * Diagonal Fisher of a (scaled) model on one task's examples (docs/design.md §1):
 *
 *   F = (1/N) · Σ_n Σ_y w_y(x_n) · (∇_θ ℓ(y|x_n))²  +  ε,   ε = 1e-12
 *
 * with w_y = p(y|x) (mode `expected`, the true Fisher; default), one y ~ p per
 * example with weight 1 (`sampled`), or the gold y with weight 1 (`empirical`).
 * The N examples are drawn once with a seed (the DF-Merge loop reuses them in
 * every iteration, so only λ changes F). Per-example, per-choice gradients are
 * squared and folded into one flat f32 accumulator by the native code
 * (native/kernels/fisher.cc); nothing per-example outlives its backward pass.
 */
import { UsageError } from '../errors.js';
import type { FisherMode, NativeFlat, NativeFloatBuffer } from '../native/addon.js';
import { newFloatBuffer, type LlamaRuntime, type TokenizedExample } from '../model/runtime.js';
import { Rng } from '../util/rng.js';
import { SafetensorsWriter } from '../io/writer.js';

export type { FisherMode };
export const FISHER_MODES: readonly FisherMode[] = ['expected', 'sampled', 'empirical'];
export const FISHER_EPS = 1e-12;

/** An example with the uniform number that picks y in sampled mode. */
export interface FisherExample extends TokenizedExample {
  u: number;
}

/**
 * Draws N examples (without replacement; all of them when N >= the task size)
 * and a uniform u per example, both from `seed`: the same seed gives the same
 * examples and the same sampled choices on every call.
 */
export function drawFisherExamples<T extends TokenizedExample>(examples: readonly T[], n: number, seed: number): (T & { u: number })[] {
  if (!(Number.isInteger(n) && n > 0)) throw new UsageError(`the number of Fisher samples must be a positive integer, got ${n}`);
  const rng = new Rng(seed);
  const picked = rng.sample(examples.length, n);
  return picked.map((i) => ({ ...examples[i]!, u: rng.next() }));
}

export interface FisherOptions {
  mode?: FisherMode;
  eps?: number;
  /** Examples per native call (progress is reported between calls). */
  batch?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface FisherStats {
  examples: number;
  /** Σ over examples and choices of prompt + choice tokens (for throughput). */
  tokens: number;
  seconds: number;
}

/**
 * acc += Σ_n Σ_y w_y (∇ℓ(y|x_n))² over `examples` (unnormalised; the DF-Merge
 * loop can keep one accumulator per model and normalise with finalizeFisher).
 */
export async function accumulateFisher(rt: LlamaRuntime, acc: NativeFlat, examples: readonly FisherExample[],
  options: FisherOptions & { scale?: number } = {}): Promise<FisherStats> {
  const mode = options.mode ?? 'expected';
  if (!FISHER_MODES.includes(mode)) throw new UsageError(`Fisher mode must be one of ${FISHER_MODES.join(', ')}, got ${mode}`);
  const batch = Math.max(1, options.batch ?? 4);
  const t0 = performance.now();
  let tokens = 0;
  for (let i = 0; i < examples.length; i += batch) {
    const chunk = examples.slice(i, i + batch);
    await rt.accumulateFisher(acc, chunk, mode, { scale: options.scale ?? 1 });
    for (const e of chunk) tokens += exampleTokens(e);
    options.onProgress?.(Math.min(i + batch, examples.length), examples.length);
  }
  return { examples: examples.length, tokens, seconds: (performance.now() - t0) / 1000 };
}

/**
 * F = (1/N)·Σ + ε for the examples given, in a new native buffer in the
 * runtime's flat layout (1/N folded into each example's weight; more than 2^32
 * values work).
 */
export async function computeFisher(rt: LlamaRuntime, examples: readonly FisherExample[], options: FisherOptions = {}):
Promise<{ fisher: NativeFloatBuffer; stats: FisherStats }> {
  if (examples.length === 0) throw new UsageError('no examples to compute a Fisher from');
  const acc = newFloatBuffer(rt.numParams);
  const stats = await accumulateFisher(rt, acc, examples, { ...options, scale: 1 / examples.length });
  await rt.fisherEpsilon(acc, null, options.eps ?? FISHER_EPS);
  return { fisher: acc, stats };
}

/** Writes a flat Fisher as a safetensors file of F32 tensors with HF names. */
export function writeFisher(rt: LlamaRuntime, fisher: NativeFlat, path: string, metadata: Record<string, string> = {}): void {
  const views = rt.tensorViews(fisher);
  const w = new SafetensorsWriter(path, rt.params.map((p) => ({ name: p.name, dtype: 'F32', shape: p.shape })), metadata);
  try {
    for (const [name, v] of views) w.write(name, v);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** Tokens of one example as throughput counts them: Σ_y (prompt + choice y) tokens. */
export function exampleTokens(e: TokenizedExample): number {
  let t = 0;
  for (const c of e.choices) t += e.prompt.length + c.length;
  return t;
}
