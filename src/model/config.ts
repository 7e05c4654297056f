/**
 * A Llama-family model's hyperparameters, read from config.json (docs/design.md §2):
 * Llama, Mistral, Qwen2, Qwen3, Gemma 2 and Gemma 3 (text) causal LMs, with
 * every rope scaling transformers implements for them (src/model/rope_config.ts),
 * sliding-window attention (Mistral's on every layer; Qwen2/Qwen3's
 * use_sliding_window, max_window_layers and layer_types; Gemma's alternating
 * local/global layers), Qwen3's and Gemma 3's q_norm / k_norm and Gemma's layer
 * kinds (docs/design.md §9). Anything the native runtime does not implement
 * (MLP biases, o_proj biases, other activations, partial rotary embeddings,
 * per-layer rope parameters outside Gemma 3, bidirectional attention) is
 * refused with a ConfigError naming the file and the field.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { readTextFile } from '../io/read_file.js';
import type { NativeLlamaConfig } from '../native/addon.js';
import { parseRopeConfig, type RopeConfig } from './rope_config.js';

export type Architecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3';

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
  Gemma2ForCausalLM: 'gemma2',
  Gemma3ForCausalLM: 'gemma3',
};

/** config.json model_type of each architecture (for configs without `architectures`). */
const MODEL_TYPES: ReadonlyMap<string, Architecture> = new Map([
  ['llama', 'llama'], ['mistral', 'mistral'], ['qwen2', 'qwen2'], ['qwen3', 'qwen3'], ['gemma2', 'gemma2'], ['gemma3_text', 'gemma3'],
]);

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
    architecture = Object.hasOwn(ARCHITECTURES, String(archs[0])) ? ARCHITECTURES[String(archs[0])] : undefined;
    if (!architecture) {
      const hint = String(archs[0]) === 'Gemma3ForConditionalGeneration'
        ? ' (the multimodal Gemma 3; its text model, Gemma3ForCausalLM with model_type gemma3_text, is supported)' : '';
      throw new ConfigError(file, 'architectures', `${JSON.stringify(archs[0])} is not supported${hint} (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
    }
  } else if (typeof c.model_type === 'string' && MODEL_TYPES.has(c.model_type)) {
    architecture = MODEL_TYPES.get(c.model_type)!;
  } else {
    throw new ConfigError(file, 'architectures', 'missing; expected one of ' + Object.keys(ARCHITECTURES).join(', '), 'InvalidConfig');
  }

  const hidden = int('hidden_size');
  const heads = int('num_attention_heads');
  const kvHeads = int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) {
    throw new ConfigError(file, 'num_key_value_heads', `${kvHeads} does not divide num_attention_heads ${heads}`, 'InvalidConfig');
  }
  const gemma = architecture === 'gemma2' || architecture === 'gemma3';
  if (gemma && c.model_type === 'gemma3') {
    throw new ConfigError(file, 'model_type', '"gemma3" is the multimodal Gemma 3 config (text_config nested); only the text model (model_type gemma3_text) is supported');
  }
  // head_dim: explicit, else hidden/heads (the defaults of Qwen3Config: 128, Gemma2Config / Gemma3TextConfig: 256).
  const headDim = c.head_dim === undefined || c.head_dim === null
    ? (architecture === 'qwen3' ? 128 : gemma ? 256 : hidden / heads) : int('head_dim');
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ConfigError(file, 'head_dim', `head dimension ${headDim} must be an even integer`, 'InvalidConfig');
  }

  // Activation and biases.
  const activation = gemma ? gemmaActivation(c, file) : 'silu';
  const act = c.hidden_act ?? 'silu';
  if (!gemma && act !== 'silu') throw new ConfigError(file, 'hidden_act', `${JSON.stringify(act)} is not supported (only silu: SwiGLU)`);
  if (c.mlp_bias === true) throw new ConfigError(file, 'mlp_bias', 'MLP biases are not supported');
  // Qwen2 has q/k/v biases always; Llama, Mistral and Qwen3 put attention_bias
  // on o_proj too, which the runtime does not implement.
  if (architecture !== 'qwen2' && c.attention_bias === true) {
    throw new ConfigError(file, 'attention_bias', 'attention biases (q/k/v/o_proj) are not supported for ' + architecture);
  }
  const attentionBias = architecture === 'qwen2';

  const maxPositionEmbeddings = int('max_position_embeddings');
  const layers = int('num_hidden_layers');
  const types = gemma ? gemmaLayerTypes(c, file, architecture, layers) : undefined;
  const rope = architecture === 'gemma3' ? undefined : parseRopeConfig(c, file, maxPositionEmbeddings, headDim);
  const ropes = architecture === 'gemma3' ? gemma3Ropes(c, file, maxPositionEmbeddings, headDim) : undefined;
  const global = rope ?? ropes!.global;
  const layerWindows = types ? gemmaWindows(c, file, types) : slidingWindows(c, file, architecture, layers);

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
    maxPositions: ropes ? Math.min(ropes.global.maxPositions, ropes.local.maxPositions) : global.maxPositions,
    rmsEps: num('rms_norm_eps', c.rms_norm_eps ?? 1e-6),
    ropeTheta: global.theta,
    rope: global.scaling,
    // Gemma2Config / Gemma3TextConfig tie by default; the others do not.
    tieEmbeddings: c.tie_word_embeddings === true || (gemma && (c.tie_word_embeddings === undefined || c.tie_word_embeddings === null)),
    attentionBias,
    qkNorm: architecture === 'qwen3' || architecture === 'gemma3',
    ...(layerWindows.some((w) => w > 0) ? { layerWindows } : {}),
    ...(gemma ? gemmaLayerKinds(c, file, architecture, hidden, activation) : {}),
    ...(ropes ? { localRope: { theta: ropes.local.theta, scaling: ropes.local.scaling, layers: types!.map((t) => t === 'sliding_attention') } } : {}),
  };
}

type LayerType = 'full_attention' | 'sliding_attention';

/**
 * Gemma's MLP activation: hidden_activation (transformers' Gemma2/Gemma3 MLPs
 * read only that field; default gelu_pytorch_tanh). A hidden_act that says
 * otherwise is refused rather than silently ignored.
 */
function gemmaActivation(c: Record<string, unknown>, file: string): 'gelu_pytorch_tanh' {
  const act = c.hidden_activation ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh') {
    throw new ConfigError(file, 'hidden_activation', `${JSON.stringify(act)} is not supported (only gelu_pytorch_tanh: GeGLU)`);
  }
  if (c.hidden_act !== undefined && c.hidden_act !== null && c.hidden_act !== act) {
    throw new ConfigError(file, 'hidden_act', `${JSON.stringify(c.hidden_act)} contradicts hidden_activation ${JSON.stringify(act)} (transformers' Gemma MLP uses hidden_activation)`);
  }
  return act;
}

/**
 * Gemma's layer kinds beyond Llama's (docs/design.md §9), with transformers'
 * defaults for absent fields: (1 + w) RMSNorms, embeddings scaled by
 * sqrt(hidden_size) (Gemma2TextScaledWordEmbedding; rounded to f32, the
 * compute dtype), post-attention and post-feedforward norms, attention scale
 * query_pre_attn_scalar^-0.5 (default 256), and soft-capping: Gemma 2's
 * attention (default 50) and final logits (default 30); Gemma 3 only the final
 * logits (default none; transformers' Gemma3Attention does not pass
 * attn_logit_softcapping to the attention, so it is not applied).
 */
function gemmaLayerKinds(c: Record<string, unknown>, file: string, architecture: Architecture, hidden: number,
  activation: 'silu' | 'gelu_pytorch_tanh'): Partial<NativeLlamaConfig> {
  if (c.use_bidirectional_attention === true) {
    throw new ConfigError(file, 'use_bidirectional_attention', 'bidirectional attention (an embedding model) is not supported: only causal LMs');
  }
  const positive = (field: string, fallback: number | null): number => {
    const v = c[field] === undefined ? fallback : c[field];
    if (v === null) return 0;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
      throw new ConfigError(file, field, `must be a positive number or null, got ${JSON.stringify(v)}`, 'InvalidConfig');
    }
    return v;
  };
  const qpas = positive('query_pre_attn_scalar', 256);
  if (qpas === 0) throw new ConfigError(file, 'query_pre_attn_scalar', 'must be a positive number, got null', 'InvalidConfig');
  return {
    activation,
    normOffset: 1,
    embedScale: Math.sqrt(hidden),
    postNorms: true,
    queryPreAttnScalar: qpas,
    attnSoftcap: architecture === 'gemma2' ? positive('attn_logit_softcapping', 50) : 0,
    finalSoftcap: positive('final_logit_softcapping', architecture === 'gemma2' ? 30 : null),
  };
}

/**
 * Gemma's layer types: config.layer_types, else transformers' default pattern:
 * Gemma 2 alternates local (sliding) and global layers starting with a local
 * one; Gemma 3 makes every sliding_window_pattern-th layer (default 6) global.
 */
function gemmaLayerTypes(c: Record<string, unknown>, file: string, architecture: Architecture, layers: number): LayerType[] {
  const lt = c.layer_types;
  if (lt !== undefined && lt !== null) {
    if (!Array.isArray(lt) || lt.length !== layers || lt.some((t) => t !== 'full_attention' && t !== 'sliding_attention')) {
      throw new ConfigError(file, 'layer_types',
        `must list ${layers} entries (num_hidden_layers), each "full_attention" or "sliding_attention"; got ${JSON.stringify(lt)}`);
    }
    return lt as LayerType[];
  }
  let pattern = 2;
  if (architecture === 'gemma3') {
    const p = c.sliding_window_pattern ?? 6;
    if (typeof p !== 'number' || !Number.isSafeInteger(p) || p <= 0) {
      throw new ConfigError(file, 'sliding_window_pattern', `must be a positive integer, got ${JSON.stringify(p)}`, 'InvalidConfig');
    }
    pattern = p;
  }
  return Array.from({ length: layers }, (_, i) => ((i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
}

/** Gemma's sliding window (default 4096, as Gemma2Config / Gemma3TextConfig) on its local layers. */
function gemmaWindows(c: Record<string, unknown>, file: string, types: readonly LayerType[]): number[] {
  const sw = c.sliding_window === undefined ? 4096 : c.sliding_window;
  if (types.includes('sliding_attention') && (typeof sw !== 'number' || !Number.isSafeInteger(sw) || sw <= 0)) {
    throw new ConfigError(file, 'sliding_window', `must be a positive integer (layer_types has sliding_attention layers), got ${JSON.stringify(sw)}`, 'InvalidConfig');
  }
  return types.map((t) => (t === 'sliding_attention' ? (sw as number) : 0));
}

/**
 * Gemma 3's two ropes, as Gemma3TextConfig.convert_rope_params_to_dict reads
 * them: rope_parameters.{full_attention, sliding_attention} (transformers 5;
 * a rope_scaling updates full_attention), or the transformers 4 fields
 * rope_scaling (global layers), rope_theta (global, default 1e6) and
 * rope_local_base_freq (local, default 1e4).
 */
function gemma3Ropes(c: Record<string, unknown>, file: string, maxPositions: number, headDim: number): { global: RopeConfig; local: RopeConfig } {
  const isDict = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const rp = c.rope_parameters;
  const rs = c.rope_scaling;
  if (rs !== undefined && rs !== null && !isDict(rs)) throw new ConfigError(file, 'rope_scaling', `must be an object or null, got ${JSON.stringify(rs)}`, 'InvalidConfig');
  let full: Record<string, unknown> = {};
  let sliding: Record<string, unknown> = {};
  let fullWhere = 'rope_parameters.full_attention';
  if (rp !== undefined && rp !== null) {
    if (!isDict(rp) || Object.keys(rp).some((k) => k !== 'full_attention' && k !== 'sliding_attention')) {
      throw new ConfigError(file, 'rope_parameters', `must be an object {full_attention, sliding_attention} for Gemma 3, got ${JSON.stringify(rp)}`, 'InvalidConfig');
    }
    for (const k of ['full_attention', 'sliding_attention'] as const) {
      const v = rp[k];
      if (v !== undefined && v !== null && !isDict(v)) throw new ConfigError(file, `rope_parameters.${k}`, `must be an object or null, got ${JSON.stringify(v)}`, 'InvalidConfig');
    }
    full = isDict(rp.full_attention) ? rp.full_attention : {};
    sliding = isDict(rp.sliding_attention) ? rp.sliding_attention : {};
  }
  if (isDict(rs)) {
    full = { ...full, ...rs };
    if (rp === undefined || rp === null) fullWhere = 'rope_scaling';
  }
  return {
    global: parseRopeConfig(c, file, maxPositions, headDim, { dict: full, where: fullWhere, thetaField: 'rope_theta', defaultTheta: 1e6 }),
    local: parseRopeConfig(c, file, maxPositions, headDim,
      { dict: sliding, where: 'rope_parameters.sliding_attention', thetaField: 'rope_local_base_freq', defaultTheta: 1e4 }),
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
