/**
 * Typed access to the native merge kernels (native/kernels/merge.{h,cc,cu}): one
 * tensor at a time, streamed in chunks off the JS thread. The formulas live in
 * merge.h; this file only names the parameters, fills in mergekit's defaults and
 * turns native failures into MergeError.
 *
 * Inputs are {data, dtype} views (F32, F16 or BF16, any mix), ideally the zero-copy
 * mmap views of SafetensorsFile.bytes(name): the native driver then reads them with
 * pread into reused buffers (never faulting the mapping), so memory stays bounded
 * whatever the tensor size, a truncated file is an InputTruncated error naming it,
 * and NaN/±Inf in them is refused (NonFinite) in the same pass (docs/design.md §11).
 *
 * Each call uses every thread (setThreads()); await one tensor before starting the
 * next — concurrent calls only oversubscribe the cores. device 'cuda' streams each
 * chunk host → GPU → host, so it is bounded by the host link, not GPU memory.
 */
import { MergeError, WriteError, nativeErrorFields } from '../errors.js';
import { addon, type ComputeDtype, type NativeMergeOutput, type NativeMergeRequest, type NativeTensorInput } from '../native/addon.js';
import { isComputeDtype } from '../io/dtypes.js';
import type { SafetensorsWriter } from '../io/writer.js';

export type Device = 'cpu' | 'cuda';

/** One input tensor: its bytes (n elements of dtype) and dtype. */
export interface TensorInput {
  readonly data: ArrayBufferView | ArrayBuffer;
  readonly dtype: ComputeDtype;
}

/** Where a merged tensor goes. */
export type MergeOutput =
  /** A buffer of n elements of dtype (in-memory merges). */
  | { readonly kind: 'memory'; readonly data: ArrayBufferView | ArrayBuffer; readonly dtype: ComputeDtype }
  /** Raw file slot: n elements of dtype pwrite()-n at byte `offset` of `fd`. */
  | { readonly kind: 'file'; readonly fd: number; readonly offset: number; readonly dtype: ComputeDtype }
  /** Tensor `tensor`'s slot of a SafetensorsWriter (dtype from its layout); marked written on success. */
  | { readonly kind: 'writer'; readonly writer: SafetensorsWriter; readonly tensor: string };

interface CommonRequest {
  /** Elements (default: inferred from the first model input). */
  readonly n?: number;
  /** Tensor name: error messages, and the default DARE tensor id. */
  readonly tensor?: string;
  readonly out: MergeOutput;
  /** 'cpu' (default) or 'cuda' (needs the CUDA build and a device: else MergeError 'CudaUnavailable'). */
  readonly device?: Device;
  /** Elements per chunk (default 2^20). */
  readonly chunkElements?: number;
  /** Threads (default: setThreads() / all cores). */
  readonly threads?: number;
  /** Drop finished pages of file-mapped inputs (default true; never touches other memory). */
  readonly releaseInputs?: boolean;
}

/** out = Σ w_k x_k / Σ w_k (normalize, default true) or Σ w_k x_k. */
export interface LinearRequest extends CommonRequest {
  readonly method: 'linear';
  readonly models: readonly TensorInput[];
  readonly weights: readonly number[];
  readonly normalize?: boolean;
}

/** out = base + Σ λ_k (x_k − base) (divided by Σ λ_k with normalize, default false: mergekit). */
export interface TaskArithmeticRequest extends CommonRequest {
  readonly method: 'task_arithmetic';
  readonly base: TensorInput;
  readonly models: readonly TensorInput[];
  readonly weights: readonly number[];
  readonly normalize?: boolean;
}

/**
 * TIES: τ_k trimmed to the top `density` fraction of |τ_k| over the whole tensor
 * (exact k-th largest, k = round(density·n); ties at the threshold kept), sign
 * elected by Σ w_k τ_k (≥ 0 → +), agreeing w_k τ_k summed, divided by the agreeing
 * Σ w_k with normalize (default true: mergekit).
 */
export interface TiesRequest extends CommonRequest {
  readonly method: 'ties';
  readonly base: TensorInput;
  readonly models: readonly TensorInput[];
  readonly weights: readonly number[];
  readonly density: number;
  readonly normalize?: boolean;
}

/**
 * DARE: each τ_k entry kept with probability `density` (= 1 − p, mergekit's
 * parameter) and rescaled by 1/density; then task arithmetic ('dare_linear') or
 * TIES sign election ('dare_ties'). The drops depend only on (seed, tensorId,
 * model index, element index): the same on any device, thread count or chunk size.
 * normalize defaults to false (mergekit).
 */
export interface DareRequest extends CommonRequest {
  readonly method: 'dare_linear' | 'dare_ties';
  readonly base: TensorInput;
  readonly models: readonly TensorInput[];
  readonly weights: readonly number[];
  readonly density: number;
  readonly seed: number | bigint;
  /** Default: fnv1a64(tensor) (so `tensor` is then required). */
  readonly tensorId?: bigint;
  readonly normalize?: boolean;
}

/**
 * Fisher merging (Matena & Raffel): F̂_k = max(c_k F_k, floor),
 * out = Σ λ_k F̂_k x_k / Σ λ_k F̂_k (the λ-weighted average where that is 0/0).
 */
export interface FisherRequest extends CommonRequest {
  readonly method: 'fisher';
  readonly models: readonly TensorInput[];
  readonly fishers: readonly TensorInput[];
  /** λ_k (default 1 each). */
  readonly weights?: readonly number[];
  /** c_k, e.g. 1/‖F_k‖ over the whole model from sumOfSquares (default 1 each). */
  readonly fisherScale?: readonly number[];
  /** Optional floor on F̂ (Matena & Raffel use 1e-6). */
  readonly fisherFloor?: number;
}

/** DF-Merge combine: out = base + M · W / S (base where S = 0). */
export interface DfCombineRequest extends CommonRequest {
  readonly method: 'dfmerge';
  readonly base: TensorInput;
  /** W = Σ F_i ⊙ λ_i τ_i (f32 accumulator or any input). */
  readonly w: Float32Array | TensorInput;
  /** S = Σ F_i. */
  readonly s: Float32Array | TensorInput;
  /** M, the number of models. */
  readonly m: number;
}

/** How lincomb's coefficients vary: one set per tensor, per row (contiguous runs of segLen), or per column (i mod segLen). */
export type Segments = 'whole' | 'rows' | 'cols';

/**
 * Linear combination with per-segment coefficients c[s][k]:
 * out = base + Σ_k c_k (x_k − base) with a base, else Σ_k c_k x_k.
 * The kernel behind SLERP, NuSLERP, multi-SLERP, Karcher, model stock and passthrough.
 */
export interface LincombRequest extends CommonRequest {
  readonly method: 'lincomb';
  readonly base?: TensorInput;
  readonly models: readonly TensorInput[];
  /** segments × k, row-major. */
  readonly coef: readonly number[];
  readonly segments?: Segments;
  readonly segLen?: number;
}

/**
 * mergekit's generalised task arithmetic: d_k = keep_k ⊙ τ_k · rs_k, optional sign
 * consensus (TIES), out = b + λ · (normalize ? mixed / div : mixed). See gta_elem.
 */
export interface GtaRequest extends CommonRequest {
  readonly method: 'gta';
  readonly base: TensorInput;
  readonly models: readonly TensorInput[];
  readonly weights: readonly number[];
  /** band: keep the keepCount[k] largest |τ_k| below the dropCount[k] largest; random: DARE; mask: DELLA. */
  readonly sparsify?: 'band' | 'random' | 'mask';
  readonly keepCount?: readonly number[];
  readonly dropCount?: readonly number[];
  /** random / mask: keep probability per model. */
  readonly densities?: readonly number[];
  /** mask (DELLA): ε per model. */
  readonly epsilons?: readonly number[];
  /** mask (DELLA): elements per row ranked together (default: the whole tensor). */
  readonly rowLen?: number;
  /** mask (DELLA): bytes of drop mask (k bits per element) held at once; a larger tensor is merged in blocks of rows (default 128 MiB). */
  readonly maskBudgetBytes?: number;
  readonly consensus?: boolean;
  readonly normalize?: boolean;
  /** Kept entries rescaled: none (default), by Σ|τ|/Σ|kept τ| per tensor (l1), or by 1/density. */
  readonly rescale?: 'none' | 'l1' | 'inverse_density';
  readonly lambda?: number;
  readonly seed?: number | bigint;
  readonly tensorId?: bigint;
}

/** SCE: select the top selectTopk of entries by variance across models, weights ∝ mean(τ_k²), sign-consensus mean. */
export interface SceRequest extends CommonRequest {
  readonly method: 'sce';
  readonly base: TensorInput;
  readonly models: readonly TensorInput[];
  readonly selectTopk: number;
}

/** NearSwap: w = clamp(t / |b − x|, 0, 1), out = w x + (1 − w) b. */
export interface NearswapRequest extends CommonRequest {
  readonly method: 'nearswap';
  readonly base: TensorInput;
  readonly models: readonly TensorInput[];
  readonly t: number;
}

export type MergeTensorRequest =
  | LinearRequest
  | TaskArithmeticRequest
  | TiesRequest
  | DareRequest
  | FisherRequest
  | DfCombineRequest
  | LincombRequest
  | GtaRequest
  | SceRequest
  | NearswapRequest;

export type MergeMethod = MergeTensorRequest['method'];

export const MERGE_METHODS: readonly MergeMethod[] = [
  'linear', 'task_arithmetic', 'ties', 'dare_linear', 'dare_ties', 'fisher', 'dfmerge', 'lincomb', 'gta', 'sce', 'nearswap',
];

const RESCALE_CODE = { none: 0, l1: 1, inverse_density: 2 } as const;

const DTYPE_SIZE: Record<ComputeDtype, number> = { F32: 4, F16: 2, BF16: 2 };

function byteLengthOf(d: ArrayBufferView | ArrayBuffer): number {
  return d.byteLength;
}

function asInput(x: Float32Array | TensorInput): TensorInput {
  return x instanceof Float32Array ? { data: x, dtype: 'F32' } : x;
}

function toNative(t: TensorInput, what: string, tensor?: string): NativeTensorInput {
  if (t === null || typeof t !== 'object' || !isComputeDtype(t.dtype as string)) {
    throw new MergeError('InvalidArgument', `${what} must be {data, dtype} with dtype F32, F16 or BF16`, tensor);
  }
  return { data: t.data, dtype: t.dtype };
}

/** FNV-1a 64-bit hash of the UTF-8 bytes of a tensor name (DARE's tensor id). */
export function fnv1a64(name: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(name, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

function u64(v: number | bigint, what: string, tensor?: string): bigint {
  const b = typeof v === 'bigint' ? v : Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : -1n;
  if (b < 0n || b > 0xffffffffffffffffn) throw new MergeError('InvalidArgument', `${what} must be an integer in [0, 2^64)`, tensor);
  return b;
}

function wrapNative(e: unknown, tensor?: string): MergeError {
  if (e instanceof MergeError) return e;
  const f = nativeErrorFields(e);
  return new MergeError(f.code, f.message, f.tensor ?? tensor);
}

/** Merges one tensor; resolves when the whole output is written. */
export async function mergeTensor(req: MergeTensorRequest): Promise<void> {
  const tensor = req.tensor;
  let native: NativeMergeRequest;
  let markWritten: (() => void) | undefined;
  try {
    const method = (req as { method: unknown }).method;
    if (typeof method !== 'string' || !(MERGE_METHODS as readonly string[]).includes(method)) {
      throw new MergeError('UnknownMethod', `unknown merge method ${JSON.stringify(method)} (expected ${MERGE_METHODS.join(', ')})`, tensor);
    }
    const models: NativeTensorInput[] =
      req.method === 'dfmerge'
        ? [toNative(asInput(req.w), 'w', tensor), toNative(asInput(req.s), 's', tensor)]
        : (req.models ?? []).map((m, i) => toNative(m, `models[${i}]`, tensor));
    if (models.length === 0) throw new MergeError('InvalidArgument', 'at least one model is needed', tensor);
    const first = models[0]!;
    const n = req.n ?? byteLengthOf(first.data) / DTYPE_SIZE[first.dtype];
    if (!Number.isSafeInteger(n) || n < 0) throw new MergeError('InvalidArgument', `element count must be a non-negative integer, got ${n}`, tensor);

    let out: NativeMergeOutput;
    const o = req.out;
    if (o.kind === 'memory') {
      out = { data: o.data, dtype: o.dtype };
    } else if (o.kind === 'file') {
      out = { fd: o.fd, offset: o.offset, dtype: o.dtype };
    } else if (o.kind === 'writer') {
      const slot = o.writer.slot(o.tensor);
      const dtype = slot.spec.dtype;
      if (!isComputeDtype(dtype)) throw new MergeError('InvalidArgument', `output tensor "${o.tensor}" has dtype ${dtype}, not F32/F16/BF16`, tensor);
      if (slot.byteLength !== n * DTYPE_SIZE[dtype]) {
        throw new MergeError('InvalidArgument', `output slot "${o.tensor}" holds ${slot.byteLength} bytes, not ${n} ${dtype} elements`, tensor);
      }
      out = { fd: o.writer.fd, offset: slot.fileOffset, dtype };
      markWritten = () => o.writer.markWritten(o.tensor, slot.byteLength);
    } else {
      throw new MergeError('InvalidArgument', 'out must be {kind: "memory" | "file" | "writer", ...}', tensor);
    }

    native = {
      method: req.method,
      n,
      models,
      out,
      ...(tensor !== undefined ? { tensor } : {}),
      ...(req.chunkElements !== undefined ? { chunk: req.chunkElements } : {}),
      ...(req.threads !== undefined ? { threads: req.threads } : {}),
      ...(req.releaseInputs !== undefined ? { release: req.releaseInputs } : {}),
      device: req.device ?? 'cpu',
    };
    switch (req.method) {
      case 'linear':
        Object.assign(native, { weights: [...req.weights], normalize: req.normalize ?? true });
        break;
      case 'task_arithmetic':
        Object.assign(native, { base: toNative(req.base, 'base', tensor), weights: [...req.weights], normalize: req.normalize ?? false });
        break;
      case 'ties':
        Object.assign(native, {
          base: toNative(req.base, 'base', tensor), weights: [...req.weights], density: req.density, normalize: req.normalize ?? true,
        });
        break;
      case 'dare_linear':
      case 'dare_ties': {
        if (req.tensorId === undefined && tensor === undefined) {
          throw new MergeError('InvalidArgument', 'DARE needs the tensor name (or an explicit tensorId) to seed its drops');
        }
        Object.assign(native, {
          base: toNative(req.base, 'base', tensor), weights: [...req.weights], density: req.density,
          normalize: req.normalize ?? false, seed: u64(req.seed, 'seed', tensor),
          tensorId: req.tensorId !== undefined ? u64(req.tensorId, 'tensorId', tensor) : fnv1a64(tensor!),
        });
        break;
      }
      case 'fisher':
        Object.assign(native, {
          fishers: (req.fishers ?? []).map((f, i) => toNative(f, `fishers[${i}]`, tensor)),
          weights: req.weights ? [...req.weights] : models.map(() => 1),
          ...(req.fisherScale ? { fisherScale: [...req.fisherScale] } : {}),
          ...(req.fisherFloor !== undefined ? { fisherFloor: req.fisherFloor } : {}),
        });
        break;
      case 'dfmerge':
        Object.assign(native, { base: toNative(req.base, 'base', tensor), scale: req.m });
        break;
      case 'lincomb':
        Object.assign(native, {
          ...(req.base ? { base: toNative(req.base, 'base', tensor), useBase: true } : {}),
          weights: models.map(() => 1), coef: [...req.coef], segments: req.segments ?? 'whole', ...(req.segLen !== undefined ? { segLen: req.segLen } : {}),
        });
        break;
      case 'gta': {
        const needsId = req.sparsify === 'random' || req.sparsify === 'mask';
        if (needsId && req.tensorId === undefined && tensor === undefined) {
          throw new MergeError('InvalidArgument', 'random sparsification needs the tensor name (or an explicit tensorId) to seed its drops');
        }
        Object.assign(native, {
          base: toNative(req.base, 'base', tensor), weights: [...req.weights], sparsify: req.sparsify ?? 'band',
          consensus: req.consensus ?? false, normalize: req.normalize ?? false, rescale: RESCALE_CODE[req.rescale ?? 'none'],
          lambda: req.lambda ?? 1, seed: u64(req.seed ?? 0, 'seed', tensor),
          tensorId: req.tensorId !== undefined ? u64(req.tensorId, 'tensorId', tensor) : fnv1a64(tensor ?? ''),
          ...(req.keepCount ? { keepCount: [...req.keepCount] } : {}),
          ...(req.dropCount ? { dropCount: [...req.dropCount] } : {}),
          ...(req.densities ? { densities: [...req.densities] } : {}),
          ...(req.epsilons ? { epsilons: [...req.epsilons] } : {}),
          ...(req.rowLen !== undefined ? { rowLen: req.rowLen } : {}),
          ...(req.maskBudgetBytes !== undefined ? { maskBudget: req.maskBudgetBytes } : {}),
        });
        if (RESCALE_CODE[req.rescale ?? 'none'] === undefined) throw new MergeError('InvalidArgument', `rescale must be none, l1 or inverse_density, got ${String(req.rescale)}`, tensor);
        break;
      }
      case 'sce':
        Object.assign(native, { base: toNative(req.base, 'base', tensor), weights: models.map(() => 1), selectTopk: req.selectTopk });
        break;
      case 'nearswap':
        Object.assign(native, { base: toNative(req.base, 'base', tensor), weights: models.map(() => 1), t: req.t });
        break;
    }
  } catch (e) {
    throw wrapNative(e, tensor);
  }
  try {
    await addon().mergeTensor(native);
  } catch (e) {
    const err = wrapNative(e, tensor);
    // the native side writes through a descriptor and cannot name the file: a full disk or failing device names it here
    if (req.out.kind === 'writer' && err instanceof MergeError && err.code === 'WriteFailed') {
      throw new WriteError(req.out.writer.path, `tensor "${req.out.tensor}": ${err.message.replace(`${tensor}: `, '')}`);
    }
    throw err;
  }
  markWritten?.();
}

/** DF-Merge combine into `out`: base + M · W / S. */
export function dfCombine(req: Omit<DfCombineRequest, 'method'>): Promise<void> {
  return mergeTensor({ ...req, method: 'dfmerge' });
}

export interface AccumulateFisherRequest {
  /** S = Σ F_i, updated in place. */
  readonly s: Float32Array;
  /** W = Σ F_i ⊙ λ_i τ_i, updated in place. */
  readonly w: Float32Array;
  /** F_i. */
  readonly fisher: TensorInput;
  /** θ_i (with base) or the task vector τ_i (without). */
  readonly model: TensorInput;
  readonly base?: TensorInput;
  /** λ_i. */
  readonly lambda: number;
  readonly tensor?: string;
  readonly chunkElements?: number;
  readonly threads?: number;
  readonly releaseInputs?: boolean;
}

/** DF-Merge accumulate: S += F_i; W += F_i ⊙ λ_i (θ_i − θ_pre). */
export async function accumulateFisher(req: AccumulateFisherRequest): Promise<void> {
  try {
    if (!(req.s instanceof Float32Array) || !(req.w instanceof Float32Array) || req.s.length !== req.w.length) {
      throw new MergeError('InvalidArgument', 's and w must be Float32Arrays of the same length', req.tensor);
    }
    await addon().accumulateFisher({
      n: req.s.length,
      s: req.s,
      w: req.w,
      fisher: toNative(req.fisher, 'fisher', req.tensor),
      model: toNative(req.model, 'model', req.tensor),
      ...(req.base ? { base: toNative(req.base, 'base', req.tensor) } : {}),
      lambda: req.lambda,
      ...(req.chunkElements !== undefined ? { chunk: req.chunkElements } : {}),
      ...(req.threads !== undefined ? { threads: req.threads } : {}),
      ...(req.releaseInputs !== undefined ? { release: req.releaseInputs } : {}),
    });
  } catch (e) {
    throw wrapNative(e, req.tensor);
  }
}

export interface GramRequest {
  readonly models: readonly TensorInput[];
  /** With a base, the Gram matrix of the task vectors x_k − base (f32 differences). */
  readonly base?: TensorInput;
  readonly segments?: Segments;
  readonly segLen?: number;
  readonly tensor?: string;
  readonly threads?: number;
  readonly releaseInputs?: boolean;
}

/**
 * Gram matrices G[s][q][r] = Σ_{i ∈ segment s} v_q[i] v_r[i] (f64 sums of the f32
 * values; the order is fixed by the tensor, not the thread count), as an array of
 * segments × k × k.
 */
export async function tensorGram(req: GramRequest): Promise<Float64Array> {
  try {
    const models = req.models.map((m, i) => toNative(m, `models[${i}]`, req.tensor));
    if (models.length === 0) throw new MergeError('InvalidArgument', 'at least one model is needed', req.tensor);
    const first = models[0]!;
    const n = byteLengthOf(first.data) / DTYPE_SIZE[first.dtype];
    return await addon().tensorGram({
      n, models,
      ...(req.base ? { base: toNative(req.base, 'base', req.tensor) } : {}),
      ...(req.tensor !== undefined ? { tensor: req.tensor } : {}),
      segments: req.segments ?? 'whole',
      ...(req.segLen !== undefined ? { segLen: req.segLen } : {}),
      ...(req.threads !== undefined ? { threads: req.threads } : {}),
      ...(req.releaseInputs !== undefined ? { release: req.releaseInputs } : {}),
    });
  } catch (e) {
    throw wrapNative(e, req.tensor);
  }
}

/** Σ x² over a tensor (for ‖F_k‖ across a whole model: sum over tensors, then sqrt). */
export async function sumOfSquares(input: TensorInput): Promise<number> {
  try {
    return await addon().sumOfSquares(input.data, toNative(input, 'input').dtype);
  } catch (e) {
    throw wrapNative(e);
  }
}

/** Bandwidth probe: copies src into dst (same byte length) with the merge threading; returns bytes copied. */
export function streamCopy(src: ArrayBufferView | ArrayBuffer, dst: ArrayBufferView | ArrayBuffer): number {
  try {
    return addon().streamCopy(src, dst);
  } catch (e) {
    throw wrapNative(e);
  }
}
