/**
 * Gram-matrix methods: those whose result is, per tensor (or per row / column), a
 * linear combination of the inputs with coefficients that depend on inner
 * products only. One statistics pass gives G = [⟨v_q, v_r⟩] (f64; v = θ_k or
 * τ_k = θ_k − θ_b), the descriptor computes the coefficients from G in f64, and
 * the native `lincomb` kernel forms Σ c_k v_k in one more pass.
 */
import { tensorGram, type LincombRequest, type MergeOutput, type Segments, type TensorInput } from '../kernels.js';
import type { TensorPlan } from '../plan.js';
import { refuse, type MethodInputs } from './types.js';

export interface SegmentSpec {
  readonly segments: Segments;
  readonly segLen: number;
  readonly count: number;
}

export const WHOLE: SegmentSpec = { segments: 'whole', segLen: 1, count: 1 };

/** One segment per row: runs of the last dimension (mergekit's dim = −1); ≤ 1-D tensors are one row. */
export function rowSegments(t: TensorPlan): SegmentSpec {
  if (t.shape.length <= 1 || t.numel === 0) return WHOLE;
  const len = t.shape[t.shape.length - 1]!;
  return { segments: 'rows', segLen: len, count: t.numel / len };
}

/** One segment per column of a matrix (mergekit's dim = 0); ≤ 1-D tensors are one column. */
export function colSegments(t: TensorPlan): SegmentSpec {
  if (t.shape.length <= 1 || t.numel === 0) return WHOLE;
  if (t.shape.length > 2) refuse(t, `column-wise interpolation needs a matrix; this tensor has ${t.shape.length} dimensions`);
  return { segments: 'cols', segLen: t.shape[1]!, count: t.shape[1]! };
}

/** A k × k symmetric matrix. */
export interface Gram {
  readonly k: number;
  at(q: number, r: number): number;
}

/** ⟨a, b⟩_G = aᵀ G b for coefficient vectors over the inputs. */
export function dot(g: Gram, a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let q = 0; q < g.k; q += 1) for (let r = 0; r < g.k; r += 1) s += a[q]! * g.at(q, r) * b[r]!;
  return s;
}

export function norm(g: Gram, a: readonly number[]): number {
  return Math.sqrt(Math.max(0, dot(g, a, a)));
}

/** The Gram matrices of `vectors` (minus `base` when given), one per segment. */
export async function grams(t: TensorPlan, vectors: readonly TensorInput[], base: TensorInput | undefined, seg: SegmentSpec, threads?: number): Promise<Gram[]> {
  const k = vectors.length;
  const flat = t.numel === 0 ? new Float64Array(seg.count * k * k) : await tensorGram({
    models: vectors, ...(base ? { base } : {}), segments: seg.segments, segLen: seg.segLen, tensor: t.name,
    ...(threads !== undefined ? { threads } : {}),
  });
  return Array.from({ length: seg.count }, (_, s) => ({ k, at: (q: number, r: number) => flat[s * k * k + q * k + r]! }));
}

/** The lincomb request for per-segment coefficient vectors (over `vectors`, minus `base` when given). */
export function lincomb(t: TensorPlan, vectors: readonly TensorInput[], base: TensorInput | undefined, seg: SegmentSpec,
  coef: readonly (readonly number[])[], out: MergeOutput): LincombRequest {
  const flat: number[] = [];
  for (const c of coef) {
    for (const x of c) {
      if (!Number.isFinite(x)) refuse(t, `the interpolation coefficients are not finite (${c.join(', ')}): the inputs are degenerate for this method`);
      flat.push(x);
    }
  }
  return { method: 'lincomb', tensor: t.name, out, models: vectors, ...(base ? { base } : {}), coef: flat, segments: seg.segments, segLen: seg.segLen };
}

export type { MethodInputs };
