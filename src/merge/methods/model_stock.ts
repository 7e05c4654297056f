/**
 * Model stock (Jang et al. 2024, eq. as mergekit): cos θ = the mean over model
 * pairs of ⟨τ_i, τ_j⟩ / max(‖τ_i‖‖τ_j‖, 1e-6) (clamped to [−1, 1]), per tensor or
 * per row (filter_wise); t = N cos θ / (1 + (N − 1) cos θ);
 * θ = t · mean_k θ_k + (1 − t) θ_b = θ_b + (t/N) Σ_k τ_k.
 */
import { WHOLE, grams, lincomb, rowSegments, type Gram } from './gram.js';
import { param, refuse, requireBase, type MethodDescriptor } from './types.js';
import type { TensorPlan } from '../plan.js';

export function modelStockT(g: Gram, t: TensorPlan): number {
  const k = g.k;
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < k; i += 1) {
    for (let j = i + 1; j < k; j += 1) {
      const np = Math.sqrt(Math.max(0, g.at(i, i))) * Math.sqrt(Math.max(0, g.at(j, j)));
      sum += Math.min(1, Math.max(-1, g.at(i, j) / Math.max(np, 1e-6)));
      pairs += 1;
    }
  }
  const cos = sum / pairs;
  const den = 1 + (k - 1) * cos;
  if (den === 0) refuse(t, `model_stock: the task vectors' mean cosine ${cos} makes t = N cos/(1 + (N−1) cos) infinite`);
  return (k * cos) / den;
}

export const modelStock: MethodDescriptor = {
  name: 'model_stock',
  formula: 'θ = θ_b + t · mean_k τ_k, t = N cos θ/(1 + (N−1) cos θ), cos θ = mean pairwise cosine of the τ_k',
  reference: 'https://arxiv.org/abs/2403.19522',
  base: 'required',
  models: { min: 2 },
  global: { filter_wise: { kind: 'boolean', default: false, help: 'one t per row (last dimension) instead of per tensor' } },
  perModel: {},
  request: async (t, inputs, out) => {
    const base = requireBase(t, inputs);
    const seg = param(t, 'filter_wise') ? rowSegments(t) : WHOLE;
    const gs = await grams(t, inputs.models, base, seg, inputs.threads);
    const k = inputs.models.length;
    return lincomb(t, inputs.models, base, seg, gs.map((g) => {
      const tt = modelStockT(g, t);
      return Array.from({ length: k }, () => tt / k);
    }), out);
  },
};
