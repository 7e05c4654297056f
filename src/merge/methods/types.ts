/**
 * One interface for every merge method: given the plan and one tensor, build the
 * kernel request. Methods see tensors as inputs, never files or writers.
 */
import type { MergeOutput, MergeTensorRequest, TensorInput } from '../kernels.js';
import type { TensorPlan } from '../plan.js';

export interface MethodInputs {
  /** The base model's tensor (methods that need a base). */
  readonly base: TensorInput | undefined;
  /** Each model's tensor, in model order. */
  readonly models: readonly TensorInput[];
  /** Each model's Fisher tensor (fisher method). */
  readonly fishers: readonly TensorInput[];
  /** Per-model Fisher scale c_k (fisher method with normalize_fisher). */
  readonly fisherScale: readonly number[];
  readonly seed: number;
}

export type MethodRequestBuilder = (t: TensorPlan, inputs: MethodInputs, out: MergeOutput) => MergeTensorRequest;

export function requireBase(t: TensorPlan, inputs: MethodInputs): TensorInput {
  if (!inputs.base) throw new Error(`internal: tensor ${t.name} needs a base input`);
  return inputs.base;
}
