/** Random Llama checkpoints and tokenized examples for the runtime benchmarks. */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { CheckpointWriter } from '../../src/io/writer.js';
import { parseModelConfig } from '../../src/model/config.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import type { FisherExample } from '../../src/fisher/fisher.js';
import { Rng } from '../../src/util/rng.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface LlamaShape { hidden: number; intermediate: number; layers: number; heads: number; kvHeads: number; vocab: number }

export function llamaConfig(s: LlamaShape): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: s.hidden, intermediate_size: s.intermediate,
    num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, num_hidden_layers: s.layers, vocab_size: s.vocab,
    max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
    hidden_act: 'silu', attention_bias: false, torch_dtype: 'float32', bos_token_id: 1, eos_token_id: 2,
  };
}

/**
 * Writes a random Llama (GQA, untied, f32) as an HF folder; with `from`, each
 * weight is from's plus U(-noise, noise) ("fine-tuned" variants). `opts.config`
 * overrides config.json fields (e.g. tied embeddings, rope scaling);
 * `opts.tokenizerDir` supplies tokenizer.json and tokenizer_config.json.
 */
export function writeRandomLlama(dir: string, s: LlamaShape, seed: number, from?: LlamaRuntime, noise = 0.01,
  opts: { config?: Record<string, unknown>; tokenizerDir?: string } = {}): LlamaRuntime {
  const config = { ...llamaConfig(s), ...opts.config };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const tokFiles = opts.tokenizerDir ? ['tokenizer.json', 'tokenizer_config.json'] : ['tokenizer.json'];
  for (const f of tokFiles) copyFileSync(join(opts.tokenizerDir ?? join(ROOT, 'test', 'fixtures', 'llama', 'gqa'), f), join(dir, f));
  const rng = new Rng(seed);
  const cfg = parseModelConfig(config);
  const probe = LlamaRuntime.fromWeights(cfg, (_name, shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
  const w = new CheckpointWriter(dir, probe.params.map((p) => ({ name: p.name, dtype: 'F32', shape: p.shape })));
  for (const p of probe.params) {
    let t: Float32Array;
    if (from) {
      t = from.getWeight(p.name);
      for (let i = 0; i < t.length; i++) t[i] = t[i]! + (rng.next() - 0.5) * 2 * noise;
    } else {
      t = new Float32Array(p.numel);
      if (p.name.endsWith('norm.weight')) t.fill(1);
      else { const sc = 2 / Math.sqrt(p.shape[p.shape.length - 1]!); for (let i = 0; i < t.length; i++) t[i] = (rng.next() - 0.5) * sc; }
    }
    w.write(p.name, t);
  }
  w.finish();
  return LlamaRuntime.fromCheckpoint(dir);
}

/** Tokenized examples: prompt 24..48 tokens (BOS first), 2..4 choices of 1..8 tokens. */
export function randomExamples(rng: Rng, n: number, vocab: number): FisherExample[] {
  const examples: FisherExample[] = [];
  for (let k = 0; k < n; k++) {
    const P = 24 + rng.int(25);
    const prompt = Int32Array.from({ length: P }, (_, i) => (i === 0 ? 1 : 3 + rng.int(vocab - 3)));
    const K = 2 + rng.int(3);
    const choices = Array.from({ length: K }, () => Int32Array.from({ length: 1 + rng.int(8) }, () => 3 + rng.int(vocab - 3)));
    examples.push({ prompt, choices, answer: rng.int(K), u: 0 });
  }
  return examples;
}

export const asJson = (e: FisherExample) => ({ prompt: [...e.prompt], choices: e.choices.map((c) => [...c]), answer: e.answer });

/** A Python interpreter with torch, transformers and safetensors, or undefined. */
export function pythonWithTorch(): string | undefined {
  for (const p of [process.env.DFMERGE_PYTHON, join(ROOT, '.venv', 'bin', 'python')].filter(Boolean) as string[]) {
    try {
      execFileSync(p, ['-c', 'import torch, transformers, safetensors'], { stdio: 'ignore' });
      return p;
    } catch { /* next */ }
  }
  return undefined;
}
