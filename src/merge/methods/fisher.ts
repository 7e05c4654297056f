/**
 * Fisher merging (Matena & Raffel 2022): θ = Σ w_k F̂_k θ_k / Σ w_k F̂_k with
 * F̂_k = max(c_k F_k, floor), c_k = 1/‖F_k‖ over the whole model when normalising.
 */
import type { MethodRequestBuilder } from './types.js';

export const fisher: MethodRequestBuilder = (t, inputs, out) => ({
  method: 'fisher', tensor: t.name, out, models: inputs.models, fishers: inputs.fishers, weights: t.weights,
  fisherScale: inputs.fisherScale, fisherFloor: Number(t.params.fisher_floor),
});
