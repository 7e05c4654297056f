/**
 * Large random BF16 Llama checkpoints for the memory benchmarks, written tensor
 * by tensor in chunks so that writing a 1B-parameter model needs no more than
 * a chunk in memory. An expert is the base plus seeded noise, computed from the
 * same counter-based values, so a base and its experts are written independently.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointWriter } from '../../src/io/writer.js';
import { parseModelConfig, type ModelConfig } from '../../src/model/config.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { addon } from '../../src/native/addon.js';
import type { NativeParamSpec } from '../../src/native/addon.js';

export interface BigLlamaShape {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  tied: boolean;
}

/** Llama-3.2-1B's shape (real hidden size, heads, vocabulary; default rope). */
export const LLAMA_3_2_1B: BigLlamaShape = { hidden: 2048, intermediate: 8192, layers: 16, heads: 32, kvHeads: 8, vocab: 128256, tied: true };

export function bigLlamaConfig(s: BigLlamaShape): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: s.hidden, intermediate_size: s.intermediate,
    num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, num_hidden_layers: s.layers, vocab_size: s.vocab,
    max_position_embeddings: 512, rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: s.tied,
    hidden_act: 'silu', attention_bias: false, torch_dtype: 'bfloat16', bos_token_id: 1, eos_token_id: 2,
  };
}

/** The runtime's parameter layout for a shape (no weights). */
export function paramsOf(s: BigLlamaShape): { config: ModelConfig; params: readonly NativeParamSpec[] } {
  const config = parseModelConfig(bigLlamaConfig(s));
  return { config, params: LlamaRuntime.fromConfig(config).params };
}

/** Counter-based uniform in [-1, 1): element i of stream `seed`. */
function u(seed: number, i: number): number {
  let h = Math.imul(i ^ Math.imul(seed, 0x9e3779b9), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h / 2147483648 - 1;
}

/**
 * Writes a BF16 checkpoint folder: expert < 0 is the base; expert k ≥ 0 is the
 * base plus k-seeded noise of `noise` (relative to the weight scale).
 */
export function writeBigLlama(dir: string, s: BigLlamaShape, expert: number, noise = 0.05): void {
  mkdirSync(dir, { recursive: true });
  const { params } = paramsOf(s);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(bigLlamaConfig(s), null, 2));
  const w = new CheckpointWriter(dir, params.map((p) => ({ name: p.name, dtype: 'BF16', shape: p.shape })));
  try {
    const chunk = 1 << 20;
    const buf = new Float32Array(chunk);
    params.forEach((p, t) => {
      const norm = p.shape.length === 1;
      const scale = norm ? 0.05 : 1 / Math.sqrt(p.shape[p.shape.length - 1]!);
      for (let i0 = 0; i0 < p.numel; i0 += chunk) {
        const n = Math.min(chunk, p.numel - i0);
        const v = buf.subarray(0, n);
        for (let i = 0; i < n; i++) {
          const base = (norm ? 1 : 0) + scale * u(t + 1, i0 + i);
          v[i] = expert < 0 ? base : base + noise * scale * u(1000 * (expert + 1) + t, i0 + i);
        }
        w.write(p.name, addon().fromFloat32(v, 'BF16'), i0 * 2);
      }
    });
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}
