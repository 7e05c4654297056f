/**
 * Rope parameters of a Llama-family config.json, as transformers reads them
 * (RotaryEmbeddingConfigMixin in modeling_rope_utils.py): `rope_scaling`
 * (transformers 4) or `rope_parameters` (transformers 5; `rope_scaling` wins
 * when both are set, as there), `rope_type` or its old spelling `type`, and
 * rope_theta inside the dict or at the top level. Only the parameters are read
 * and checked here; the frequencies are computed once, in native/model/rope.cc.
 */
import { ConfigError } from '../errors.js';
import type { NativeRopeScaling, NativeRopeType } from '../native/addon.js';

const TYPES: readonly NativeRopeType[] = ['default', 'linear', 'dynamic', 'yarn', 'longrope', 'llama3'];

export interface RopeConfig {
  theta: number;
  scaling: NativeRopeScaling;
  /**
   * The longest sequence the rope is defined for: max_position_embeddings, or
   * for dynamic NTK factor × max_position_embeddings (the context it stretches
   * to; transformers sets no limit, the runtime needs one).
   */
  maxPositions: number;
}

/**
 * One layer type's rope parameters (Gemma 3's rope_parameters.full_attention /
 * .sliding_attention): the dict to read, its name for messages, the top-level
 * field holding its theta when the dict has none (rope_theta, or Gemma 3's
 * rope_local_base_freq) and the default theta when neither is set.
 */
export interface RopeScope {
  dict: Record<string, unknown>;
  where: string;
  thetaField: string;
  defaultTheta: number;
}

/**
 * Reads the rope parameters (of one layer type with `scope`). `maxPositions` is config.json's
 * max_position_embeddings, `headDim` the head dimension (longrope's factor
 * lists must have headDim/2 values).
 */
export function parseRopeConfig(c: Record<string, unknown>, file: string, maxPositions: number, headDim: number,
  scope?: RopeScope): RopeConfig {
  const rs = c.rope_scaling;
  const rp = c.rope_parameters;
  const isDict = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  let where: string;
  let r: Record<string, unknown>;
  if (scope) {
    where = scope.where;
    r = scope.dict;
  } else if (rs !== undefined && rs !== null) {
    if (!isDict(rs)) throw new ConfigError(file, 'rope_scaling', `must be an object or null, got ${JSON.stringify(rs)}`, 'InvalidConfig');
    where = 'rope_scaling';
    r = rs;
  } else if (rp !== undefined && rp !== null) {
    if (!isDict(rp)) throw new ConfigError(file, 'rope_parameters', `must be an object or null, got ${JSON.stringify(rp)}`, 'InvalidConfig');
    where = 'rope_parameters';
    r = rp;
  } else {
    where = 'rope_parameters';
    r = {};
  }
  if (!scope && ('full_attention' in r || 'sliding_attention' in r)) {
    throw new ConfigError(file, where, 'rope parameters per layer type (full_attention / sliding_attention) are not supported');
  }
  const field = (k: string): string => `${where}.${k}`;
  const num = (k: string, v: unknown, positive = true): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || (positive && !(v > 0))) {
      throw new ConfigError(file, field(k), v === undefined ? 'missing (a positive number is required)' : `must be a ${positive ? 'positive ' : ''}number, got ${JSON.stringify(v)}`, 'InvalidConfig');
    }
    return v;
  };
  const optNum = (k: string): number | undefined => (r[k] === undefined || r[k] === null ? undefined : num(k, r[k]));
  const posInt = (k: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new ConfigError(file, k, `must be a positive integer, got ${JSON.stringify(v)}`, 'InvalidConfig');
    }
    return v;
  };

  const rawType = r.rope_type ?? r.type ?? 'default';
  if (typeof rawType !== 'string' || !(TYPES as readonly string[]).includes(rawType)) {
    throw new ConfigError(file, field(r.rope_type !== undefined ? 'rope_type' : 'type'),
      `${JSON.stringify(rawType)} rope scaling is not supported (supported: ${TYPES.join(', ')})`);
  }
  const type = rawType as NativeRopeType;
  const thetaField = scope?.thetaField ?? 'rope_theta';
  const topTheta = c[thetaField];
  const theta = r.rope_theta !== undefined && r.rope_theta !== null ? num('rope_theta', r.rope_theta) : topTheta === undefined || topTheta === null ? scope?.defaultTheta ?? 10000 : (() => {
    if (typeof topTheta !== 'number' || !(topTheta > 0)) throw new ConfigError(file, thetaField, `must be a positive number, got ${JSON.stringify(topTheta)}`, 'InvalidConfig');
    return topTheta;
  })();
  const partial = r.partial_rotary_factor ?? c.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw new ConfigError(file, r.partial_rotary_factor !== undefined ? field('partial_rotary_factor') : 'partial_rotary_factor',
      `partial rotary embeddings (${JSON.stringify(partial)}) are not supported (the whole head is rotated)`);
  }

  // Pretraining context of llama3 / yarn / longrope: a top-level
  // original_max_position_embeddings wins (Phi3 style), then the dict's, then
  // max_position_embeddings (transformers' standardize_rope_params).
  const originalMax = (): number => {
    if (c.original_max_position_embeddings !== undefined && c.original_max_position_embeddings !== null) {
      return posInt('original_max_position_embeddings', c.original_max_position_embeddings);
    }
    const v = r.original_max_position_embeddings;
    return v === undefined || v === null ? maxPositions : posInt(field('original_max_position_embeddings'), v);
  };
  const factorList = (k: string): number[] => {
    const v = r[k];
    if (!Array.isArray(v) || v.length !== headDim / 2 || v.some((x) => typeof x !== 'number' || !(x > 0))) {
      throw new ConfigError(file, field(k), `must be a list of ${headDim / 2} (head_dim/2) positive numbers`, 'InvalidConfig');
    }
    return v as number[];
  };

  switch (type) {
    case 'default':
      return { theta, scaling: { type }, maxPositions };
    case 'linear':
      return { theta, scaling: { type, factor: num('factor', r.factor) }, maxPositions };
    case 'dynamic': {
      const factor = num('factor', r.factor);
      // transformers' dynamic NTK is relative to max_position_embeddings.
      return { theta, scaling: { type, factor, originalMax: maxPositions }, maxPositions: Math.max(maxPositions, Math.floor(factor * maxPositions)) };
    }
    case 'llama3': {
      const low = num('low_freq_factor', r.low_freq_factor);
      const high = num('high_freq_factor', r.high_freq_factor);
      if (!(high > low)) throw new ConfigError(file, field('high_freq_factor'), `must be greater than low_freq_factor (${high} <= ${low})`, 'InvalidConfig');
      return { theta, scaling: { type, factor: num('factor', r.factor), originalMax: originalMax(), lowFreqFactor: low, highFreqFactor: high }, maxPositions };
    }
    case 'yarn': {
      const orig = originalMax();
      // transformers 5 uses the given factor (4.x replaced it by max/original when
      // original_max_position_embeddings was set); the fixtures are made with 5.
      const factor = num('factor', r.factor);
      const truncate = r.truncate ?? true;
      if (typeof truncate !== 'boolean') throw new ConfigError(file, field('truncate'), `must be a boolean, got ${JSON.stringify(truncate)}`, 'InvalidConfig');
      // beta_fast / beta_slow: `or 32` / `or 1` in transformers (0 means unset).
      const betaFast = optNum('beta_fast');
      const betaSlow = optNum('beta_slow');
      return {
        theta, maxPositions,
        scaling: {
          type, factor, originalMax: orig, truncate, betaFast: betaFast || 32, betaSlow: betaSlow || 1,
          mscale: r.mscale === undefined || r.mscale === null ? 0 : num('mscale', r.mscale, false),
          mscaleAllDim: r.mscale_all_dim === undefined || r.mscale_all_dim === null ? 0 : num('mscale_all_dim', r.mscale_all_dim, false),
          attentionFactor: optNum('attention_factor') ?? 0,
        },
      };
    }
    case 'longrope': {
      const orig = originalMax();
      return {
        theta, maxPositions,
        scaling: {
          type, factor: optNum('factor') ?? maxPositions / orig, originalMax: orig,
          shortFactor: factorList('short_factor'), longFactor: factorList('long_factor'),
          attentionFactor: optNum('attention_factor') ?? 0,
        },
      };
    }
  }
}
