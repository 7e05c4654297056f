/** NearSwap (as mergekit's nearswap): w = clamp(t / max(|θ_b − θ_1|, 1e-6), 0, 1), θ = w θ_1 + (1 − w) θ_b. */
import { param, requireBase, type MethodDescriptor } from './types.js';

export const nearswap: MethodDescriptor = {
  name: 'nearswap',
  formula: 'θ = w θ_1 + (1 − w) θ_b, w = clamp(t/|θ_b − θ_1|, 0, 1): the model\'s value where it is within t of the base',
  reference: 'https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001',
  base: 'required',
  models: { min: 1, max: 1 },
  global: { t: { kind: 'number', required: true, help: 'distance below which the model\'s value is taken' } },
  perModel: {},
  request: (t, inputs, out) => ({
    method: 'nearswap', tensor: t.name, out, base: requireBase(t, inputs), models: inputs.models, t: Number(param(t, 't')),
  }),
};
