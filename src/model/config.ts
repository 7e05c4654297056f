/**
 * A Llama-family model's hyperparameters, read from config.json (DESIGN.md §2):
 * Llama, Mistral and Qwen2 causal LMs. Anything the native runtime does not
 * implement (other rope scalings, MLP biases, activations other than SiLU,
 * sliding windows shorter than the context) is refused with a ConfigError
 * naming the file and the field.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import type { NativeLlamaConfig } from '../native/addon.js';

export type Architecture = 'llama' | 'mistral' | 'qwen2';

export interface ModelConfig extends NativeLlamaConfig {
  architecture: Architecture;
  /** The config.json this came from ('<memory>' when built in code). */
  source: string;
}

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};

/** Reads and validates `<dir>/config.json`. */
export function readModelConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new ConfigError(file, 'config.json', 'no config.json in the model folder', 'NotFound');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(file, 'config.json', `not valid JSON (${e instanceof Error ? e.message : String(e)})`, 'InvalidJson');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, 'config.json', 'expected a JSON object', 'InvalidJson');
  }
  return parseModelConfig(raw as Record<string, unknown>, file);
}

/** Validates a parsed config.json object. */
export function parseModelConfig(c: Record<string, unknown>, file = '<memory>'): ModelConfig {
  const int = (field: string, fallback?: number): number => {
    const v = c[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new ConfigError(file, field, v === undefined ? 'missing (a positive integer is required)' : `must be a positive integer, got ${JSON.stringify(v)}`, 'InvalidConfig');
    }
    return v;
  };
  const num = (field: string, v: unknown): number => {
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
      throw new ConfigError(file, field, v === undefined ? 'missing (a positive number is required)' : `must be a positive number, got ${JSON.stringify(v)}`, 'InvalidConfig');
    }
    return v;
  };

  // Architecture.
  const archs = c.architectures;
  let architecture: Architecture | undefined;
  if (Array.isArray(archs) && archs.length > 0) {
    architecture = ARCHITECTURES[String(archs[0])];
    if (!architecture) {
      throw new ConfigError(file, 'architectures', `${JSON.stringify(archs[0])} is not supported (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
    }
  } else if (typeof c.model_type === 'string' && ['llama', 'mistral', 'qwen2'].includes(c.model_type)) {
    architecture = c.model_type as Architecture;
  } else {
    throw new ConfigError(file, 'architectures', 'missing; expected one of ' + Object.keys(ARCHITECTURES).join(', '), 'InvalidConfig');
  }

  const hidden = int('hidden_size');
  const heads = int('num_attention_heads');
  const kvHeads = int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) {
    throw new ConfigError(file, 'num_key_value_heads', `${kvHeads} does not divide num_attention_heads ${heads}`, 'InvalidConfig');
  }
  const headDim = c.head_dim === undefined || c.head_dim === null ? hidden / heads : int('head_dim');
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ConfigError(file, 'head_dim', `head dimension ${headDim} must be an even integer`, 'InvalidConfig');
  }

  // Activation and biases.
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ConfigError(file, 'hidden_act', `${JSON.stringify(act)} is not supported (only silu: SwiGLU)`);
  if (c.mlp_bias === true) throw new ConfigError(file, 'mlp_bias', 'MLP biases are not supported');
  const attentionBias = architecture === 'qwen2' ? true : c.attention_bias === true;

  // Rotary embeddings: rope_theta at the top level (transformers 4) or in
  // rope_parameters (transformers 5); only the default (unscaled) rope.
  const rp = c.rope_parameters;
  let ropeTheta: number;
  if (typeof rp === 'object' && rp !== null && !Array.isArray(rp)) {
    const r = rp as Record<string, unknown>;
    const type = r.rope_type ?? r.type ?? 'default';
    if (type !== 'default') {
      throw new ConfigError(file, 'rope_parameters.rope_type', `${JSON.stringify(type)} rope scaling is not supported (only default)`);
    }
    ropeTheta = num('rope_parameters.rope_theta', r.rope_theta ?? c.rope_theta ?? 10000);
  } else {
    ropeTheta = num('rope_theta', c.rope_theta ?? 10000);
  }
  const rs = c.rope_scaling;
  if (rs !== undefined && rs !== null) {
    const r = rs as Record<string, unknown>;
    const type = typeof r === 'object' ? (r.rope_type ?? r.type) : rs;
    if (type !== 'default') {
      throw new ConfigError(file, 'rope_scaling', `${JSON.stringify(type)} rope scaling is not supported (only default)`);
    }
  }

  // Context: a sliding window at least as long as the context is full attention.
  // A shorter window would change the attention pattern beyond it: refused.
  let maxPositions = int('max_position_embeddings');
  const sw = c.sliding_window;
  const swActive = sw !== undefined && sw !== null && !(architecture === 'qwen2' && c.use_sliding_window !== true);
  if (swActive) {
    if (typeof sw !== 'number' || !Number.isSafeInteger(sw) || sw <= 0) {
      throw new ConfigError(file, 'sliding_window', `must be a positive integer or null, got ${JSON.stringify(sw)}`, 'InvalidConfig');
    }
    if (sw < maxPositions) {
      throw new ConfigError(file, 'sliding_window',
        `sliding-window attention (window ${sw} < max_position_embeddings ${maxPositions}) is not supported; set sliding_window to null to use full attention`);
    }
  }
  const lt = c.layer_types;
  if (Array.isArray(lt) && lt.some((t) => t !== 'full_attention' && !(t === 'sliding_attention' && !swActive))) {
    throw new ConfigError(file, 'layer_types', 'only full_attention layers are supported');
  }

  return {
    architecture,
    source: file,
    hidden,
    intermediate: int('intermediate_size'),
    heads,
    kvHeads,
    headDim,
    layers: int('num_hidden_layers'),
    vocab: int('vocab_size'),
    maxPositions,
    rmsEps: num('rms_norm_eps', c.rms_norm_eps ?? 1e-6),
    ropeTheta,
    tieEmbeddings: c.tie_word_embeddings === true,
    attentionBias,
  };
}
