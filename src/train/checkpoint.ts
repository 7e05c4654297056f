/**
 * Saves a model as a Hugging Face checkpoint folder (docs/design.md §2): config.json
 * with HF field names (LlamaForCausalLM and friends, `torch_dtype`/`dtype`
 * float32), tokenizer.json (+ tokenizer_config.json), model.safetensors (F32,
 * through CheckpointWriter: temporary name, renamed when complete). Loadable by
 * LlamaRuntime.fromCheckpoint / `dfmerge eval` and by transformers'
 * AutoModelForCausalLM.from_pretrained.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointWriter, writeFileAtomic } from '../io/writer.js';
import type { ModelConfig } from '../model/config.js';
import { UsageError } from '../errors.js';
import type { NativeParamSpec } from '../native/addon.js';

const ARCH_CLASS = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM' } as const;

export interface SpecialTokenIds {
  bos?: number;
  eos?: number;
  pad?: number;
}

/** config.json contents for a model config (HF names). */
export function hfConfig(config: ModelConfig, special: SpecialTokenIds = {}): Record<string, unknown> {
  if ((config.rope !== undefined && config.rope.type !== 'default') || config.layerWindows !== undefined) {
    throw new UsageError('hfConfig writes default-rope, full-attention configs only (this one has rope scaling or sliding windows)');
  }
  if (config.architecture === 'gemma2' || config.architecture === 'gemma3') {
    throw new UsageError(`hfConfig writes Llama, Mistral and Qwen configs only, not ${config.architecture}`);
  }
  return {
    architectures: [ARCH_CLASS[config.architecture]],
    model_type: config.architecture,
    hidden_size: config.hidden,
    intermediate_size: config.intermediate,
    num_attention_heads: config.heads,
    num_key_value_heads: config.kvHeads,
    head_dim: config.headDim,
    num_hidden_layers: config.layers,
    vocab_size: config.vocab,
    max_position_embeddings: config.maxPositions,
    rms_norm_eps: config.rmsEps,
    rope_theta: config.ropeTheta,
    rope_parameters: { rope_type: 'default', rope_theta: config.ropeTheta },
    hidden_act: 'silu',
    attention_bias: config.attentionBias,
    mlp_bias: false,
    attention_dropout: 0.0,
    tie_word_embeddings: config.tieEmbeddings,
    initializer_range: 0.02,
    bos_token_id: special.bos ?? null,
    eos_token_id: special.eos ?? null,
    pad_token_id: special.pad ?? null,
    use_cache: true,
    torch_dtype: 'float32',
    dtype: 'float32',
  };
}

export interface SaveModelOptions {
  config: ModelConfig;
  params: readonly NativeParamSpec[];
  /** Flat weights in the runtime layout. */
  theta: Float32Array;
  /** tokenizer.json contents (object or serialised). */
  tokenizer: unknown;
  /** tokenizer_config.json contents, when wanted. */
  tokenizerConfig?: unknown;
  special?: SpecialTokenIds;
  /** Extra `__metadata__` strings for model.safetensors. */
  metadata?: Record<string, string>;
}

/** Writes config.json, tokenizer.json(, tokenizer_config.json) and model.safetensors into dir (created if needed). */
export function saveModel(dir: string, o: SaveModelOptions): void {
  mkdirSync(dir, { recursive: true });
  const w = new CheckpointWriter(dir, o.params.map((p) => ({ name: p.name, dtype: 'F32', shape: p.shape })), { metadata: o.metadata });
  try {
    for (const p of o.params) w.write(p.name, o.theta.subarray(p.offset, p.offset + p.numel));
  } catch (e) {
    w.abort();
    throw e;
  }
  w.finish();
  const json = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v, null, 2) + '\n');
  writeFileAtomic(join(dir, 'tokenizer.json'), json(o.tokenizer));
  if (o.tokenizerConfig !== undefined) writeFileAtomic(join(dir, 'tokenizer_config.json'), json(o.tokenizerConfig));
  // config.json last: a folder with a config.json has its weights complete.
  writeFileAtomic(join(dir, 'config.json'), json(hfConfig(o.config, o.special)));
}
