/** Linear (weighted average): θ = Σ w_k θ_k / Σ w_k (without normalize: Σ w_k θ_k). */
import type { MethodRequestBuilder } from './types.js';

export const linear: MethodRequestBuilder = (t, inputs, out) => ({
  method: 'linear', tensor: t.name, out, models: inputs.models, weights: t.weights, normalize: Boolean(t.params.normalize),
});
