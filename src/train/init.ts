/**
 * Seeded random initialisation of a Llama-family model (the transformers
 * LlamaPreTrainedModel recipe, plus GPT-2's residual scaling): every matrix
 * N(0, std²), the output projections of each residual branch (o_proj, down_proj)
 * N(0, (std/√(2L))²), RMSNorm gains 1, biases 0.
 */
import type { NativeParamSpec } from '../native/addon.js';
import { Rng } from '../util/rng.js';

/** Standard normal draws from a seeded Rng (Box–Muller). */
export class NormalRng {
  private readonly rng: Rng;
  private spare: number | undefined;
  constructor(seed: number) {
    this.rng = new Rng(seed);
  }
  next(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.rng.next();
    const v = this.rng.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

/** A flat parameter vector (the runtime's layout) initialised from `seed`. */
export function initialWeights(params: readonly NativeParamSpec[], numParams: number, layers: number, seed: number, std = 0.02): Float32Array {
  const theta = new Float32Array(numParams);
  const rng = new NormalRng(seed);
  for (const p of params) {
    const w = theta.subarray(p.offset, p.offset + p.numel);
    if (p.name.endsWith('norm.weight')) {
      w.fill(1);
    } else if (p.name.endsWith('.bias')) {
      w.fill(0);
    } else {
      const s = /\.(o_proj|down_proj)\.weight$/.test(p.name) ? std / Math.sqrt(2 * layers) : std;
      for (let i = 0; i < w.length; i++) w[i] = s * rng.next();
    }
  }
  return theta;
}
