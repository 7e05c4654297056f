/**
 * A Llama-family model's hyperparameters, read from config.json (docs/design.md §2):
 * Llama, Mistral, Qwen2 and Qwen3 causal LMs, with every rope scaling
 * transformers implements for them (src/model/rope_config.ts), sliding-window
 * attention (Mistral's on every layer; Qwen2/Qwen3's use_sliding_window,
 * max_window_layers and layer_types) and Qwen3's q_norm / k_norm. Anything the
 * native runtime does not implement (MLP biases, o_proj biases, activations
 * other than SiLU, partial rotary embeddings, per-layer rope parameters) is
 * refused with a ConfigError naming the file and the field.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { readTextFile } from '../io/read_file.js';
import type { NativeLlamaConfig } from '../native/addon.js';
import { parseRopeConfig } from './rope_config.js';

export type Architecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

export interface ModelConfig extends NativeLlamaConfig {
  architecture: Architecture;
  /** The config.json this came from ('<memory>' when built in code). */
  source: string;
}

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};

/** Reads and validates `<dir>/config.json`. */
export function readModelConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new ConfigError(file, 'config.json', 'no config.json in the model folder', 'NotFound');
  let raw: unknown;
  const text = readTextFile(file, 'config.json');  // a regular file only: a FIFO would block
  try {
    raw = JSON.parse(text);
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
  } else if (typeof c.model_type === 'string' && ['llama', 'mistral', 'qwen2', 'qwen3'].includes(c.model_type)) {
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
  // head_dim: explicit, else hidden/heads (Qwen3's default is 128, as in Qwen3Config).
  const headDim = c.head_dim === undefined || c.head_dim === null ? (architecture === 'qwen3' ? 128 : hidden / heads) : int('head_dim');
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ConfigError(file, 'head_dim', `head dimension ${headDim} must be an even integer`, 'InvalidConfig');
  }

  // Activation and biases.
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ConfigError(file, 'hidden_act', `${JSON.stringify(act)} is not supported (only silu: SwiGLU)`);
  if (c.mlp_bias === true) throw new ConfigError(file, 'mlp_bias', 'MLP biases are not supported');
  // Qwen2 has q/k/v biases always; Llama, Mistral and Qwen3 put attention_bias
  // on o_proj too, which the runtime does not implement.
  if (architecture !== 'qwen2' && c.attention_bias === true) {
    throw new ConfigError(file, 'attention_bias', 'attention biases (q/k/v/o_proj) are not supported for ' + architecture);
  }
  const attentionBias = architecture === 'qwen2';

  const maxPositionEmbeddings = int('max_position_embeddings');
  const rope = parseRopeConfig(c, file, maxPositionEmbeddings, headDim);
  const layers = int('num_hidden_layers');
  const layerWindows = slidingWindows(c, file, architecture, layers);

  return {
    architecture,
    source: file,
    hidden,
    intermediate: int('intermediate_size'),
    heads,
    kvHeads,
    headDim,
    layers,
    vocab: int('vocab_size'),
    maxPositions: rope.maxPositions,
    rmsEps: num('rms_norm_eps', c.rms_norm_eps ?? 1e-6),
    ropeTheta: rope.theta,
    rope: rope.scaling,
    tieEmbeddings: c.tie_word_embeddings === true,
    attentionBias,
    qkNorm: architecture === 'qwen3',
    ...(layerWindows.some((w) => w > 0) ? { layerWindows } : {}),
  };
}

/**
 * Sliding window per layer (0 = full attention), as transformers builds the
 * masks: Mistral applies config.sliding_window on every layer (it ignores
 * layer_types); Qwen2/Qwen3 only when use_sliding_window, on the layers that
 * layer_types marks "sliding_attention" (by default those from
 * max_window_layers on); Llama has no sliding window. Key s is visible from
 * query t iff t − window < s <= t.
 */
function slidingWindows(c: Record<string, unknown>, file: string, architecture: Architecture, layers: number): number[] {
  const full = new Array<number>(layers).fill(0);
  if (architecture === 'llama') return full;
  const window = (): number | null => {
    const sw = c.sliding_window;
    if (sw === undefined || sw === null) return null;
    if (typeof sw !== 'number' || !Number.isSafeInteger(sw) || sw <= 0) {
      throw new ConfigError(file, 'sliding_window', `must be a positive integer or null, got ${JSON.stringify(sw)}`, 'InvalidConfig');
    }
    return sw;
  };
  if (architecture === 'mistral') {
    const w = window();
    return w === null ? full : full.map(() => w);
  }
  // qwen2 / qwen3
  const w = c.use_sliding_window === true ? window() : null;
  let types: string[];
  if (c.layer_types === undefined || c.layer_types === null) {
    const mwl = c.max_window_layers ?? 28;
    if (typeof mwl !== 'number' || !Number.isSafeInteger(mwl) || mwl < 0) {
      throw new ConfigError(file, 'max_window_layers', `must be a non-negative integer, got ${JSON.stringify(mwl)}`, 'InvalidConfig');
    }
    types = full.map((_, i) => (w !== null && i >= mwl ? 'sliding_attention' : 'full_attention'));
  } else {
    const lt = c.layer_types;
    if (!Array.isArray(lt) || lt.length !== layers || lt.some((t) => t !== 'full_attention' && t !== 'sliding_attention')) {
      throw new ConfigError(file, 'layer_types',
        `must list ${layers} entries (num_hidden_layers), each "full_attention" or "sliding_attention"; got ${JSON.stringify(lt)}`);
    }
    types = lt as string[];
  }
  return types.map((t) => (t === 'sliding_attention' && w !== null ? w : 0));
}
