/** Linear (weighted average, mergekit "linear"): θ = Σ w_k θ_k / Σ w_k (without normalize: Σ w_k θ_k). */
import type { MethodDescriptor } from './types.js';

export const linear: MethodDescriptor = {
  name: 'linear',
  aliases: ['average'],
  formula: 'θ = Σ w_k θ_k / Σ w_k (normalize: false drops the division)',
  reference: 'https://arxiv.org/abs/2203.05482',
  base: 'unused',
  models: { min: 1 },
  global: { normalize: { kind: 'boolean', default: true, help: 'divide by Σ w_k' } },
  perModel: { weight: { kind: 'number', required: true, help: 'w_k' } },
  request: (t, inputs, out) => ({
    method: 'linear', tensor: t.name, out, models: inputs.models, weights: t.weights, normalize: Boolean(t.params.normalize),
  }),
};
