/** TIES: trim each task vector to its top-density magnitudes, elect signs, disjoint (weighted) mean. */
import { requireBase, type MethodRequestBuilder } from './types.js';

export const ties: MethodRequestBuilder = (t, inputs, out) => ({
  method: 'ties', tensor: t.name, out, base: requireBase(t, inputs), models: inputs.models,
  weights: t.weights, density: Number(t.params.density), normalize: Boolean(t.params.normalize),
});
