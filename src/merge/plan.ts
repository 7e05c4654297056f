/**
 * The merge plan: per output tensor, its inputs and resolved parameters. Building
 * it opens every checkpoint (headers only: tensors stay on disk) and checks that
 * all models agree on names, shapes and dtypes. The plan is data: methods and
 * kernels never see files, and the writer never sees methods.
 */
import { existsSync } from 'node:fs';
import { readJsonObjectFile } from '../io/read_file.js';
import { join, resolve } from 'node:path';
import { CheckpointError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { byteSize, isComputeDtype, numelOf } from '../io/dtypes.js';
import type { TensorSpec } from '../io/writer.js';
import type { ComputeDtype } from '../native/addon.js';
import { UsageError } from '../errors.js';
import { descriptorOf, evaluateParam, outputDtype, type MergeConfig, type MethodName, type ParamValue } from './config.js';
import type { MethodDescriptor, ParamSpec } from './methods/index.js';
import { LoraAdapter } from './lora.js';
import { fitFisherRows, fitRows, rowFitWarning, vocabRowFit, type RowFit } from '../io/vocab_rows.js';

/** What the plan needs of a model: a checkpoint, or a LoRA adapter over the base (./lora.ts). */
export type ModelSource = Checkpoint | LoraAdapter;

/** The tensor metadata the architecture checks read. */
export interface ModelLike {
  readonly path: string;
  readonly names: readonly string[];
  has(name: string): boolean;
  locate(name: string): { readonly info: { readonly dtype: string; readonly shape: readonly number[] } };
}

/** Where one input of a tensor comes from: model index into MergePlan.models (-1: the base) and tensor name. */
export interface TensorSource {
  readonly model: number;
  readonly name: string;
}

export interface TensorPlan {
  readonly name: string;
  readonly shape: readonly number[];
  readonly numel: number;
  /** 'merge': float tensor through the method's kernel; 'copy': other dtypes, copied from `copyFrom`. */
  readonly kind: 'merge' | 'copy';
  readonly outDtype: string;
  /** The models merged into this tensor, in order (the base excluded). */
  readonly sources: readonly TensorSource[];
  /** The base's tensor (methods that use a base). */
  readonly baseName?: string;
  readonly copyFrom: TensorSource;
  /** Per-source weights (the `weight` parameter; 1 for methods without one). */
  readonly weights: readonly number[];
  /** Per-source parameters resolved for this tensor. */
  readonly modelParams: readonly Readonly<Record<string, number | boolean>>[];
  /** Method-level parameters resolved for this tensor. */
  readonly params: Readonly<Record<string, number | boolean>>;
  /** Relative layer depth t ∈ [0, 1] the gradients were evaluated at. */
  readonly depth: number;
  /** Bytes this tensor reads (each input once) plus writes. */
  readonly ioBytes: number;
  /**
   * Per source, when its vocabulary rows differ from the output's (../io/vocab_rows.ts):
   * how it is read with the output's rows. Absent when every source has the output's shape.
   */
  readonly rowFits?: readonly (RowFit | undefined)[];
  /** Per Fisher file, the same for its Fisher tensor. */
  readonly fisherRowFits?: readonly (RowFit | undefined)[];
}

/** Source j of tensor t with the output's rows (a padded copy or a zero-copy prefix when its vocabulary differs). */
export function fitSourceInput<T extends { readonly data: ArrayBufferView | ArrayBuffer; readonly dtype: ComputeDtype }>(
  t: TensorPlan, j: number, input: T, reference: () => T): T | { data: ArrayBufferView | ArrayBuffer; dtype: ComputeDtype } {
  const fit = t.rowFits?.[j];
  return fit ? fitRows(input, fit, reference()) : input;
}

/** Fisher file k's tensor for t with the output's rows (extra rows dropped, missing rows 0). */
export function fitFisherInput<T extends { readonly data: ArrayBufferView | ArrayBuffer; readonly dtype: ComputeDtype }>(
  t: TensorPlan, k: number, input: T): T | { data: ArrayBufferView | ArrayBuffer; dtype: ComputeDtype } {
  const fit = t.fisherRowFits?.[k];
  return fit ? fitFisherRows(input, fit) : input;
}

export interface MergePlan {
  readonly config: MergeConfig;
  readonly method: MethodName;
  readonly descriptor: MethodDescriptor;
  readonly base: Checkpoint | undefined;
  readonly models: readonly ModelSource[];
  readonly fishers: readonly Checkpoint[];
  /** The checkpoint whose names, non-float tensors, config and tokenizer the output follows. */
  readonly reference: Checkpoint;
  readonly tensors: readonly TensorPlan[];
  readonly outputSpecs: readonly TensorSpec[];
  /** Bytes read (every input once) and written, for throughput reports. */
  readonly inputBytes: number;
  readonly outputBytes: number;
  /** Output layer count when slices restack layers (config.json's num_hidden_layers), else undefined. */
  readonly layerCount?: number;
  close(): void;
}

const MAX_LISTED = 12;

function listMismatches(path: string, problems: string[]): never {
  const shown = problems.slice(0, MAX_LISTED).map((p) => `  - ${p}`).join('\n');
  const more = problems.length > MAX_LISTED ? `\n  … and ${problems.length - MAX_LISTED} more` : '';
  throw new CheckpointError(path, 'ModelMismatch', `does not match the reference model:\n${shown}${more}`);
}

/**
 * Checks that `other` has exactly the reference's tensors with the same shapes and
 * compatible dtypes, except for vocabulary tensors whose row counts differ
 * (../io/vocab_rows.ts) when `allowVocabRows`: those are returned, for the caller
 * to read with the reference's rows and to warn about.
 */
export function checkSameArchitecture(reference: ModelLike, other: ModelLike, what = 'model', allowVocabRows = false): RowFit[] {
  const problems: string[] = [];
  const fits: RowFit[] = [];
  const refNames = new Set(reference.names);
  for (const name of reference.names) {
    if (!other.has(name)) {
      problems.push(`tensor "${name}" is missing from this ${what}`);
      continue;
    }
    const a = reference.locate(name).info;
    const b = other.locate(name).info;
    const fit = allowVocabRows ? vocabRowFit(name, a.shape, b.shape) : undefined;
    const dtypesAgree = isComputeDtype(a.dtype) === isComputeDtype(b.dtype) && (isComputeDtype(a.dtype) || a.dtype === b.dtype);
    if (!fit && (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i]))) {
      problems.push(`tensor "${name}" has shape [${b.shape.join(', ')}], the reference has [${a.shape.join(', ')}]`);
    } else if (!dtypesAgree || (fit && !isComputeDtype(a.dtype))) {
      problems.push(`tensor "${name}" has dtype ${b.dtype}, the reference has ${a.dtype}`);
    } else if (fit) {
      fits.push(fit);
    }
  }
  for (const name of other.names) if (!refNames.has(name)) problems.push(`tensor "${name}" is not in the reference model`);
  if (problems.length > 0) listMismatches(other.path, problems);
  return fits;
}

/** Checks that a Fisher file holds a float tensor of the right shape for every merged tensor. */
function checkFisher(fisher: Checkpoint, tensors: readonly TensorPlan[]): void {
  const problems: string[] = [];
  for (const t of tensors) {
    if (t.kind !== 'merge') continue;
    if (!fisher.has(t.name)) { problems.push(`no Fisher tensor "${t.name}"`); continue; }
    const f = fisher.locate(t.name).info;
    if (!isComputeDtype(f.dtype)) problems.push(`Fisher tensor "${t.name}" has dtype ${f.dtype}; F32, F16 or BF16 expected`);
    else if (numelOf(f.shape) !== t.numel && !vocabRowFit(t.name, t.shape, f.shape)) problems.push(`Fisher tensor "${t.name}" has shape [${f.shape.join(', ')}], the model has [${t.shape.join(', ')}]`);
  }
  if (problems.length > 0) listMismatches(fisher.path, problems);
}

/** Layer tensors: prefix, layer index, suffix (model.layers.3.mlp.up_proj.weight). */
const LAYER = /^(.*?\.(?:layers|h|blocks|block|layer)\.)(\d+)(\..+)$/;
/** Non-layer tensors that come before the layers (from the first slice; the others from the last). */
const PRE_LAYERS = /embed|wte|wpe|tok_embeddings|word_embeddings/;

/** The model's layer count: config.json's num_hidden_layers (n_layer, num_layers), else the highest layer index + 1. */
function layerCountOf(ck: Checkpoint): number {
  const cfgPath = join(ck.dir, 'config.json');
  if (existsSync(cfgPath)) {
    try {
      const cfg = readJsonObjectFile(cfgPath, 'config.json');  // a regular file only: a FIFO would block
      for (const k of ['num_hidden_layers', 'n_layer', 'num_layers']) {
        const v = cfg[k];
        if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
      }
    } catch {
      // an unreadable config.json: count the layers from the tensor names
    }
  }
  let max = -1;
  for (const name of ck.names) {
    const m = LAYER.exec(name);
    if (m) max = Math.max(max, Number(m[2]));
  }
  return max + 1;
}

type Levels = readonly (Readonly<Record<string, ParamValue>> | undefined)[];

interface Draft {
  readonly name: string;
  readonly sources: readonly TensorSource[];
  readonly baseName?: string;
  readonly copyFrom: TensorSource;
  readonly depth: number;
  /** Per source: where its parameters are looked up, most specific first. */
  readonly modelLevels: readonly Levels[];
  readonly globalLevels: Levels;
  readonly where: readonly string[];
}

function resolveOne(levels: Levels, name: string, spec: ParamSpec, d: Draft, where: string): number | boolean {
  let v: number | boolean | undefined;
  for (const l of levels) {
    v = evaluateParam(l?.[name], d.name, d.depth);
    if (v !== undefined) break;
  }
  if (v === undefined) v = spec.default;
  if (v === undefined) throw new UsageError(`${where}: parameter "${name}" has no value for tensor ${d.name} (no rule matches it, and the method needs it)`);
  const msg = spec.check?.(v);
  if (msg) throw new UsageError(`${where}: parameter "${name}" for tensor ${d.name} ${msg}`);
  return v;
}

function modelsDrafts(config: MergeConfig, desc: MethodDescriptor, reference: Checkpoint, useBase: boolean): Draft[] {
  const layers = layerCountOf(reference);
  return reference.names.map((name) => {
    const m = LAYER.exec(name);
    const depth = m ? (layers > 1 ? Number(m[2]) / (layers - 1) : 1) : 0;
    return {
      name, depth,
      sources: config.models.map((_, k) => ({ model: k, name })),
      ...(useBase ? { baseName: name } : {}),
      copyFrom: { model: config.base ? -1 : 0, name },
      modelLevels: config.models.map((mm) => [mm.parameters, config.parameters]),
      globalLevels: [config.parameters],
      where: config.models.map((mm, k) => `models[${k}] (${mm.path})`),
    };
  });
}

function slicesDrafts(config: MergeConfig, useBase: boolean, modelIndex: (path: string) => number, open: (path: string) => ModelSource): { drafts: Draft[]; layerCount: number } {
  const slices = config.slices!;
  const isBase = (p: string) => useBase && resolve(p) === resolve(config.base!);
  const split = (s: (typeof slices)[number], i: number) => {
    const base = s.sources.find((src) => isBase(src.path));
    if (useBase && !base) throw new UsageError(`slices[${i}]: the base model ${config.base} must be one of the slice's sources (its layers are the base of this slice)`);
    return { base, others: s.sources.map((src, j) => ({ src, j })).filter(({ src }) => !isBase(src.path)) };
  };
  const drafts: Draft[] = [];
  const nonLayer = (sliceIndex: number, name: string): Draft => {
    const s = slices[sliceIndex]!;
    const { others } = split(s, sliceIndex);
    return {
      name, depth: 0,
      sources: others.map(({ src }) => ({ model: modelIndex(src.path), name })),
      ...(useBase ? { baseName: name } : {}),
      copyFrom: useBase ? { model: -1, name } : { model: modelIndex(others[0]!.src.path), name },
      modelLevels: others.map(({ src }) => [src.parameters, s.parameters, config.parameters]),
      globalLevels: [s.parameters, config.parameters],
      where: others.map(({ src, j }) => `slices[${sliceIndex}].sources[${j}] (${src.path})`),
    };
  };
  const first = open(slices[0]!.sources[0]!.path);
  const last = open(slices[slices.length - 1]!.sources[0]!.path);
  for (const name of first.names) if (!LAYER.test(name) && PRE_LAYERS.test(name)) drafts.push(nonLayer(0, name));
  let out = 0;
  slices.forEach((s, i) => {
    const { base, others } = split(s, i);
    const lead = s.sources[0]!;
    const leadCk = open(lead.path);
    const len = lead.layerRange[1] - lead.layerRange[0];
    for (let idx = 0; idx < len; idx += 1) {
      const layer = lead.layerRange[0] + idx;
      const names = leadCk.names.filter((nm) => Number(LAYER.exec(nm)?.[2] ?? -1) === layer);
      if (names.length === 0) throw new UsageError(`slices[${i}]: ${lead.path} has no layer ${layer} (layer_range [${lead.layerRange.join(', ')}])`);
      const at = (src: { layerRange: readonly [number, number] }, nm: string) => {
        const m = LAYER.exec(nm)!;
        return `${m[1]}${src.layerRange[0] + idx}${m[3]}`;
      };
      for (const nm of names) {
        const m = LAYER.exec(nm)!;
        drafts.push({
          name: `${m[1]}${out}${m[3]}`,
          depth: len > 1 ? idx / (len - 1) : 1,
          sources: others.map(({ src }) => ({ model: modelIndex(src.path), name: at(src, nm) })),
          ...(base ? { baseName: at(base, nm) } : {}),
          copyFrom: base ? { model: -1, name: at(base, nm) } : { model: modelIndex(others[0]!.src.path), name: at(others[0]!.src, nm) },
          modelLevels: others.map(({ src }) => [src.parameters, s.parameters, config.parameters]),
          globalLevels: [s.parameters, config.parameters],
          where: others.map(({ src, j }) => `slices[${i}].sources[${j}] (${src.path})`),
        });
      }
      out += 1;
    }
  });
  for (const name of last.names) if (!LAYER.test(name) && !PRE_LAYERS.test(name)) drafts.push(nonLayer(slices.length - 1, name));
  return { drafts, layerCount: out };
}

export interface BuildPlanOptions {
  /** Where warnings go (vocabulary rows that differ); default stderr. */
  warn?: (line: string) => void;
}

export function buildPlan(config: MergeConfig, options: BuildPlanOptions = {}): MergePlan {
  const warn = options.warn ?? ((line: string) => { process.stderr.write(line); });
  const opened = new Map<string, ModelSource>();
  let baseCk: Checkpoint | undefined;
  const openCheckpoint = (p: string): Checkpoint => {
    const ck = opened.get(resolve(p));
    if (ck instanceof LoraAdapter) throw new CheckpointError(ck.path, 'AdapterAsBase', 'is a LoRA adapter; the base model must be a full checkpoint');
    if (ck) return ck;
    const c = Checkpoint.open(p);
    opened.set(resolve(p), c);
    return c;
  };
  // a folder with adapter_config.json is a LoRA adapter over the base
  const open = (p: string): ModelSource => {
    const key = resolve(p);
    let ck = opened.get(key);
    if (!ck) {
      ck = LoraAdapter.isAdapter(key) ? LoraAdapter.open(key, baseCk) : Checkpoint.open(p);
      opened.set(key, ck);
    }
    return ck;
  };
  try {
    const desc = descriptorOf(config);
    const base = config.base ? openCheckpoint(config.base) : undefined;
    baseCk = base;
    const useBase = desc.base !== 'unused' && base !== undefined;
    let modelPaths: string[];
    let drafts: Draft[];
    let layerCount: number | undefined;
    let reference: Checkpoint;
    if (config.slices && config.slices.length > 0) {
      modelPaths = [];
      for (const s of config.slices) {
        for (const src of s.sources) {
          const p = resolve(src.path);
          if (!(useBase && p === resolve(config.base!)) && !modelPaths.includes(p)) modelPaths.push(p);
        }
      }
      reference = base ?? openCheckpoint(config.slices[0]!.sources[0]!.path);
      const r = slicesDrafts(config, useBase, (p) => modelPaths.indexOf(resolve(p)), open);
      drafts = r.drafts;
      layerCount = r.layerCount;
    } else {
      modelPaths = config.models.map((m) => m.path);
      const ms = modelPaths.map(open);
      reference = base ?? openCheckpoint(modelPaths[0]!);
      for (const m of ms) if (m !== reference) checkSameArchitecture(reference, m, 'model', true);
      drafts = modelsDrafts(config, desc, reference, useBase);
    }
    const models = modelPaths.map(open);
    const fishers = desc.needsFisher ? config.models.map((m) => Checkpoint.open(m.fisher!)) : [];
    if (models.some((m) => m instanceof LoraAdapter) && !useBase && desc.base === 'required') throw new UsageError('a LoRA adapter needs base_model');
    for (const f of fishers) opened.set(`fisher:${f.path}`, f);
    const ckOf = (s: TensorSource): ModelSource => (s.model < 0 ? base! : models[s.model]!);
    const problems: string[] = [];
    const tensors: TensorPlan[] = [];
    const outDtype = outputDtype(config);
    for (const d of drafts) {
      const inputs = [...(d.baseName !== undefined ? [{ model: -1, name: d.baseName }] : []), ...d.sources];
      const ref = ckOf(d.copyFrom);
      if (!ref.has(d.copyFrom.name)) { problems.push(`${ref.path}: no tensor "${d.copyFrom.name}"`); continue; }
      const info = ref.locate(d.copyFrom.name).info;
      let ok = true;
      const fits = new Map<TensorSource, RowFit>();
      for (const s of inputs) {
        const ck = ckOf(s);
        if (!ck.has(s.name)) { problems.push(`${ck.path}: no tensor "${s.name}" (for output ${d.name})`); ok = false; continue; }
        const i = ck.locate(s.name).info;
        const fit = s.model >= 0 && isComputeDtype(i.dtype) && isComputeDtype(info.dtype) ? vocabRowFit(s.name, info.shape, i.shape) : undefined;
        if (fit) {
          fits.set(s, fit);
          warn(rowFitWarning(fit, ck.path, ref.path, d.copyFrom.model < 0 ? 'the base' : 'the reference model'));
        } else if (i.shape.length !== info.shape.length || i.shape.some((x, j) => x !== info.shape[j])) {
          problems.push(`${ck.path}: tensor "${s.name}" has shape [${i.shape.join(', ')}], ${ref.path} has [${info.shape.join(', ')}]`);
          ok = false;
        }
      }
      if (!ok) continue;
      const merge = isComputeDtype(info.dtype) && inputs.every((s) => isComputeDtype(ckOf(s).locate(s.name).info.dtype));
      if (merge) {
        if (d.sources.length < desc.models.min || (desc.models.max !== undefined && d.sources.length > desc.models.max)) {
          throw new UsageError(`tensor ${d.name}: method ${desc.name} takes ${desc.models.min}${desc.models.max === desc.models.min ? '' : desc.models.max === undefined ? ' or more' : ` to ${desc.models.max}`} model(s) besides the base, this one has ${d.sources.length}`);
        }
      }
      const params: Record<string, number | boolean> = {};
      const modelParams: Record<string, number | boolean>[] = d.sources.map(() => ({}));
      if (merge) {
        for (const [k, spec] of Object.entries(desc.global)) params[k] = resolveOne(d.globalLevels, k, spec, d, 'parameters');
        d.sources.forEach((_, j) => {
          for (const [k, spec] of Object.entries(desc.perModel)) modelParams[j]![k] = resolveOne(d.modelLevels[j]!, k, spec, d, d.where[j]!);
        });
      }
      const weights = modelParams.map((p) => (p.weight === undefined ? 1 : Number(p.weight)));
      const od = merge ? (outDtype ?? (info.dtype as ComputeDtype)) : info.dtype;
      let ioBytes = byteSize(od, info.shape);
      if (!merge) ioBytes += byteSize(info.dtype, info.shape);
      else {
        for (const s of inputs) ioBytes += byteSize(ckOf(s).locate(s.name).info.dtype, info.shape);
        for (const f of fishers) if (f.has(d.name)) ioBytes += byteSize(f.locate(d.name).info.dtype, info.shape);
      }
      const fisherFits = fishers.map((f) => (merge && f.has(d.name) ? vocabRowFit(d.name, info.shape, f.locate(d.name).info.shape) : undefined));
      tensors.push({
        name: d.name, shape: [...info.shape], numel: numelOf(info.shape), kind: merge ? 'merge' : 'copy', outDtype: od,
        sources: d.sources, ...(d.baseName !== undefined ? { baseName: d.baseName } : {}), copyFrom: d.copyFrom,
        weights, modelParams, params, depth: d.depth, ioBytes,
        ...(fits.size > 0 ? { rowFits: d.sources.map((s) => fits.get(s)) } : {}),
        ...(fisherFits.some((f) => f) ? { fisherRowFits: fisherFits } : {}),
      });
    }
    if (problems.length > 0) listMismatches(reference.path, problems);
    for (const f of fishers) checkFisher(f, tensors);
    const outputBytes = tensors.reduce((a, t) => a + byteSize(t.outDtype, t.shape), 0);
    const inputBytes = tensors.reduce((a, t) => a + t.ioBytes, 0) - outputBytes;
    return {
      config, method: desc.name, descriptor: desc, base, models, fishers, reference, tensors,
      outputSpecs: tensors.map((t) => ({ name: t.name, dtype: t.outDtype, shape: t.shape })),
      inputBytes, outputBytes,
      ...(layerCount !== undefined ? { layerCount } : {}),
      close: () => { for (const ck of opened.values()) ck.close(); },
    };
  } catch (e) {
    for (const ck of opened.values()) ck.close();
    throw e;
  }
}
