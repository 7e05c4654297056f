/**
 * Spherical interpolation methods, each a Gram-matrix method (./gram.ts):
 *  slerp      (Shoemake 1985, as mergekit): per tensor, over the flattened tensors v0 = θ_b, v1 = θ_1:
 *             cos Ω = ⟨v0, v1⟩ / (‖v0‖ ‖v1‖) (a norm ≤ 1e-8 counts as 1);
 *             |cos Ω| > 0.9995: θ = (1 − t) v0 + t v1, else θ = sin((1 − t)Ω)/sin Ω · v0 + sin(tΩ)/sin Ω · v1.
 *  nuslerp    (mergekit): t = w_1 / (w_0 + w_1) (0.5 when |Σw| < 1e-6), the same interpolation of θ_k
 *             or of τ_k = θ_k − θ_b (then + θ_b), over the whole tensor, its rows or its columns;
 *             norms clamped at 1e-7; lerp where |sin Ω| < 1e-8.
 *  multislerp (Goddard, as mergekit): barycentric interpolation on the sphere: unit u_k = v_k/(‖v_k‖ + ε),
 *             m = Σ w_k u_k / ‖·‖, tangents T = Σ w_k (u_k − ⟨u_k, m⟩ m),
 *             θ = (Σ w_k ‖v_k‖) (m cos‖T‖' + T sin‖T‖'/‖T‖'), ‖T‖' = ‖T‖ + ε (+ θ_b with a base).
 */
import { UsageError } from '../../errors.js';
import { WHOLE, colSegments, dot, grams, lincomb, norm, rowSegments, type Gram } from './gram.js';
import { modelNumber, param, rangeCheck, requireBase, type MethodDescriptor } from './types.js';

/** mergekit's slerp coefficients [c0, c1] for θ = c0 v0 + c1 v1. */
export function slerpCoefficients(t: number, g: Gram): [number, number] {
  const eps = 1e-8;
  const n0 = Math.sqrt(g.at(0, 0));
  const n1 = Math.sqrt(g.at(1, 1));
  const cos = g.at(0, 1) / ((n0 > eps ? n0 : 1) * (n1 > eps ? n1 : 1));
  if (Math.abs(cos) > 0.9995) return [1 - t, t];
  const omega = Math.acos(cos);
  const s = Math.sin(omega);
  return [Math.sin(omega - omega * t) / s, Math.sin(omega * t) / s];
}

export const slerp: MethodDescriptor = {
  name: 'slerp',
  formula: 'θ = sin((1−t)Ω)/sin Ω · θ_b + sin(tΩ)/sin Ω · θ_1, cos Ω = ⟨θ_b, θ_1⟩/(‖θ_b‖‖θ_1‖) per tensor (lerp when |cos Ω| > 0.9995)',
  reference: 'https://en.wikipedia.org/wiki/Slerp',
  base: 'required',
  models: { min: 1, max: 1 },
  global: { t: { kind: 'number', required: true, help: 't: 0 gives the base, 1 the other model (a list interpolates over layers)' } },
  perModel: {},
  request: async (t, inputs, out) => {
    const vectors = [requireBase(t, inputs), inputs.models[0]!];
    const [g] = await grams(t, vectors, undefined, WHOLE, inputs.threads);
    return lincomb(t, vectors, undefined, WHOLE, [slerpCoefficients(Number(param(t, 't')), g!)], out);
  },
};

/** NuSLERP's coefficients for one segment. */
export function nuslerpCoefficients(t: number, g: Gram): [number, number] {
  const n0 = Math.max(Math.sqrt(g.at(0, 0)), 1e-7);
  const n1 = Math.max(Math.sqrt(g.at(1, 1)), 1e-7);
  const cos = Math.min(1, Math.max(-1, g.at(0, 1) / (n0 * n1)));
  const omega = Math.acos(cos);
  const s = Math.sin(omega);
  if (Math.abs(s) < 1e-8) return [1 - t, t];
  return [Math.sin((1 - t) * omega) / s, Math.sin(t * omega) / s];
}

export const nuslerp: MethodDescriptor = {
  name: 'nuslerp',
  formula: 'SLERP of θ_0, θ_1 (or of τ_0, τ_1 with a base) at t = w_1/(w_0 + w_1), per tensor, row or column',
  reference: 'https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md',
  base: 'optional',
  models: { min: 2, max: 2 },
  global: {
    nuslerp_flatten: { kind: 'boolean', default: true, help: 'interpolate the flattened tensors (false: each row, or each column with nuslerp_row_wise)' },
    nuslerp_row_wise: { kind: 'boolean', default: false, help: 'without flattening, interpolate column vectors (mergekit: dim 0) instead of rows' },
  },
  perModel: { weight: { kind: 'number', required: true, help: 'w_k: t = w_1/(w_0 + w_1)' } },
  request: async (t, inputs, out) => {
    const [w0, w1] = [modelNumber(t, 0, 'weight'), modelNumber(t, 1, 'weight')];
    const tt = Math.abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
    const seg = param(t, 'nuslerp_flatten') ? WHOLE : param(t, 'nuslerp_row_wise') ? colSegments(t) : rowSegments(t);
    const gs = await grams(t, inputs.models, inputs.base, seg, inputs.threads);
    return lincomb(t, inputs.models, inputs.base, seg, gs.map((g) => nuslerpCoefficients(tt, g)), out);
  },
};

/** Multi-SLERP's coefficients over the k inputs (weights already normalised when asked). */
export function multislerpCoefficients(w: readonly number[], g: Gram, eps: number, tensor: string): number[] {
  const k = w.length;
  const n = w.map((_, q) => Math.sqrt(Math.max(0, g.at(q, q))));
  const unit = (q: number) => w.map((_, r) => (r === q ? 1 / (n[q]! + eps) : 0));
  const mean = w.map((wq, q) => wq / (n[q]! + eps));
  const meanNorm = norm(g, mean);
  if (meanNorm < eps) {
    if (k === 2) return [w[0]!, w[1]!];
    throw new UsageError(`tensor ${tensor}: multislerp: the weighted sum of the unit task vectors is zero (antipodal inputs with balancing weights); change the weights`);
  }
  const m = mean.map((x) => x / meanNorm);
  let wdots = 0;
  for (let q = 0; q < k; q += 1) wdots += w[q]! * dot(g, unit(q), m);
  const tangent = w.map((wq, r) => wq / (n[r]! + eps) - wdots * m[r]!);
  const tn = norm(g, tangent) + eps;
  const avgNorm = n.reduce((a, x, q) => a + x * w[q]!, 0);
  return m.map((mr, r) => avgNorm * (mr * Math.cos(tn) + (tangent[r]! * Math.sin(tn)) / tn));
}

export const multislerp: MethodDescriptor = {
  name: 'multislerp',
  formula: 'barycentric SLERP of k models: tangent-space mean at the normalised weighted mean of the unit θ_k (or τ_k), scaled by Σ w_k ‖·‖',
  reference: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea',
  base: 'optional',
  models: { min: 1 },
  global: {
    normalize_weights: { kind: 'boolean', default: true, help: 'divide the weights by their sum' },
    eps: { kind: 'number', default: 1e-8, help: 'ε added to norms', check: rangeCheck(0, 1) },
  },
  perModel: { weight: { kind: 'number', required: true, help: 'w_k' } },
  request: async (t, inputs, out) => {
    if (inputs.models.length === 1) return lincomb(t, inputs.models, undefined, WHOLE, [[1]], out);
    let w = t.modelParams.map((_, k) => modelNumber(t, k, 'weight'));
    if (param(t, 'normalize_weights')) {
      const s = w.reduce((a, b) => a + b, 0);
      w = w.map((x) => x / s);
    }
    const [g] = await grams(t, inputs.models, inputs.base, WHOLE, inputs.threads);
    return lincomb(t, inputs.models, inputs.base, WHOLE, [multislerpCoefficients(w, g!, Number(param(t, 'eps')), t.name)], out);
  },
};
