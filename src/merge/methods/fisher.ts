/**
 * Fisher merging (Matena & Raffel 2022): θ = Σ w_k F̂_k θ_k / Σ w_k F̂_k with
 * F̂_k = max(c_k F_k, floor), c_k = 1/‖F_k‖ over the whole model when normalising.
 */
import type { MethodDescriptor } from './types.js';

export const fisher: MethodDescriptor = {
  name: 'fisher',
  formula: 'θ = Σ w_k F̂_k θ_k / Σ w_k F̂_k, F̂_k = max(c_k F_k, fisher_floor) (Fisher files from `dfmerge fisher`)',
  reference: 'https://arxiv.org/abs/2111.09832',
  base: 'unused',
  models: { min: 1 },
  needsFisher: true,
  global: {
    normalize_fisher: { kind: 'boolean', default: false, help: 'scale each model\'s Fisher to unit L2 norm over the model (c_k = 1/‖F_k‖)' },
    fisher_floor: { kind: 'number', default: 1e-6, help: 'lower bound applied to every Fisher value' },
  },
  perModel: { weight: { kind: 'number', default: 1, help: 'w_k' } },
  request: (t, inputs, out) => ({
    method: 'fisher', tensor: t.name, out, models: inputs.models, fishers: inputs.fishers, weights: t.weights,
    fisherScale: inputs.fisherScale, fisherFloor: Number(t.params.fisher_floor),
  }),
};
