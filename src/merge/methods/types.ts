/**
 * One interface for every merge method: a descriptor holding its parameters (with
 * mergekit's names, defaults and meaning), their validation and help text, and
 * the function that turns one planned tensor into a kernel request. Methods see
 * tensors as inputs, never files or writers. The registry is ./index.ts.
 */
import { UsageError } from '../../errors.js';
import type { MergeOutput, MergeTensorRequest, TensorInput } from '../kernels.js';
import type { TensorPlan } from '../plan.js';

export interface MethodInputs {
  /** The base model's tensor (methods that use a base). */
  readonly base: TensorInput | undefined;
  /** Each model's tensor, in model order (the base excluded). */
  readonly models: readonly TensorInput[];
  /** Each model's Fisher tensor (fisher method). */
  readonly fishers: readonly TensorInput[];
  /** Per-model Fisher scale c_k (fisher method with normalize_fisher). */
  readonly fisherScale: readonly number[];
  readonly seed: number;
  readonly threads?: number;
}

export type ParamKind = 'number' | 'boolean';

export interface ParamSpec {
  readonly kind: ParamKind;
  /** Used when the config does not give it (absent and not required: the method's own fallback). */
  readonly default?: number | boolean;
  /** The config must give it (for every model, for per-model parameters). */
  readonly required?: boolean;
  readonly help: string;
  /** Range check of one resolved value: a message when it is out of range. */
  readonly check?: (v: number | boolean) => string | undefined;
}

export interface MethodDescriptor {
  readonly name: string;
  /** Other spellings users type (dashes are always accepted for underscores). */
  readonly aliases?: readonly string[];
  /** The formula, one line, for --help and the README. */
  readonly formula: string;
  readonly reference: string;
  /** required: needs base_model; optional: uses it when given; unused: a base only supplies config and tokenizer. */
  readonly base: 'required' | 'optional' | 'unused';
  /** How many models (besides the base) each tensor takes. */
  readonly models: { readonly min: number; readonly max?: number };
  /** Method-level parameters (mergekit's `parameters:`). */
  readonly global: Readonly<Record<string, ParamSpec>>;
  /** Per-model parameters (a model's `parameters:`, falling back to the global ones, as mergekit). */
  readonly perModel: Readonly<Record<string, ParamSpec>>;
  readonly needsFisher?: boolean;
  /** The kernel request for one tensor; may compute per-tensor statistics first. */
  request(t: TensorPlan, inputs: MethodInputs, out: MergeOutput): Promise<MergeTensorRequest> | MergeTensorRequest;
}

export function requireBase(t: TensorPlan, inputs: MethodInputs): TensorInput {
  if (!inputs.base) throw new Error(`internal: tensor ${t.name} needs a base input`);
  return inputs.base;
}

/** A resolved per-model number (validated by the plan). */
export function modelNumber(t: TensorPlan, k: number, name: string): number {
  return Number(t.modelParams[k]![name]);
}

/** A resolved global parameter. */
export function param(t: TensorPlan, name: string): number | boolean {
  const v = t.params[name];
  if (v === undefined) throw new Error(`internal: parameter ${name} of ${t.name} was not resolved`);
  return v;
}

export function rangeCheck(lo: number, hi: number, loOpen = false, hiOpen = false): (v: number | boolean) => string | undefined {
  return (v) => {
    const x = Number(v);
    const ok = (loOpen ? x > lo : x >= lo) && (hiOpen ? x < hi : x <= hi);
    return ok ? undefined : `must be in ${loOpen ? '(' : '['}${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${String(v)}`;
  };
}

/** A per-tensor refusal (shape a method cannot handle), naming the tensor. */
export function refuse(t: TensorPlan, why: string): never {
  throw new UsageError(`tensor ${t.name}: ${why}`);
}
