/**
 * The merge configuration: what a user writes in a YAML file (mergekit's shape and
 * meaning) or gives as flags. Parsing and validation only; no files are opened here.
 *
 *   merge_method: ties
 *   base_model: ./llama-base
 *   models:
 *     - model: ./llama-math
 *       parameters: { weight: 0.6, density: [1, 0.7, 0.1] }   # a list: interpolated over layer depth
 *     - model: ./llama-code
 *       parameters:
 *         weight: [ { filter: embed_tokens, value: 0 }, { value: 0.4 } ]
 *   parameters: { normalize: true }
 *   dtype: bfloat16
 *
 * or, instead of `models`, `slices` of layer ranges (frankenmerges, per-slice merges).
 * A parameter is looked up as mergekit does: the model's (or slice source's)
 * parameters, then the slice's, then the top-level ones, then the method's default;
 * per-model parameters may be given at the top level for all models.
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { modelDir } from '../io/hf_cache.js';
import { parseAllDocuments } from 'yaml';
import { UsageError } from '../errors.js';
import { InputFileError, readTextFile } from '../io/read_file.js';
import type { ComputeDtype } from '../native/addon.js';
import { METHOD_REGISTRY, findMethod, type MethodDescriptor, type ParamSpec } from './methods/index.js';

/** Every method name (src/merge/methods/index.ts). */
export const METHODS: readonly string[] = [...METHOD_REGISTRY.keys()];
export type MethodName = string;

/** A scalar; a list of numbers (a gradient over layer depth); or {filter, value} rules (first match wins). */
export type ParamValue = number | boolean | readonly number[] | readonly ParamRule[];
export interface ParamRule {
  readonly filter?: string;
  readonly value: number | boolean | readonly number[];
}

export interface ModelEntry {
  readonly path: string;
  readonly parameters: Readonly<Record<string, ParamValue>>;
  /** Fisher file (safetensors of f32 Fisher tensors), for the fisher method. */
  readonly fisher?: string;
}

/** One input of a slice: a model's layers [from, to). */
export interface SliceSource {
  readonly path: string;
  readonly layerRange: readonly [number, number];
  readonly parameters: Readonly<Record<string, ParamValue>>;
}

/** One output slice: its layers merged from every source (all the same length). */
export interface SliceEntry {
  readonly sources: readonly SliceSource[];
  readonly parameters: Readonly<Record<string, ParamValue>>;
}

export interface MergeConfig {
  readonly method: MethodName;
  readonly base?: string;
  /** The models (the base excluded); empty when `slices` is given. */
  readonly models: readonly ModelEntry[];
  readonly slices?: readonly SliceEntry[];
  readonly parameters: Readonly<Record<string, ParamValue>>;
  /** mergekit's dtype: the output dtype unless outDtype is given (the kernels always compute in f32). */
  readonly dtype?: ComputeDtype;
  readonly outDtype?: ComputeDtype;
  readonly seed: number;
  /** 'base': tokenizer (and config) from the base model. */
  readonly tokenizerSource?: 'base';
}

/** The output dtype of float tensors (undefined: each tensor's own). */
export function outputDtype(c: MergeConfig): ComputeDtype | undefined {
  return c.outDtype ?? c.dtype;
}

const DTYPE_ALIASES: ReadonlyMap<string, ComputeDtype> = new Map([
  ['bf16', 'BF16'], ['bfloat16', 'BF16'], ['f16', 'F16'], ['fp16', 'F16'], ['float16', 'F16'], ['half', 'F16'],
  ['f32', 'F32'], ['fp32', 'F32'], ['float32', 'F32'], ['float', 'F32'],
]);

export function parseDtype(s: string): ComputeDtype {
  const d = DTYPE_ALIASES.get(s.toLowerCase());
  if (!d) throw new UsageError(`unknown dtype "${s}": use bfloat16, float16 or float32`);
  return d;
}

/** A method name as users type it (task_arithmetic, task-arithmetic, TIES, …). */
export function parseMethod(s: string): MethodName {
  const m = findMethod(s);
  if (!m) throw new UsageError(`unknown merge method "${s}": choose one of ${METHODS.join(', ')}`);
  return m.name;
}

export function descriptorOf(c: MergeConfig): MethodDescriptor {
  const m = findMethod(c.method);
  if (!m) throw new UsageError(`unknown merge method "${c.method}": choose one of ${METHODS.join(', ')}`);
  return m;
}

/** The literal values a setting can produce (for type and range checks before any tensor is seen). */
function literals(v: ParamValue): (number | boolean)[] {
  if (typeof v !== 'object') return [v];
  const out: (number | boolean)[] = [];
  for (const e of v as readonly (number | ParamRule)[]) {
    if (typeof e === 'number') out.push(e);
    else if (typeof e.value === 'object') out.push(...e.value);
    else out.push(e.value);
  }
  return out;
}

function checkValue(where: string, name: string, v: ParamValue, spec: ParamSpec): void {
  for (const x of literals(v)) {
    if (typeof x !== spec.kind || (typeof x === 'number' && !Number.isFinite(x))) {
      throw new UsageError(`${where}: parameter "${name}" must be a ${spec.kind}, got ${JSON.stringify(x)}`);
    }
    const msg = spec.check?.(x);
    if (msg) throw new UsageError(`${where}: parameter "${name}" ${msg}`);
  }
  if (typeof v === 'object') {
    for (const e of v as readonly (number | ParamRule)[]) {
      if (typeof e !== 'object' || e.filter === undefined) continue;
      if (typeof e.filter !== 'string') throw new UsageError(`${where}: filter of "${name}" must be a string`);
      const re = filterRegex(e.filter);
      if (re instanceof Error) throw new UsageError(`${where}: filter ${e.filter} of "${name}" is not a valid regular expression (${re.message})`);
    }
  }
  if (typeof v === 'object' && !Array.isArray(v)) return;
  if (typeof v === 'object' && spec.kind !== 'number' && (v as readonly unknown[]).some((e) => typeof e === 'number')) {
    throw new UsageError(`${where}: parameter "${name}" is a ${spec.kind}; a list of numbers (a gradient) only fits numeric parameters`);
  }
}

function checkParams(where: string, params: Readonly<Record<string, ParamValue>>, allowed: Readonly<Record<string, ParamSpec>>, other: Readonly<Record<string, ParamSpec>>, otherLevel: string): void {
  for (const [k, v] of Object.entries(params)) {
    const spec = allowed[k];
    if (!spec) {
      if (other[k]) throw new UsageError(`${where}: parameter "${k}" is ${otherLevel}; move it there`);
      throw new UsageError(`${where}: parameter "${k}" is not used by this method (it takes: ${Object.keys(allowed).join(', ') || 'none'})`);
    }
    checkValue(where, k, v, spec);
  }
}

/** Validates a config against its method (parameter names, types and ranges, model count, base). */
export function validateConfig(c: MergeConfig): MergeConfig {
  const spec = descriptorOf(c);
  const method = spec.name;
  const slices = c.slices ?? [];
  if (c.models.length === 0 && slices.length === 0) throw new UsageError('no models to merge: give at least one --model');
  if (c.models.length > 0 && slices.length > 0) throw new UsageError('give either models or slices, not both');
  if (spec.base === 'required' && !c.base) throw new UsageError(`method ${method} needs a base model (--base or base_model)`);
  if (c.tokenizerSource === 'base' && !c.base) throw new UsageError('tokenizer_source: base needs a base_model');
  // the base listed among the models (as mergekit configs often do) is the base, not one more model
  const models = spec.base === 'unused' || !c.base ? c.models : c.models.filter((m) => resolve(m.path) !== resolve(c.base!));
  const topLevel = { ...spec.global, ...spec.perModel };
  checkParams('parameters', c.parameters, topLevel, {}, '');
  const perModelChecks = (where: string, p: Readonly<Record<string, ParamValue>>) =>
    checkParams(where, p, spec.perModel, spec.global, 'a method-level parameter (top-level parameters)');
  models.forEach((m, i) => perModelChecks(`models[${i}] (${m.path})`, m.parameters));
  slices.forEach((s, i) => {
    if (s.sources.length === 0) throw new UsageError(`slices[${i}]: no sources`);
    checkParams(`slices[${i}].parameters`, s.parameters, topLevel, {}, '');
    const len = s.sources[0]!.layerRange[1] - s.sources[0]!.layerRange[0];
    s.sources.forEach((src, j) => {
      const [a, b] = src.layerRange;
      if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b <= a) throw new UsageError(`slices[${i}].sources[${j}] (${src.path}): layer_range must be [from, to) with 0 ≤ from < to, got [${a}, ${b}]`);
      if (b - a !== len) throw new UsageError(`slices[${i}]: every source must span the same number of layers (${len}); ${src.path} has ${b - a}`);
      perModelChecks(`slices[${i}].sources[${j}] (${src.path})`, src.parameters);
    });
  });
  for (const [name, p] of Object.entries(spec.global)) {
    if (p.required && c.parameters[name] === undefined && !slices.some((s) => s.parameters[name] !== undefined)) {
      throw new UsageError(`method ${method} needs parameter "${name}" (${p.help})`);
    }
  }
  const usesBase = spec.base !== 'unused' && c.base !== undefined;
  for (const [name, p] of Object.entries(spec.perModel)) {
    if (!p.required || c.parameters[name] !== undefined) continue;
    models.forEach((m, i) => {
      if (m.parameters[name] === undefined) throw new UsageError(`models[${i}] (${m.path}): method ${method} needs parameter "${name}" for every model (${p.help}); mergekit refuses a model without it too`);
    });
    slices.forEach((s, i) => s.sources.forEach((src, j) => {
      const isBase = usesBase && resolve(src.path) === resolve(c.base!);
      if (!isBase && src.parameters[name] === undefined && s.parameters[name] === undefined) {
        throw new UsageError(`slices[${i}].sources[${j}] (${src.path}): method ${method} needs parameter "${name}" for every model (${p.help})`);
      }
    }));
  }
  if (slices.length === 0) {
    if (models.length < spec.models.min) throw new UsageError(`method ${method} needs at least ${spec.models.min} model(s) besides the base, got ${models.length}`);
    if (spec.models.max !== undefined && models.length > spec.models.max) {
      throw new UsageError(`method ${method} takes at most ${spec.models.max} model(s) besides the base, got ${models.length}${spec.base === 'required' ? ' (the base model is given with base_model)' : ''}`);
    }
  }
  if (spec.needsFisher) {
    if (slices.length > 0) throw new UsageError('fisher merging does not take slices');
    const missing = models.filter((m) => !m.fisher).map((m) => m.path);
    if (missing.length > 0) throw new UsageError(`fisher merging needs a Fisher file for every model (--fisher, in model order); missing for: ${missing.join(', ')}`);
  } else if (models.some((m) => m.fisher)) {
    throw new UsageError(`Fisher files are only used by the fisher method, not ${method}`);
  }
  if (!Number.isSafeInteger(c.seed) || c.seed < 0) throw new UsageError(`seed must be a non-negative integer, got ${c.seed}`);
  return { ...c, method, models };
}

/**
 * Evaluates a setting for one tensor at relative layer depth t ∈ [0, 1] (mergekit's
 * evaluate_setting): a scalar is itself; a list of numbers is interpolated
 * linearly at t·(len − 1); rules: the first whose filter is absent, "*" or matches
 * the name. undefined when no rule matches (the lookup moves on to the next level).
 */
export function evaluateParam(value: ParamValue | undefined, tensor: string, t: number): number | boolean | undefined {
  if (value === undefined || typeof value !== 'object') return value;
  const list = value as readonly (number | ParamRule)[];
  if (list.length === 0) return undefined;
  if (list.every((e) => typeof e === 'number')) {
    const v = list as readonly number[];
    const scaled = t * (v.length - 1);
    const i0 = Math.floor(scaled);
    const i1 = Math.min(v.length - 1, i0 + 1);
    const frac = scaled - i0;
    return (1 - frac) * v[i0]! + frac * v[i1]!;
  }
  for (const r of list as readonly ParamRule[]) {
    if (r.filter === undefined || r.filter === '*' || matchesFilter(r.filter, tensor)) return evaluateParam(r.value as ParamValue, tensor, t);
  }
  return undefined;
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

/** Resolves a parameter for one tensor (at depth t, default 0): the first matching rule wins; no match gives the fallback. */
export function resolveParam(value: ParamValue | undefined, tensor: string, fallback: number | boolean, t = 0): number | boolean {
  return evaluateParam(value, tensor, t) ?? fallback;
}

/** mergekit filters are substrings ("*" matches every tensor); /…/ is a regular expression (checked by validateConfig). */
export function matchesFilter(filter: string, tensor: string): boolean {
  if (filter === '*') return true;
  const re = filterRegex(filter);
  if (re instanceof Error) throw new UsageError(`filter ${filter} is not a valid regular expression (${re.message})`);
  return re ? re.test(tensor) : tensor.includes(filter);
}

function asRecord(v: unknown, where: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new UsageError(`${where} must be a mapping`);
  return v as Record<string, unknown>;
}

function asScalarOrGradient(v: unknown, where: string): number | boolean | readonly number[] {
  if (typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v) && v.length > 0 && v.every((e) => typeof e === 'number')) return v as number[];
  throw new UsageError(`${where} must be a number, a boolean or a list of numbers`);
}

function asParamValue(v: unknown, where: string): ParamValue {
  if (typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v) && v.length > 0 && v.every((e) => typeof e === 'number')) return v as number[];
  if (Array.isArray(v)) {
    return v.map((r, i) => {
      const rec = asRecord(r, `${where}[${i}]`);
      for (const k of Object.keys(rec)) if (k !== 'filter' && k !== 'value') throw new UsageError(`${where}[${i}]: unknown key "${k}" (a rule has filter and value)`);
      if (rec.value === undefined) throw new UsageError(`${where}[${i}] needs a "value"`);
      const value = asScalarOrGradient(rec.value, `${where}[${i}].value`);
      if (rec.filter !== undefined && typeof rec.filter !== 'string') throw new UsageError(`${where}[${i}].filter must be a string`);
      return rec.filter === undefined ? { value } : { filter: rec.filter, value };
    });
  }
  throw new UsageError(`${where} must be a number, a boolean, a list of numbers or a list of {filter, value}`);
}

function asParams(v: unknown, where: string): Record<string, ParamValue> {
  const rec = asRecord(v, where);
  return Object.fromEntries(Object.entries(rec).map(([k, x]) => [k, asParamValue(x, `${where}.${k}`)]));
}

/** Keys of a mergekit config that dfmerge refuses by name, with the reason. */
const REFUSED_KEYS: ReadonlyMap<string, string> = new Map([
  ['tokenizer', 'vocabulary merging (tokenizer:) is not implemented; use tokenizer_source: base or leave it out (the reference model\'s tokenizer is copied)'],
  ['chat_template', 'chat_template is not implemented; edit tokenizer_config.json of the output instead'],
  ['modules', 'per-module configs (modules:) are not implemented; use models or slices'],
]);

/**
 * Reads a mergekit-style YAML config. Relative paths are resolved from the current
 * folder, as mergekit does.
 */
export function loadConfigFile(path: string): MergeConfig {
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(readTextFile(path, 'merge config'));
  } catch (e) {
    if (e instanceof InputFileError) throw e;
    throw new UsageError(`${path}: cannot read the merge config (${e instanceof Error ? e.message : String(e)})`);
  }
  const where = (s: string) => `${path}: ${s}`;
  if (!Array.isArray(docs)) throw new UsageError(where('not a YAML document'));
  if (docs.length > 1) throw new UsageError(where(`holds ${docs.length} YAML documents (a mergekit-mega config); dfmerge merges one config per file: split it`));
  const doc = docs[0];
  if (doc && doc.errors.length > 0) throw new UsageError(where(`cannot read the merge config (${doc.errors[0]!.message})`));
  const root = asRecord(doc?.toJS(), where('the document'));
  const known = new Set(['merge_method', 'base_model', 'models', 'slices', 'parameters', 'dtype', 'out_dtype', 'seed', 'tokenizer_source']);
  for (const k of Object.keys(root)) {
    const refused = REFUSED_KEYS.get(k);
    if (refused) throw new UsageError(where(`"${k}": ${refused}`));
    if (!known.has(k)) throw new UsageError(where(`unknown key "${k}" (known: ${[...known].join(', ')})`));
  }
  if (typeof root.merge_method !== 'string') throw new UsageError(where('"merge_method" is required'));
  const dir = dirname(resolve(path));
  const rel = (p: unknown, w: string, model = true): string => {
    if (typeof p !== 'string' || p.length === 0) throw new UsageError(where(`${w} must be a path`));
    const full = resolve(p);
    if (!isAbsolute(p) && !existsSync(full) && existsSync(resolve(dir, p))) {
      throw new UsageError(where(`${w}: "${p}" is resolved from the current folder (as mergekit does) and is not there; it exists next to the config: run from ${dir} or give ${resolve(dir, p)}`));
    }
    return model ? resolve(modelDir(p, where(w))) : full;  // a model named org/name[@rev]: its snapshot in the Hugging Face cache
  };
  let models: ModelEntry[] = [];
  let slices: SliceEntry[] | undefined;
  if (root.models !== undefined && root.slices !== undefined) throw new UsageError(where('give either "models" or "slices", not both'));
  if (root.slices !== undefined) {
    if (!Array.isArray(root.slices)) throw new UsageError(where('"slices" must be a list of {sources}'));
    slices = root.slices.map((s: unknown, i: number) => {
      const rec = asRecord(s, where(`slices[${i}]`));
      for (const k of Object.keys(rec)) {
        if (k !== 'sources' && k !== 'parameters') throw new UsageError(where(`slices[${i}]: key "${k}" is not implemented (a slice has sources and parameters)`));
      }
      if (!Array.isArray(rec.sources)) throw new UsageError(where(`slices[${i}].sources must be a list of {model, layer_range}`));
      return {
        sources: rec.sources.map((src: unknown, j: number) => {
          const r = asRecord(src, where(`slices[${i}].sources[${j}]`));
          for (const k of Object.keys(r)) {
            if (k !== 'model' && k !== 'layer_range' && k !== 'parameters') throw new UsageError(where(`slices[${i}].sources[${j}]: unknown key "${k}"`));
          }
          const lr = r.layer_range;
          if (!Array.isArray(lr) || lr.length !== 2 || !lr.every((x) => Number.isInteger(x))) throw new UsageError(where(`slices[${i}].sources[${j}].layer_range must be [from, to]`));
          return { path: rel(r.model, `slices[${i}].sources[${j}].model`), layerRange: [lr[0] as number, lr[1] as number] as const, parameters: asParams(r.parameters, where(`slices[${i}].sources[${j}].parameters`)) };
        }),
        parameters: asParams(rec.parameters, where(`slices[${i}].parameters`)),
      };
    });
  } else {
    if (!Array.isArray(root.models)) throw new UsageError(where('"models" (or "slices") must be a list of {model, parameters}'));
    models = root.models.map((m: unknown, i: number) => {
      const rec = typeof m === 'string' ? { model: m } : asRecord(m, where(`models[${i}]`));
      for (const k of Object.keys(rec)) if (k !== 'model' && k !== 'parameters' && k !== 'fisher') throw new UsageError(where(`models[${i}]: unknown key "${k}"`));
      return {
        path: rel(rec.model, `models[${i}].model`),
        parameters: asParams(rec.parameters, where(`models[${i}].parameters`)),
        ...(rec.fisher !== undefined ? { fisher: rel(rec.fisher, `models[${i}].fisher`, false) } : {}),
      };
    });
  }
  if (root.tokenizer_source !== undefined && root.tokenizer_source !== 'base') {
    throw new UsageError(where(`tokenizer_source: ${JSON.stringify(root.tokenizer_source)} is not implemented (only "base": the tokenizer is copied from the base model, or from the first model without one)`));
  }
  try {
    return validateConfig({
      method: parseMethod(root.merge_method),
      ...(root.base_model !== undefined ? { base: rel(root.base_model, 'base_model') } : {}),
      models,
      ...(slices ? { slices } : {}),
      parameters: asParams(root.parameters, where('parameters')),
      ...(root.dtype !== undefined ? { dtype: parseDtype(String(root.dtype)) } : {}),
      ...(root.out_dtype !== undefined ? { outDtype: parseDtype(String(root.out_dtype)) } : {}),
      seed: root.seed === undefined ? 0 : Number(root.seed),
      ...(root.tokenizer_source === 'base' ? { tokenizerSource: 'base' as const } : {}),
    });
  } catch (e) {
    if (e instanceof UsageError && !e.message.startsWith(path)) throw new UsageError(where(e.message));
    throw e;
  }
}
