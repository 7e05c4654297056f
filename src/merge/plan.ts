/**
 * The merge plan: per output tensor, its inputs and resolved parameters. Building
 * it opens every checkpoint (headers only: tensors stay on disk) and checks that
 * all models agree on names, shapes and dtypes. The plan is data: methods and
 * kernels never see files, and the writer never sees methods.
 */
import { CheckpointError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { byteSize, isComputeDtype, numelOf } from '../io/dtypes.js';
import type { TensorSpec } from '../io/writer.js';
import type { ComputeDtype } from '../native/addon.js';
import { METHOD_PARAMS, resolveParam, type MergeConfig, type MethodName } from './config.js';

export interface TensorPlan {
  readonly name: string;
  readonly shape: readonly number[];
  readonly numel: number;
  /** 'merge': float tensor through the method's kernel; 'copy': other dtypes, copied from the reference model. */
  readonly kind: 'merge' | 'copy';
  readonly outDtype: string;
  /** Per-model weights (λ_k or w_k). */
  readonly weights: readonly number[];
  /** Method-level parameters resolved for this tensor. */
  readonly params: Readonly<Record<string, number | boolean>>;
  /** Bytes this tensor reads (each input once) plus writes. */
  readonly ioBytes: number;
}

export interface MergePlan {
  readonly config: MergeConfig;
  readonly method: MethodName;
  readonly base: Checkpoint | undefined;
  readonly models: readonly Checkpoint[];
  readonly fishers: readonly Checkpoint[];
  /** The checkpoint whose names, non-float tensors, config and tokenizer the output follows. */
  readonly reference: Checkpoint;
  readonly tensors: readonly TensorPlan[];
  readonly outputSpecs: readonly TensorSpec[];
  /** Bytes read (every input once) and written, for throughput reports. */
  readonly inputBytes: number;
  readonly outputBytes: number;
  close(): void;
}

const MAX_LISTED = 12;

function listMismatches(path: string, problems: string[]): never {
  const shown = problems.slice(0, MAX_LISTED).map((p) => `  - ${p}`).join('\n');
  const more = problems.length > MAX_LISTED ? `\n  … and ${problems.length - MAX_LISTED} more` : '';
  throw new CheckpointError(path, 'ModelMismatch', `does not match the reference model:\n${shown}${more}`);
}

/** Checks that `other` has exactly the reference's tensors with the same shapes and compatible dtypes. */
export function checkSameArchitecture(reference: Checkpoint, other: Checkpoint, what = 'model'): void {
  const problems: string[] = [];
  const refNames = new Set(reference.names);
  for (const name of reference.names) {
    if (!other.has(name)) {
      problems.push(`tensor "${name}" is missing from this ${what}`);
      continue;
    }
    const a = reference.locate(name).info;
    const b = other.locate(name).info;
    if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
      problems.push(`tensor "${name}" has shape [${b.shape.join(', ')}], the reference has [${a.shape.join(', ')}]`);
    } else if (isComputeDtype(a.dtype) !== isComputeDtype(b.dtype) || (!isComputeDtype(a.dtype) && a.dtype !== b.dtype)) {
      problems.push(`tensor "${name}" has dtype ${b.dtype}, the reference has ${a.dtype}`);
    }
  }
  for (const name of other.names) if (!refNames.has(name)) problems.push(`tensor "${name}" is not in the reference model`);
  if (problems.length > 0) listMismatches(other.path, problems);
}

/** Checks that a Fisher file holds a float tensor of the right shape for every merged tensor. */
function checkFisher(fisher: Checkpoint, tensors: readonly TensorPlan[]): void {
  const problems: string[] = [];
  for (const t of tensors) {
    if (t.kind !== 'merge') continue;
    if (!fisher.has(t.name)) { problems.push(`no Fisher tensor "${t.name}"`); continue; }
    const f = fisher.locate(t.name).info;
    if (!isComputeDtype(f.dtype)) problems.push(`Fisher tensor "${t.name}" has dtype ${f.dtype}; F32, F16 or BF16 expected`);
    else if (numelOf(f.shape) !== t.numel) problems.push(`Fisher tensor "${t.name}" has shape [${f.shape.join(', ')}], the model has [${t.shape.join(', ')}]`);
  }
  if (problems.length > 0) listMismatches(fisher.path, problems);
}

export function buildPlan(config: MergeConfig): MergePlan {
  const opened: Checkpoint[] = [];
  const open = (p: string) => {
    const ck = Checkpoint.open(p);
    opened.push(ck);
    return ck;
  };
  try {
    const base = config.base ? open(config.base) : undefined;
    const models = config.models.map((m) => open(m.path));
    const reference = base ?? models[0]!;
    for (const m of models) if (m !== reference) checkSameArchitecture(reference, m);
    const spec = METHOD_PARAMS[config.method];
    const fishers = config.method === 'fisher' ? config.models.map((m) => open(m.fisher!)) : [];
    const sources = [...(base && spec.needsBase ? [base] : []), ...models, ...fishers];
    const tensors: TensorPlan[] = reference.names.map((name) => {
      const info = reference.locate(name).info;
      const merge = isComputeDtype(info.dtype) && models.every((m) => isComputeDtype(m.locate(name).info.dtype));
      const params: Record<string, number | boolean> = {};
      for (const [k, dflt] of Object.entries(spec.global)) params[k] = resolveParam(config.parameters[k], name, dflt);
      const weights = config.models.map((m) => Number(resolveParam(m.parameters.weight, name, spec.model.weight ?? 1)));
      const outDtype = merge ? (config.dtype ?? (info.dtype as ComputeDtype)) : info.dtype;
      let ioBytes = byteSize(outDtype, info.shape);
      if (!merge) ioBytes += byteSize(info.dtype, info.shape);
      else for (const s of sources) { const i = s.has(name) ? s.locate(name).info : info; ioBytes += byteSize(i.dtype, i.shape); }
      return { name, shape: [...info.shape], numel: numelOf(info.shape), kind: merge ? 'merge' : 'copy', outDtype, weights, params, ioBytes };
    });
    for (const f of fishers) checkFisher(f, tensors);
    const outputBytes = tensors.reduce((a, t) => a + byteSize(t.outDtype, t.shape), 0);
    const inputBytes = tensors.reduce((a, t) => a + t.ioBytes, 0) - outputBytes;
    return {
      config,
      method: config.method,
      base,
      models,
      fishers,
      reference,
      tensors,
      outputSpecs: tensors.map((t) => ({ name: t.name, dtype: t.outDtype, shape: t.shape })),
      inputBytes,
      outputBytes,
      close: () => { for (const ck of opened) ck.close(); },
    };
  } catch (e) {
    for (const ck of opened) ck.close();
    throw e;
  }
}
