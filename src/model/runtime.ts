/**
 * The Llama-family runtime: a native LlamaModel (f32 weights, forward and
 * backward in C++, native/model/) plus its config and tokenizer. Load it from a
 * checkpoint folder, or from in-memory weights (name -> Float32Array) so that a
 * scaled model θ_pre + λ·τ or an in-memory merge is evaluated without touching
 * disk. Weights can be replaced in place (setWeights) between evaluations.
 */
import { Checkpoint } from '../io/checkpoint.js';
import { CheckpointError, UsageError, nativeErrorFields, DfmergeError } from '../errors.js';
import { addon, type FisherMode, type NativeExample, type NativeLlamaModel, type NativeParamSpec } from '../native/addon.js';
import { readModelConfig, type ModelConfig } from './config.js';
import { ModelTokenizer } from './tokenizer.js';

/** Weights by HF tensor name: a Map, a plain object, or a function asked once per tensor. */
export type WeightSource =
  | ReadonlyMap<string, Float32Array>
  | Readonly<Record<string, Float32Array>>
  | ((name: string, shape: readonly number[]) => Float32Array);

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

  /** A model with the given config and weights (every parameter must be supplied). */
  static fromWeights(config: ModelConfig, weights: WeightSource, tokenizer?: ModelTokenizer): LlamaRuntime {
    const rt = new LlamaRuntime(config, tokenizer);
    rt.setWeights(weights);
    return rt;
  }

  /**
   * Loads config.json, tokenizer.json and the weights of a checkpoint folder.
   * With `base` and `scale` (λ), loads the scaled model θ_base + λ·(θ − θ_base)
   * (DESIGN.md §1, scaled model θ_i(λ_i)).
   */
  static fromCheckpoint(dir: string, options: { base?: string; scale?: number; tokenizer?: boolean } = {}): LlamaRuntime {
    const config = readModelConfig(dir);
    const tokenizer = options.tokenizer === false ? undefined : ModelTokenizer.load(dir, config.vocab);
    const ck = Checkpoint.open(dir);
    const base = options.base !== undefined ? Checkpoint.open(options.base) : undefined;
    const lambda = options.scale ?? 1;
    if (base === undefined && options.scale !== undefined) throw new UsageError('a scale (λ) needs a base model');
    try {
      const rt = new LlamaRuntime(config, tokenizer);
      for (const [i, p] of rt.params.entries()) {
        const w = readTensor(ck, p);
        if (base) {
          const b = readTensor(base, p);
          for (let j = 0; j < w.length; j++) w[j] = b[j]! + lambda * (w[j]! - b[j]!);  // θ_pre + λ·τ
        }
        wrapNative(() => rt.native.setParam(i, w));
      }
      return rt;
    } finally {
      ck.close();
      base?.close();
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
   * Folds examples into a Fisher accumulator (DESIGN.md §1, unnormalised):
   * acc += Σ_n Σ_y w_y · (∇ℓ(y|x_n))², w_y = p(y|x_n) (expected), 1 for one
   * y ~ p drawn with u_n (sampled), 1 for the gold y (empirical). Returns each
   * example's ℓ and p. Divide by N and add ε with finalizeFisher.
   */
  accumulateFisher(acc: Float32Array, examples: readonly (TokenizedExample & { u?: number })[], mode: FisherMode):
  Promise<{ loglik: Float64Array; prob: Float64Array }[]> {
    if (acc.length !== this.numParams) throw new UsageError(`Fisher accumulator has ${acc.length} values, the model ${this.numParams}`);
    const ex: NativeExample[] = examples.map((e) => ({ prompt: e.prompt, choices: e.choices, answer: e.answer, u: e.u ?? 0 }));
    return wrapNativeAsync(() => this.native.fisher(acc, ex, mode));
  }

  /** Per-tensor views (no copy) of a flat gradient / Fisher array, by HF name. */
  tensorViews(flat: Float32Array): Map<string, Float32Array> {
    if (flat.length !== this.numParams) throw new UsageError(`flat array has ${flat.length} values, the model ${this.numParams}`);
    return new Map(this.params.map((p) => [p.name, flat.subarray(p.offset, p.offset + p.numel)]));
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

/** F = acc/N + ε (DESIGN.md §1), in place. */
export function finalizeFisher(acc: Float32Array, n: number, eps = 1e-12): void {
  if (!(n > 0)) throw new UsageError(`cannot normalise a Fisher over ${n} examples`);
  addon().fisherFinalize(acc, 1 / n, eps);
}

function readTensor(ck: Checkpoint, p: NativeParamSpec): Float32Array {
  if (!ck.has(p.name)) throw new CheckpointError(ck.path, 'TensorNotFound', `no tensor "${p.name}" (needed by the model config)`);
  const { file, info } = ck.locate(p.name);
  if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
    throw new CheckpointError(ck.path, 'ShapeMismatch',
      `tensor "${p.name}" has shape [${info.shape.join(', ')}], config.json implies [${p.shape.join(', ')}]`);
  }
  return file.toFloat32(p.name);
}
