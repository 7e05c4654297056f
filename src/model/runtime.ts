/**
 * The Llama-family runtime: a native LlamaModel (forward and backward in C++,
 * native/model/) plus its config and tokenizer.
 *
 * Weights (docs/design.md §5) are bound, not copied: each parameter
 * reads a tensor in its stored dtype, usually a zero-copy view of a mmapped
 * safetensors file, or the scaled model θ_a + λ·(θ_b − θ_a) of two tensors,
 * formed inside the GEMMs. So a checkpoint, a scaled model θ_pre + λ·τ or a
 * merge held in a native FloatBuffer is evaluated without an f32 copy of the
 * model. Weights can also be set from f32 arrays (training, tests), which the
 * model then owns.
 */
import { Checkpoint } from '../io/checkpoint.js';
import { isComputeDtype } from '../io/dtypes.js';
import { CheckpointError, UsageError, nativeErrorFields, DfmergeError } from '../errors.js';
import { addon, type ComputeDtype, type FisherMode, type NativeExample, type NativeFlat, type NativeFloatBuffer, type NativeLlamaModel,
  type NativeParamSpec } from '../native/addon.js';
import { readModelConfig, type ModelConfig } from './config.js';
import { ModelTokenizer } from './tokenizer.js';

/** Weights by HF tensor name: a Map, a plain object, or a function asked once per tensor. */
export type WeightSource =
  | ReadonlyMap<string, Float32Array>
  | Readonly<Record<string, Float32Array>>
  | ((name: string, shape: readonly number[]) => Float32Array);

/** One tensor's bytes in a compute dtype (e.g. a zero-copy mmap view). */
export interface TensorBytes {
  readonly data: ArrayBufferView | ArrayBuffer;
  readonly dtype: ComputeDtype;
}

/** Where each parameter's values come from: asked once per parameter. */
export type TensorSource = (p: NativeParamSpec) => TensorBytes;

/** A new native f32 buffer of n zeros (S, W, merges: may exceed 2^32 values). */
export function newFloatBuffer(n: number): NativeFloatBuffer {
  try {
    return new (addon().FloatBuffer)(n);
  } catch (e) {
    const { code, message } = nativeErrorFields(e);
    throw new RuntimeError(code, message);
  }
}

/** A tokenized multiple-choice example (see ModelTokenizer for the convention). */
export interface TokenizedExample {
  prompt: Int32Array;
  choices: Int32Array[];
  /** Gold answer index. */
  answer: number;
}

/** An error from the native model (bad token, sequence too long, busy ...). */
export class RuntimeError extends DfmergeError {}

function wrapNative<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof DfmergeError) throw e;
    const { code, message } = nativeErrorFields(e);
    throw new RuntimeError(code, message);
  }
}

async function wrapNativeAsync<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    if (e instanceof DfmergeError) throw e;
    const { code, message } = nativeErrorFields(e);
    throw new RuntimeError(code, message);
  }
}

function weightOf(src: WeightSource, name: string, shape: readonly number[]): Float32Array | undefined {
  if (typeof src === 'function') return src(name, shape);
  if (src instanceof Map) return src.get(name);
  return (src as Record<string, Float32Array>)[name];
}

export class LlamaRuntime {
  readonly config: ModelConfig;
  readonly tokenizer: ModelTokenizer | undefined;
  /** Every parameter in the runtime's flat layout (HF names). */
  readonly params: readonly NativeParamSpec[];
  /** Total number of parameters (length of a gradient / Fisher accumulator). */
  readonly numParams: number;
  private readonly native: NativeLlamaModel;
  private readonly index: Map<string, number>;

  private constructor(config: ModelConfig, tokenizer: ModelTokenizer | undefined) {
    this.config = config;
    this.tokenizer = tokenizer;
    const Ctor = addon().LlamaModel;
    this.native = wrapNative(() => new Ctor(config));
    this.params = this.native.params();
    this.numParams = this.native.numParams();
    this.index = new Map(this.params.map((p, i) => [p.name, i]));
  }

  /** A model with the given config and no weights yet (bind or set them before use). */
  static fromConfig(config: ModelConfig, tokenizer?: ModelTokenizer): LlamaRuntime {
    return new LlamaRuntime(config, tokenizer);
  }

  /** A model with the given config and weights (every parameter must be supplied). */
  static fromWeights(config: ModelConfig, weights: WeightSource, tokenizer?: ModelTokenizer): LlamaRuntime {
    const rt = new LlamaRuntime(config, tokenizer);
    rt.setWeights(weights);
    return rt;
  }

  /**
   * Loads config.json and tokenizer.json of a checkpoint folder and binds its
   * weights (mmapped, in their stored dtype). With `base` and `scale` (λ), binds
   * the scaled model θ_base + λ·(θ − θ_base) (docs/design.md §1, θ_i(λ_i)).
   */
  static fromCheckpoint(dir: string, options: { base?: string; scale?: number; tokenizer?: boolean } = {}): LlamaRuntime {
    const config = readModelConfig(dir);
    const tokenizer = options.tokenizer === false ? undefined : ModelTokenizer.load(dir, config.vocab);
    if (options.base === undefined && options.scale !== undefined) throw new UsageError('a scale (λ) needs a base model');
    const ck = Checkpoint.open(dir);
    const base = options.base !== undefined ? Checkpoint.open(options.base) : undefined;
    try {
      const rt = new LlamaRuntime(config, tokenizer);
      if (base) rt.bind(checkpointSource(base, rt.params), checkpointSource(ck, rt.params), options.scale ?? 1);
      else rt.bind(checkpointSource(ck, rt.params));
      return rt;
    } finally {
      // the bound views keep their mappings alive
      ck.close();
      base?.close();
    }
  }

  /**
   * Binds every parameter to `a`, or to the scaled model a + λ·(b − a) when `b`
   * is given. The buffers must stay unchanged while bound (mmapped files, or
   * native buffers the caller owns).
   */
  bind(a: TensorSource, b?: TensorSource, lambda = 1): void {
    if (!Number.isFinite(lambda)) throw new UsageError(`λ must be finite, got ${lambda}`);
    for (const [i, p] of this.params.entries()) {
      const x = a(p);
      const y = b?.(p);
      wrapNative(() => this.native.bindParam(i, x.data, x.dtype, y ? y.data : null, y ? y.dtype : 'F32', lambda));
    }
  }

  /** Replaces every parameter (each must be present with the right length). */
  setWeights(weights: WeightSource): void {
    for (const [i, p] of this.params.entries()) {
      const w = weightOf(weights, p.name, p.shape);
      if (w === undefined) throw new UsageError(`weights: no tensor "${p.name}" (shape [${p.shape.join(', ')}])`);
      this.setParamAt(i, w);
    }
  }

  /** Replaces one parameter. */
  setWeight(name: string, data: Float32Array): void {
    this.setParamAt(this.indexOf(name), data);
  }

  /** A copy of one parameter. */
  getWeight(name: string): Float32Array {
    return this.native.getParam(this.indexOf(name));
  }

  /** Logits [T × vocab] (row-major) of every position of `tokens`. */
  logits(tokens: Int32Array): Promise<Float32Array> {
    return wrapNativeAsync(() => this.native.logits(tokens));
  }

  /** ℓ(y|x), the length-normalised log-likelihood, of every choice of every example. */
  score(examples: readonly TokenizedExample[]): Promise<Float64Array[]> {
    return wrapNativeAsync(() => this.native.score(examples.map((e) => ({ prompt: e.prompt, choices: e.choices }))));
  }

  /** ℓ(y|x) of one choice and its gradient w.r.t. every parameter (flat layout; see tensorViews). */
  gradient(prompt: Int32Array, choice: Int32Array): Promise<{ loglik: number; grad: Float32Array }> {
    return wrapNativeAsync(() => this.native.gradient(prompt, choice));
  }

  /** A zeroed flat accumulator of numParams() f32 values. */
  newAccumulator(): Float32Array {
    return new Float32Array(this.numParams);
  }

  /**
   * Folds examples into Fisher accumulators (docs/design.md §1, unnormalised):
   * s += scale · Σ_n Σ_y w_y · (∇ℓ(y|x_n))², w_y = p(y|x_n) (expected), 1 for one
   * y ~ p drawn with u_n (sampled), 1 for the gold y (empirical); with `w` also
   * w += scale · Σ_n Σ_y w_y · (∇ℓ)² ⊙ λτ, λτ taken from the bound scaled model
   * (the DF-Merge accumulators S and W). Returns each example's ℓ and p.
   */
  accumulateFisher(acc: NativeFlat, examples: readonly (TokenizedExample & { u?: number })[], mode: FisherMode,
    options: { w?: NativeFlat; scale?: number } = {}): Promise<{ loglik: Float64Array; prob: Float64Array }[]> {
    this.checkFlat(acc, 'Fisher accumulator');
    if (options.w) this.checkFlat(options.w, 'Fisher accumulator W');
    const ex: NativeExample[] = examples.map((e) => ({ prompt: e.prompt, choices: e.choices, answer: e.answer, u: e.u ?? 0 }));
    return wrapNativeAsync(() => this.native.fisher(acc, options.w ?? null, ex, mode, options.scale ?? 1));
  }

  /** The ε of F = (1/N)Σ + ε: s += ε and, with w, w += ε·λτ (the bound scaled model's). */
  fisherEpsilon(acc: NativeFlat, w: NativeFlat | null, eps: number): Promise<void> {
    this.checkFlat(acc, 'Fisher accumulator');
    if (w) this.checkFlat(w, 'Fisher accumulator W');
    return wrapNativeAsync(() => this.native.fisherEpsilon(acc, w, eps));
  }

  private checkFlat(x: NativeFlat, what: string): void {
    if (x.length !== this.numParams) throw new UsageError(`${what} has ${x.length} values, the model ${this.numParams}`);
  }

  /** Per-tensor views (no copy) of a flat gradient / Fisher array or native buffer, by HF name. */
  tensorViews(flat: NativeFlat): Map<string, Float32Array> {
    this.checkFlat(flat, 'flat array');
    return new Map(this.params.map((p) => [p.name, flatView(flat, p)]));
  }

  private indexOf(name: string): number {
    const i = this.index.get(name);
    if (i === undefined) throw new UsageError(`the model has no parameter "${name}"`);
    return i;
  }

  private setParamAt(i: number, data: Float32Array): void {
    const p = this.params[i]!;
    if (!(data instanceof Float32Array) || data.length !== p.numel) {
      throw new UsageError(`weights: tensor "${p.name}" needs a Float32Array of ${p.numel} values (shape [${p.shape.join(', ')}]), got ${data instanceof Float32Array ? data.length + ' values' : typeof data}`);
    }
    wrapNative(() => this.native.setParam(i, data));
  }
}

/** F = acc/N + ε (docs/design.md §1), in place. */
export function finalizeFisher(acc: Float32Array, n: number, eps = 1e-12): void {
  if (!(n > 0)) throw new UsageError(`cannot normalise a Fisher over ${n} examples`);
  addon().fisherFinalize(acc, 1 / n, eps);
}

/** One parameter's values in a flat layout (zero-copy). */
export function flatView(flat: NativeFlat, p: NativeParamSpec): Float32Array {
  return flat instanceof Float32Array ? flat.subarray(p.offset, p.offset + p.numel) : flat.view(p.offset, p.numel);
}

/** Parameters read from a flat f32 layout (a Float32Array or a native buffer). */
export function flatSource(flat: NativeFlat): TensorSource {
  return (p) => ({ data: flatView(flat, p), dtype: 'F32' });
}

/**
 * Parameters read from a checkpoint's tensors in their stored dtype (zero-copy
 * mmap views). Every parameter the config implies is checked first: present,
 * the right shape, a float dtype; errors name the checkpoint and the tensor.
 */
export function checkpointSource(ck: Checkpoint, params: readonly NativeParamSpec[]): TensorSource {
  for (const p of params) {
    if (!ck.has(p.name)) throw new CheckpointError(ck.path, 'TensorNotFound', `no tensor "${p.name}" (needed by the model config)`);
    const { info } = ck.locate(p.name);
    if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
      throw new CheckpointError(ck.path, 'ShapeMismatch',
        `tensor "${p.name}" has shape [${info.shape.join(', ')}], config.json implies [${p.shape.join(', ')}]`);
    }
    if (!isComputeDtype(info.dtype)) {
      throw new CheckpointError(ck.path, 'NotFloat', `tensor "${p.name}" has dtype ${info.dtype}; the runtime reads F32, F16 or BF16`);
    }
  }
  return (p) => {
    const { file, info } = ck.locate(p.name);
    return { data: file.bytes(p.name), dtype: info.dtype as ComputeDtype };
  };
}
