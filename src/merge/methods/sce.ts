/**
 * SCE (Wan et al. 2024, FuseChat; as mergekit's sce): select the entries whose
 * variance of τ_k across models is in the top select_topk (ties at the cut kept),
 * weight each model by mean(d_k²)/Σ_j mean(d_j²) (1/K when that sum is < 1e-6),
 * erase entries disagreeing with sign(Σ_k d_k):
 *   θ = θ_b + Σ_agree w_k d_k / max(Σ_agree w_k, 1e-6)   (native sce_elem).
 */
import { param, rangeCheck, requireBase, type MethodDescriptor } from './types.js';

export const sce: MethodDescriptor = {
  name: 'sce',
  formula: 'select the top select_topk entries by variance across the τ_k, weights ∝ mean τ_k², sign-consensus weighted mean',
  reference: 'https://arxiv.org/abs/2408.07990',
  base: 'required',
  models: { min: 1 },
  global: {
    select_topk: { kind: 'number', default: 1, help: 'fraction of entries kept, by variance across models', check: rangeCheck(0, 1) },
    int8_mask: { kind: 'boolean', default: false, help: 'mergekit\'s memory saving for the masks; the result is the same either way' },
  },
  perModel: {},
  request: (t, inputs, out) => ({
    method: 'sce', tensor: t.name, out, base: requireBase(t, inputs), models: inputs.models, selectTopk: Number(param(t, 'select_topk')),
  }),
};
