/**
 * Synthetic Llama-shaped checkpoints for benchmarks and memory tests: a base and
 * M "fine-tuned" models (base plus small seeded noise), written as Hugging Face
 * folders with the streaming writer, chunk by chunk (memory stays small).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointWriter, type TensorSpec } from '../../src/io/writer.js';

export interface SyntheticShape {
  layers: number;
  hidden: number;
  intermediate: number;
  vocab: number;
  dtype: 'BF16' | 'F16' | 'F32';
}

/** A shape whose bf16 checkpoint is about `bytes` large. */
export function shapeForBytes(bytes: number, dtype: SyntheticShape['dtype'] = 'BF16'): SyntheticShape {
  const hidden = bytes > 2e9 ? 2048 : bytes > 2e8 ? 1024 : 256;
  const intermediate = hidden * 4;
  const vocab = 8192;
  const perLayer = 4 * hidden * hidden + 3 * hidden * intermediate + 2 * hidden;
  const el = dtype === 'F32' ? 4 : 2;
  const fixed = 2 * vocab * hidden + hidden;
  const layers = Math.max(1, Math.round((bytes / el - fixed) / perLayer));
  return { layers, hidden, intermediate, vocab, dtype };
}

export function llamaSpecs(s: SyntheticShape): TensorSpec[] {
  const t = (name: string, shape: number[]): TensorSpec => ({ name, dtype: s.dtype, shape });
  const specs: TensorSpec[] = [t('model.embed_tokens.weight', [s.vocab, s.hidden])];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    specs.push(
      t(`${p}.input_layernorm.weight`, [s.hidden]),
      t(`${p}.self_attn.q_proj.weight`, [s.hidden, s.hidden]),
      t(`${p}.self_attn.k_proj.weight`, [s.hidden, s.hidden]),
      t(`${p}.self_attn.v_proj.weight`, [s.hidden, s.hidden]),
      t(`${p}.self_attn.o_proj.weight`, [s.hidden, s.hidden]),
      t(`${p}.post_attention_layernorm.weight`, [s.hidden]),
      t(`${p}.mlp.gate_proj.weight`, [s.intermediate, s.hidden]),
      t(`${p}.mlp.up_proj.weight`, [s.intermediate, s.hidden]),
      t(`${p}.mlp.down_proj.weight`, [s.hidden, s.intermediate]),
    );
  }
  specs.push(t('model.norm.weight', [s.hidden]), t('lm_head.weight', [s.vocab, s.hidden]));
  return specs;
}

class XorShift {
  private s: number;
  constructor(seed: number) { this.s = (seed * 2654435761 + 1) >>> 0 || 1; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
}

/**
 * Writes base/ and model0..model{M-1}/ under `root`; returns their folders.
 * Values: base ~ U(-0.05, 0.05); model k = base + U(-0.005, 0.005).
 */
export function makeSyntheticModels(root: string, shape: SyntheticShape, m: number, seed = 1, shardSize = 2e9): { base: string; models: string[] } {
  const dirs = [join(root, 'base'), ...Array.from({ length: m }, (_, k) => join(root, `model${k}`))];
  const specs = llamaSpecs(shape);
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: shape.hidden, intermediate_size: shape.intermediate,
    num_hidden_layers: shape.layers, num_attention_heads: Math.max(1, shape.hidden / 64), num_key_value_heads: Math.max(1, shape.hidden / 64),
    vocab_size: shape.vocab, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
    torch_dtype: shape.dtype === 'BF16' ? 'bfloat16' : shape.dtype === 'F16' ? 'float16' : 'float32',
  };
  const writers = dirs.map((d) => {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'config.json'), JSON.stringify(config, null, 2));
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify({ version: '1.0', model: { type: 'WordLevel', vocab: { '[UNK]': 0 }, unk_token: '[UNK]' } }));
    return new CheckpointWriter(d, specs, { shardSize });
  });
  const rng = new XorShift(seed);
  const chunk = 1 << 20;
  const f32 = new Float32Array(chunk);
  const u32 = new Uint32Array(f32.buffer);
  const el = shape.dtype === 'F32' ? 4 : 2;
  const out = dirs.map(() => new Uint8Array(chunk * el));
  const o16 = out.map((b) => new Uint16Array(b.buffer));
  const o32 = out.map((b) => new Float32Array(b.buffer));
  const baseVals = new Float32Array(chunk);
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      for (let k = 0; k < dirs.length; k++) {
        for (let i = 0; i < len; i++) {
          const r = (rng.next() / 4294967296 - 0.5);
          const v = k === 0 ? r * 0.1 : baseVals[i]! + r * 0.01;
          if (k === 0) baseVals[i] = v;
          f32[i] = v;
        }
        if (shape.dtype === 'F32') o32[k]!.set(f32.subarray(0, len));
        else if (shape.dtype === 'BF16') for (let i = 0; i < len; i++) o16[k]![i] = (u32[i]! + 0x7fff + ((u32[i]! >>> 16) & 1)) >>> 16;
        else throw new Error('F16 synthetic models are not implemented');
        writers[k]!.write(s.name, out[k]!.subarray(0, len * el), off * el);
      }
    }
  }
  for (const w of writers) w.finish();
  return { base: dirs[0]!, models: dirs.slice(1) };
}
