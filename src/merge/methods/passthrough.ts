/**
 * Passthrough: each output tensor is one input tensor, optionally scaled
 * (θ = scale · θ_1). With `slices`, layer ranges of several models are stacked
 * into one model (frankenmerges); the plan maps the layers (src/merge/plan.ts).
 */
import { WHOLE, lincomb } from './gram.js';
import { modelNumber, type MethodDescriptor } from './types.js';

export const passthrough: MethodDescriptor = {
  name: 'passthrough',
  formula: 'θ = scale · θ_1 (one model per tensor; with slices, layer ranges stacked)',
  reference: 'https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md',
  base: 'unused',
  models: { min: 1, max: 1 },
  global: {},
  perModel: { scale: { kind: 'number', default: 1, help: 'factor applied to the tensor' } },
  request: (t, inputs, out) => lincomb(t, inputs.models, undefined, WHOLE, [[modelNumber(t, 0, 'scale')]], out),
};
