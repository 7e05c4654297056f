/**
 * Loads the native addon: the CUDA build (build-cuda/, from `npm run build:cuda`)
 * when it exists and a GPU answers, else the CPU build (build/, from `npm install`).
 * DFMERGE_BUILD=cpu|cuda forces one. This file is the typed boundary: nothing
 * outside it sees an untyped addon object.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeError } from '../errors.js';

export interface NativeTensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface NativeHeader {
  fileSize: number;
  headerLength: number;
  dataStart: number;
  tensors: NativeTensorEntry[];
  /** [key, value] pairs in header order (keys come from the file). */
  metadata: Array<[string, string]>;
}

/** The open file's identity; dev, ino and times as decimal strings (64-bit values). */
export interface NativeFileIdentity {
  dev: string;
  ino: string;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
}

export interface NativeSafetensorsFile {
  header(): NativeHeader;
  view(begin: number, end: number): ArrayBuffer;
  release(begin: number, end: number): void;
  /** fstat of the descriptor kept open: as when mapped, and now. */
  identity(): { opened: NativeFileIdentity; now: NativeFileIdentity };
  close(): void;
}

export type ComputeDtype = 'F32' | 'F16' | 'BF16';

export interface NativeBuildInfo {
  cuda: boolean;
  cudaDevices: number;
  cudaDeviceNames: string[];
  threads: number;
  compiler: string;
}

/** One input tensor: n elements of `dtype` (bytes, no alignment needed; zero-copy mmap views welcome). */
export interface NativeTensorInput {
  data: ArrayBufferView | ArrayBuffer;
  dtype: ComputeDtype;
}

export type NativeMergeMethod = 'linear' | 'task_arithmetic' | 'ties' | 'dare_linear' | 'dare_ties' | 'fisher' | 'dfmerge' | 'lincomb' | 'gta' | 'sce' | 'nearswap';

/** Where the merged tensor goes: a buffer of n elements of `dtype`, or a file slot written with pwrite(). */
export type NativeMergeOutput =
  | { data: ArrayBufferView | ArrayBuffer; dtype: ComputeDtype }
  | { fd: number; offset: number; dtype: ComputeDtype };

/** The native merge request (src/merge/kernels.ts builds it; see native/kernels/merge.h for the formulas). */
export interface NativeMergeRequest {
  method: NativeMergeMethod;
  /** Elements of every input and of the output. */
  n: number;
  /** Tensor name, for error messages. */
  tensor?: string;
  base?: NativeTensorInput;
  /** k models; for 'dfmerge' the two accumulators [W, S]. */
  models: NativeTensorInput[];
  /** 'fisher': one per model. */
  fishers?: NativeTensorInput[];
  /** w_k / λ_k, one per model (not used by 'dfmerge'). */
  weights?: number[];
  normalize?: boolean;
  /** ties: fraction of |τ| kept; dare: keep probability 1 − p. */
  density?: number;
  seed?: bigint;
  /** FNV-1a 64 of the tensor name (dare). */
  tensorId?: bigint;
  fisherScale?: number[];
  fisherFloor?: number;
  /** 'dfmerge': M. */
  scale?: number;
  /** 'lincomb': segments × k coefficients; with useBase out = b + Σ c (x − b), else Σ c x. */
  coef?: number[];
  useBase?: boolean;
  segments?: 'whole' | 'rows' | 'cols';
  segLen?: number;
  /** 'nearswap': t. */
  t?: number;
  /** 'gta' (native/kernels/merge_methods.h, gta_elem). */
  sparsify?: 'band' | 'random' | 'mask';
  consensus?: boolean;
  /** 0 none, 1 L1 norm per tensor, 2 1/density. */
  rescale?: number;
  lambda?: number;
  keepCount?: number[];
  dropCount?: number[];
  densities?: number[];
  epsilons?: number[];
  rowLen?: number;
  maskBudget?: number;
  /** 'sce': fraction of entries kept by variance. */
  selectTopk?: number;
  out: NativeMergeOutput;
  /** Elements per chunk (default 2^20). */
  chunk?: number;
  /** Threads (default: the addon's setThreads() value). */
  threads?: number;
  /** Drop finished pages of file-mapped inputs (default true; other memory is never touched). */
  release?: boolean;
  device?: 'cpu' | 'cuda';
}

export interface NativeGramRequest {
  n: number;
  tensor?: string;
  base?: NativeTensorInput;
  models: NativeTensorInput[];
  segments?: 'whole' | 'rows' | 'cols';
  segLen?: number;
  threads?: number;
  release?: boolean;
}

/** S += F; W += F ⊙ λ (model − base) (or F ⊙ λ model without base). */
export interface NativeAccumulateRequest {
  n: number;
  fisher: NativeTensorInput;
  model: NativeTensorInput;
  base?: NativeTensorInput;
  lambda: number;
  s: Float32Array;
  w: Float32Array;
  chunk?: number;
  threads?: number;
  release?: boolean;
}

/** Hyperparameters passed to the native LlamaModel (see src/model/config.ts). */
export interface NativeLlamaConfig {
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  layers: number;
  vocab: number;
  maxPositions: number;
  rmsEps: number;
  ropeTheta: number;
  tieEmbeddings: boolean;
  attentionBias: boolean;
  /** Rope scaling (absent: default rope). */
  rope?: NativeRopeScaling;
  /** Sliding window per layer in keys, 0 = full attention (absent: all full). */
  layerWindows?: number[];
  /** Per-head RMSNorm of q and k before rope (Qwen3 / Gemma 3 q_norm / k_norm). */
  qkNorm?: boolean;
  // Gemma 2 / 3 layer kinds (docs/design.md §9); absent: Llama's.
  /** MLP gating activation (absent: silu, SwiGLU; gelu_pytorch_tanh: GeGLU). */
  activation?: 'silu' | 'gelu_pytorch_tanh';
  /** Every RMSNorm scales by (normOffset + w): 1 for Gemma's (1 + w) norm (absent: 0). */
  normOffset?: number;
  /** Embeddings are multiplied by this (Gemma: sqrt(hidden_size); absent: 1). */
  embedScale?: number;
  /** Norms after attention and MLP, pre_feedforward_layernorm before the MLP (Gemma). */
  postNorms?: boolean;
  /** Attention scale query_pre_attn_scalar^-0.5 (absent: head_dim^-0.5). */
  queryPreAttnScalar?: number;
  /** Attention score soft-capping cap·tanh(x/cap) (absent or 0: none). */
  attnSoftcap?: number;
  /** Final logit soft-capping (absent or 0: none). */
  finalSoftcap?: number;
  /** A second rope for the layers flagged in `layers` (Gemma 3's local layers). */
  localRope?: { theta: number; scaling: NativeRopeScaling; layers: boolean[] };
}

/** The rope scalings of transformers' modeling_rope_utils.py; frequencies computed in native/model/rope.cc. */
export type NativeRopeType = 'default' | 'linear' | 'dynamic' | 'yarn' | 'longrope' | 'llama3';

export interface NativeRopeScaling {
  type: NativeRopeType;
  factor?: number;
  /** Pretraining context (original_max_position_embeddings; max_position_embeddings for dynamic). */
  originalMax?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  betaFast?: number;
  betaSlow?: number;
  mscale?: number;
  mscaleAllDim?: number;
  attentionFactor?: number;
  truncate?: boolean;
  shortFactor?: number[];
  longFactor?: number[];
}

/** One parameter of the native model's flat f32 layout (HF name). */
export interface NativeParamSpec {
  name: string;
  shape: number[];
  /** Offset in floats into the flat parameter / gradient / Fisher layout. */
  offset: number;
  numel: number;
}

/** A tokenized multiple-choice example. `u` in [0,1) drives sampled-mode Fisher. */
export interface NativeExample {
  prompt: Int32Array;
  choices: Int32Array[];
  answer?: number;
  u?: number;
}

export type FisherMode = 'expected' | 'sampled' | 'empirical';

/** f32 values in native memory (native/util/float_buffer.h): may exceed 2^32 elements. */
export interface NativeFloatBuffer {
  readonly length: number;
  /** A zero-copy Float32Array over [offset, offset + n) that keeps the buffer alive. */
  view(offset: number, n: number): Float32Array;
  /** Every value 0 (the pages go back to the kernel until written again). */
  zero(): void;
}

/** Flat f32 values of numParams() elements: a native buffer or a Float32Array. */
export type NativeFlat = NativeFloatBuffer | Float32Array;

export interface NativeLlamaModel {
  params(): NativeParamSpec[];
  numParams(): number;
  setParam(index: number, data: Float32Array): void;
  /** The parameter reads a (numel elements of aDtype), or a + λ·(b − a) when b is given. */
  bindParam(index: number, a: ArrayBufferView | ArrayBuffer, aDtype: ComputeDtype, b: ArrayBufferView | ArrayBuffer | null,
    bDtype: ComputeDtype, lambda: number): void;
  getParam(index: number): Float32Array;
  /** Full logits [T*V] of every position. */
  logits(tokens: Int32Array): Promise<Float32Array>;
  /** ℓ(y|x) of every choice of every example. */
  score(examples: NativeExample[]): Promise<Float64Array[]>;
  /** ℓ(y|x) and its gradient (flat param layout). */
  gradient(prompt: Int32Array, choice: Int32Array): Promise<{ loglik: number; grad: Float32Array }>;
  /**
   * S += scale·Σ_examples Σ_y w_y·(∇ℓ(y|x))², and W += scale·Σ w_y·(∇ℓ)²·λτ when W is given
   * (λτ from each parameter's binding); per-choice ℓ and p back.
   */
  fisher(s: NativeFlat, w: NativeFlat | null, examples: NativeExample[], mode: FisherMode, scale: number):
  Promise<{ loglik: Float64Array; prob: Float64Array }[]>;
  /** S += ε, W += ε·λτ over every parameter. */
  fisherEpsilon(s: NativeFlat, w: NativeFlat | null, eps: number): Promise<void>;
}

/** AdamW hyperparameters of one update (native/kernels/adamw.h); step is 1-based. */
export interface NativeAdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

export interface NativeAddon {
  /** One AdamW step in place over theta, m, v (same lengths as grad). */
  adamwUpdate(theta: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, hyper: NativeAdamWHyper): void;
  /** Σ x² in double (fixed-order blocks: independent of the thread count). */
  sumSquares(x: Float32Array): number;
  /** Scales g to norm maxNorm when above it; returns the norm before clipping. */
  clipGradNorm(g: Float32Array, maxNorm: number): number;
  /** y += a·x. */
  axpy(y: Float32Array, x: Float32Array, a: number): void;
  /** x *= s. */
  scaleInPlace(x: Float32Array, s: number): void;
  LlamaModel: new (config: NativeLlamaConfig) => NativeLlamaModel;
  FloatBuffer: new (length: number) => NativeFloatBuffer;
  /** acc = acc·scale + eps. */
  fisherFinalize(acc: Float32Array, scale: number, eps: number): void;
  /** acc += w·g². */
  fisherAccumulate(acc: Float32Array, g: Float32Array, w: number): void;
  /** out = (1 − t)·f0 + t·f1, or f0^(1−t)·f1^t with log. */
  fisherInterpolate(out: Float32Array, f0: Float32Array, f1: Float32Array, t: number, log: boolean): void;
  matmulBackend(): string;
  /** The rope frequencies a model with this config uses for a sequence of T tokens (native/model/rope.cc). */
  ropeFrequencies(config: NativeLlamaConfig, T: number): { invFreq: Float32Array; attentionScaling: number };
  SafetensorsFile: new (path: string) => NativeSafetensorsFile;
  /** NaN/±Inf among stored F32/F16/BF16 values: how many, and the element index of the first. */
  scanNonFinite(bytes: ArrayBufferView | ArrayBuffer, dtype: ComputeDtype): { count: number; first: number };
  toFloat32(src: ArrayBufferView | ArrayBuffer, dtype: ComputeDtype): Float32Array;
  fromFloat32(src: Float32Array, dtype: ComputeDtype): Uint8Array;
  buildInfo(): NativeBuildInfo;
  setThreads(n: number): number;
  /** Argument errors throw synchronously (with `code`); failures while merging reject. */
  mergeTensor(req: NativeMergeRequest): Promise<void>;
  accumulateFisher(req: NativeAccumulateRequest): Promise<void>;
  /** Gram matrices (segments × k × k, f64) of x_k − base (or x_k). */
  tensorGram(req: NativeGramRequest): Promise<Float64Array>;
  sumOfSquares(data: ArrayBufferView | ArrayBuffer, dtype: ComputeDtype): Promise<number>;
  /** Copies src to dst (same byte length) with the merge driver's threading; returns the byte count. */
  streamCopy(src: ArrayBufferView | ArrayBuffer, dst: ArrayBufferView | ArrayBuffer): number;
  /** The r-th largest (0-based) of keys, by the merge selections' radix selection (for tests; keys unchanged). */
  kthLargestU32(keys: Uint32Array, r: number): number;
  /** Inputs of mapped files read by pread into reused buffers (default true) or through the mapping. */
  setInputStaging(on: boolean): void;
  /** Benchmark baseline: every input read and input 0 written to fd at offset the way a merge does, without arithmetic. */
  fileCopyProbe(req: { inputs: NativeTensorInput[]; n: number; fd: number; offset: number; threads?: number }): Promise<void>;
  /** Writes bytes (a mapped input is read with pread) into fd at offset; errors name the input file and tensor. */
  copyToFile(bytes: ArrayBufferView, fd: number, offset: number, tensor: string): void;
  /** Starts writing bytes [offset, offset + length) of fd to the device now (sync_file_range; a hint, errors ignored). */
  startWriteback(fd: number, offset: number, length: number): void;
}

export interface LoadedAddon {
  addon: NativeAddon;
  variant: 'cpu' | 'cuda';
  path: string;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
let loaded: LoadedAddon | undefined;

function candidates(): { variant: 'cpu' | 'cuda'; path: string }[] {
  const cpu = { variant: 'cpu' as const, path: join(root, 'build', 'Release', 'dfmerge.node') };
  const cuda = { variant: 'cuda' as const, path: join(root, 'build-cuda', 'Release', 'dfmerge.node') };
  const forced = process.env.DFMERGE_BUILD;
  if (forced === 'cpu') return [cpu];
  if (forced === 'cuda') return [cuda];
  return [cuda, cpu];
}

/**
 * OpenMP's idle threads spin before they sleep; libgomp reads how long when the
 * addon loads it. Every native job runs on one compute thread, so the process has
 * one team, as many threads as cores, and libgomp then spins its full default
 * (300 000 rounds): while another process wants the same cores, a thread waiting
 * at a barrier spins out the time slice its partner needs (the model runtime's
 * evaluation ran 2–4× slower beside two busy processes, and DF-Merge iterations
 * up to 90× beside another DF-Merge). 1000 rounds, what libgomp itself uses when
 * it has more threads than cores, kept merges and evaluation as fast without
 * contention and near the sleep-at-once policy with it (docs/design.md §11). A
 * user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone.
 */
function boundOpenMpSpinning(): void {
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
    process.env.GOMP_SPINCOUNT = '1000';
  }
}

/** The loaded addon (loaded once, on first use). */
export function loadAddon(): LoadedAddon {
  if (loaded) return loaded;
  boundOpenMpSpinning();
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  let cpuCapableCuda: LoadedAddon | undefined;
  for (const c of candidates()) {
    if (!existsSync(c.path)) {
      tried.push(`${c.path} (not built)`);
      continue;
    }
    let addon: NativeAddon;
    try {
      addon = require(c.path) as NativeAddon;
    } catch (e) {
      tried.push(`${c.path} (${e instanceof Error ? e.message : String(e)})`);
      continue;
    }
    // A CUDA build on a machine without a GPU: keep looking for the CPU build
    // unless the user forced CUDA.
    if (c.variant === 'cuda' && addon.buildInfo().cudaDevices === 0 && process.env.DFMERGE_BUILD !== 'cuda') {
      tried.push(`${c.path} (no CUDA device answers)`);
      cpuCapableCuda = { addon, variant: c.variant, path: c.path };
      continue;
    }
    loaded = { addon, variant: c.variant, path: c.path };
    return loaded;
  }
  // The CUDA build also carries every CPU kernel: use it when it is all there is.
  if (cpuCapableCuda) {
    loaded = cpuCapableCuda;
    return loaded;
  }
  throw new NativeError(
    'AddonMissing',
    `the dfmerge native addon could not be loaded; run \`npm install\` (or \`npm run build:native\`). Tried: ${tried.join('; ')}`,
  );
}

export function addon(): NativeAddon {
  return loadAddon().addon;
}
