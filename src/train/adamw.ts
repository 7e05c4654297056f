/**
 * AdamW over a model's flat parameter layout (LlamaRuntime.params): first and
 * second moments in f32, one native update per tensor (native/kernels/adamw.h has
 * the formula). Weight decay applies to matrices (2-D and up: projections,
 * embeddings, LM head) and not to 1-D tensors (RMSNorm gains, biases), as in
 * nanoGPT/minGPT.
 */
import { UsageError } from '../errors.js';
import { addon } from '../native/addon.js';
import type { NativeParamSpec } from '../native/addon.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Updates done so far (the next one is step t = steps + 1). */
  steps = 0;
  readonly m: Float32Array;
  readonly v: Float32Array;
  private readonly params: readonly NativeParamSpec[];

  constructor(params: readonly NativeParamSpec[], numParams: number, options: AdamWOptions = {}) {
    this.params = params;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    for (const [k, v] of [['beta1', this.beta1], ['beta2', this.beta2]] as const) {
      if (!(v >= 0 && v < 1)) throw new UsageError(`AdamW ${k} must be in [0, 1), got ${v}`);
    }
    if (!(this.eps > 0)) throw new UsageError(`AdamW eps must be positive, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) throw new UsageError(`AdamW weight decay must be >= 0, got ${this.weightDecay}`);
    this.m = new Float32Array(numParams);
    this.v = new Float32Array(numParams);
  }

  /** Whether a parameter is weight-decayed (matrices yes, gains and biases no). */
  static decays(p: NativeParamSpec): boolean {
    return p.shape.length >= 2;
  }

  /** One update of theta (flat layout) with gradient grad (of the loss to minimise) at learning rate lr. */
  step(theta: Float32Array, grad: Float32Array, lr: number): void {
    if (theta.length !== this.m.length || grad.length !== this.m.length) {
      throw new UsageError(`AdamW: theta (${theta.length}) and grad (${grad.length}) must have ${this.m.length} values`);
    }
    this.steps += 1;
    const a = addon();
    for (const p of this.params) {
      const sl = (x: Float32Array) => x.subarray(p.offset, p.offset + p.numel);
      a.adamwUpdate(sl(theta), sl(grad), sl(this.m), sl(this.v), {
        lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: AdamW.decays(p) ? this.weightDecay : 0,
        step: this.steps,
      });
    }
  }
}
