/**
 * DARE: drop each task-vector entry with probability p = 1 − density and rescale
 * the kept ones by 1/density; then task arithmetic (dare_linear) or TIES sign
 * election (dare_ties). Drops are seeded per (seed, tensor name, model, element).
 */
import { requireBase, type MethodRequestBuilder } from './types.js';

function dare(method: 'dare_linear' | 'dare_ties'): MethodRequestBuilder {
  return (t, inputs, out) => ({
    method, tensor: t.name, out, base: requireBase(t, inputs), models: inputs.models,
    weights: t.weights, density: Number(t.params.density), seed: inputs.seed, normalize: Boolean(t.params.normalize),
  });
}

export const dareLinear = dare('dare_linear');
export const dareTies = dare('dare_ties');
