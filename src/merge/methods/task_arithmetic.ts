/** Task arithmetic: θ = θ_b + Σ w_k (θ_k − θ_b) (with normalize: divided by Σ w_k). */
import { requireBase, type MethodRequestBuilder } from './types.js';

export const taskArithmetic: MethodRequestBuilder = (t, inputs, out) => ({
  method: 'task_arithmetic', tensor: t.name, out, base: requireBase(t, inputs), models: inputs.models,
  weights: t.weights, normalize: Boolean(t.params.normalize),
});
