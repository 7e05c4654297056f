/**
 * The merge configuration: what a user writes in a YAML file (mergekit's shape) or
 * gives as flags. Parsing and validation only; no files are opened here.
 *
 *   merge_method: ties
 *   base_model: ./llama-base
 *   models:
 *     - model: ./llama-math
 *       parameters: { weight: 0.6 }
 *     - model: ./llama-code
 *       parameters:
 *         weight: [ { filter: embed_tokens, value: 0 }, { value: 0.4 } ]
 *   parameters: { density: 0.5, normalize: true }
 *   dtype: bfloat16
 */
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../errors.js';
import { InputFileError, readTextFile } from '../io/read_file.js';
import type { ComputeDtype } from '../native/addon.js';

export const METHODS = ['linear', 'task_arithmetic', 'ties', 'dare_linear', 'dare_ties', 'fisher'] as const;
export type MethodName = (typeof METHODS)[number];

/** A number, or a list of {filter, value} rules matched against tensor names (first match wins). */
export type ParamValue = number | boolean | readonly ParamRule[];
export interface ParamRule {
  readonly filter?: string;
  readonly value: number | boolean;
}

export interface ModelEntry {
  readonly path: string;
  readonly parameters: Readonly<Record<string, ParamValue>>;
  /** Fisher file (safetensors of f32 Fisher tensors), for the fisher method. */
  readonly fisher?: string;
}

export interface MergeConfig {
  readonly method: MethodName;
  readonly base?: string;
  readonly models: readonly ModelEntry[];
  readonly parameters: Readonly<Record<string, ParamValue>>;
  /** Output dtype; undefined keeps each tensor's dtype from the base (or first model). */
  readonly dtype?: ComputeDtype;
  readonly seed: number;
}

const DTYPE_ALIASES: Record<string, ComputeDtype> = {
  bf16: 'BF16', bfloat16: 'BF16', f16: 'F16', fp16: 'F16', float16: 'F16', half: 'F16', f32: 'F32', fp32: 'F32', float32: 'F32', float: 'F32',
};

export function parseDtype(s: string): ComputeDtype {
  const d = DTYPE_ALIASES[s.toLowerCase()];
  if (!d) throw new UsageError(`unknown dtype "${s}": use bfloat16, float16 or float32`);
  return d;
}

export function parseMethod(s: string): MethodName {
  const m = s.toLowerCase().replace(/-/g, '_');
  const alias: Record<string, MethodName> = { dare: 'dare_linear', task_arith: 'task_arithmetic', average: 'linear' };
  const name = alias[m] ?? m;
  if (!(METHODS as readonly string[]).includes(name)) {
    throw new UsageError(`unknown merge method "${s}": choose one of ${METHODS.join(', ')}`);
  }
  return name as MethodName;
}

/** Which per-model and global parameters each method reads, with defaults. */
export const METHOD_PARAMS: Readonly<Record<MethodName, { model: Record<string, number | boolean>; global: Record<string, number | boolean>; needsBase: boolean }>> = {
  linear: { model: { weight: 1 }, global: { normalize: true }, needsBase: false },
  task_arithmetic: { model: { weight: 1 }, global: { normalize: false }, needsBase: true },
  ties: { model: { weight: 1 }, global: { density: 1, normalize: true }, needsBase: true },
  dare_linear: { model: { weight: 1 }, global: { density: 1, normalize: false }, needsBase: true },
  dare_ties: { model: { weight: 1 }, global: { density: 1, normalize: true }, needsBase: true },
  fisher: { model: { weight: 1 }, global: { normalize_fisher: false, fisher_floor: 1e-6 }, needsBase: false },
};

function checkParams(where: string, params: Record<string, ParamValue>, allowed: Record<string, number | boolean>): void {
  for (const [k, v] of Object.entries(params)) {
    if (!(k in allowed)) {
      throw new UsageError(`${where}: parameter "${k}" is not used by this method (it takes: ${Object.keys(allowed).join(', ') || 'none'})`);
    }
    const rules = typeof v === 'object' ? v : [{ value: v }];
    for (const r of rules) {
      const expect = typeof allowed[k];
      if (typeof r.value !== expect || (typeof r.value === 'number' && !Number.isFinite(r.value))) {
        throw new UsageError(`${where}: parameter "${k}" must be a ${expect}, got ${JSON.stringify(r.value)}`);
      }
      if (r.filter !== undefined && typeof r.filter !== 'string') throw new UsageError(`${where}: filter of "${k}" must be a string`);
      if (r.filter !== undefined) {
        const re = filterRegex(r.filter);
        if (re instanceof Error) throw new UsageError(`${where}: filter ${r.filter} of "${k}" is not a valid regular expression (${re.message})`);
      }
    }
  }
}

/** Validates a config against its method (parameter names, types and ranges, model count, base). */
export function validateConfig(c: MergeConfig): MergeConfig {
  const spec = METHOD_PARAMS[c.method];
  if (c.models.length === 0) throw new UsageError('no models to merge: give at least one --model');
  if (spec.needsBase && !c.base) throw new UsageError(`method ${c.method} needs a base model (--base or base_model)`);
  checkParams('parameters', { ...c.parameters }, spec.global);
  c.models.forEach((m, i) => checkParams(`models[${i}] (${m.path})`, { ...m.parameters }, spec.model));
  const density = c.parameters.density;
  if (density !== undefined) {
    const values = typeof density === 'object' ? density.map((r) => r.value) : [density];
    for (const v of values) {
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new UsageError(`density must be in [0, 1], got ${String(v)}`);
      if ((c.method === 'dare_linear' || c.method === 'dare_ties') && v === 0) throw new UsageError('density 0 (drop everything) leaves nothing to rescale: use a density in (0, 1]');
    }
  }
  if (c.method === 'fisher') {
    const missing = c.models.filter((m) => !m.fisher).map((m) => m.path);
    if (missing.length > 0) throw new UsageError(`fisher merging needs a Fisher file for every model (--fisher, in model order); missing for: ${missing.join(', ')}`);
  } else if (c.models.some((m) => m.fisher)) {
    throw new UsageError(`Fisher files are only used by the fisher method, not ${c.method}`);
  }
  if (!Number.isSafeInteger(c.seed) || c.seed < 0) throw new UsageError(`seed must be a non-negative integer, got ${c.seed}`);
  return c;
}

/** Resolves a parameter for one tensor: first rule whose filter matches wins; a rule without filter matches all. */
export function resolveParam(value: ParamValue | undefined, tensor: string, fallback: number | boolean): number | boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'object') return value;
  for (const r of value) {
    if (r.filter === undefined || matchesFilter(r.filter, tensor)) return r.value;
  }
  return fallback;
}

/** The regular expression of a /…/ filter (an Error when it does not compile), or undefined for a substring filter. */
function filterRegex(filter: string): RegExp | Error | undefined {
  if (!(filter.length > 2 && filter.startsWith('/') && filter.endsWith('/'))) return undefined;
  try {
    return new RegExp(filter.slice(1, -1));
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}

/** mergekit filters are substrings; /…/ is a regular expression (checked by validateConfig). */
export function matchesFilter(filter: string, tensor: string): boolean {
  const re = filterRegex(filter);
  if (re instanceof Error) throw new UsageError(`filter ${filter} is not a valid regular expression (${re.message})`);
  return re ? re.test(tensor) : tensor.includes(filter);
}

function asRecord(v: unknown, where: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new UsageError(`${where} must be a mapping`);
  return v as Record<string, unknown>;
}

function asParamValue(v: unknown, where: string): ParamValue {
  if (typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) {
    return v.map((r, i) => {
      const rec = asRecord(r, `${where}[${i}]`);
      if (typeof rec.value !== 'number' && typeof rec.value !== 'boolean') throw new UsageError(`${where}[${i}] needs a numeric "value"`);
      if (rec.filter !== undefined && typeof rec.filter !== 'string') throw new UsageError(`${where}[${i}].filter must be a string`);
      return rec.filter === undefined ? { value: rec.value } : { filter: rec.filter, value: rec.value };
    });
  }
  throw new UsageError(`${where} must be a number, a boolean or a list of {filter, value}`);
}

function asParams(v: unknown, where: string): Record<string, ParamValue> {
  const rec = asRecord(v, where);
  return Object.fromEntries(Object.entries(rec).map(([k, x]) => [k, asParamValue(x, `${where}.${k}`)]));
}

/** Reads a mergekit-style YAML config; relative paths are resolved against the file's folder. */
export function loadConfigFile(path: string): MergeConfig {
  let doc: unknown;
  try {
    doc = parseYaml(readTextFile(path, 'merge config'));
  } catch (e) {
    if (e instanceof InputFileError) throw e;
    throw new UsageError(`${path}: cannot read the merge config (${e instanceof Error ? e.message : String(e)})`);
  }
  const where = (s: string) => `${path}: ${s}`;
  const root = asRecord(doc, where('the document'));
  const known = new Set(['merge_method', 'base_model', 'models', 'parameters', 'dtype', 'seed', 'out_dtype']);
  for (const k of Object.keys(root)) if (!known.has(k)) throw new UsageError(where(`unknown key "${k}" (known: ${[...known].join(', ')})`));
  if (typeof root.merge_method !== 'string') throw new UsageError(where('"merge_method" is required'));
  const dir = dirname(resolve(path));
  const rel = (p: unknown, w: string): string => {
    if (typeof p !== 'string' || p.length === 0) throw new UsageError(where(`${w} must be a path`));
    return resolve(dir, p);
  };
  if (!Array.isArray(root.models)) throw new UsageError(where('"models" must be a list of {model, parameters}'));
  const models: ModelEntry[] = root.models.map((m: unknown, i: number) => {
    const rec = typeof m === 'string' ? { model: m } : asRecord(m, where(`models[${i}]`));
    return {
      path: rel(rec.model, `models[${i}].model`),
      parameters: asParams(rec.parameters, where(`models[${i}].parameters`)),
      ...(rec.fisher !== undefined ? { fisher: rel(rec.fisher, `models[${i}].fisher`) } : {}),
    };
  });
  const dtypeRaw = root.dtype ?? root.out_dtype;
  try {
    return validateConfig({
      method: parseMethod(root.merge_method),
      ...(root.base_model !== undefined ? { base: rel(root.base_model, 'base_model') } : {}),
      models,
      parameters: asParams(root.parameters, where('parameters')),
      ...(dtypeRaw !== undefined ? { dtype: parseDtype(String(dtypeRaw)) } : {}),
      seed: root.seed === undefined ? 0 : Number(root.seed),
    });
  } catch (e) {
    if (e instanceof UsageError && !e.message.startsWith(path)) throw new UsageError(where(e.message));
    throw e;
  }
}
