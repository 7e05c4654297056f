/**
 * Runs a merge: plan → kernel → writer, one tensor at a time, straight from the
 * memory-mapped inputs into the output file's slots. Resident memory stays at a
 * few chunks whatever the model size; the output folder only gets files that are
 * complete (shards and index renamed into place at the end).
 */
import { existsSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { UsageError } from '../errors.js';
import { Checkpoint, INDEX_FILE } from '../io/checkpoint.js';
import { CheckpointWriter, writeFileAtomic } from '../io/writer.js';
import { assertOutputFolderNotInput } from '../io/paths.js';
import { readJsonObjectFile, readRegularFile } from '../io/read_file.js';
import { StagedFolder } from '../io/staging.js';
import { isComputeDtype } from '../io/dtypes.js';
import { addon, type ComputeDtype } from '../native/addon.js';
import { Progress } from '../util/progress.js';
import { outputDtype, type MergeConfig } from './config.js';
import { mergeTensor, sumOfSquares, type Device, type TensorInput } from './kernels.js';
import type { MethodInputs } from './methods/index.js';
import { modelCard } from './card.js';
import { LoraAdapter } from './lora.js';
import { buildPlan, fitFisherInput, fitSourceInput, type MergePlan, type TensorPlan } from './plan.js';

export interface MergeRunOptions {
  out: string;
  force?: boolean;
  shardSize?: number;
  threads?: number;
  device?: Device;
  quiet?: boolean;
  /** Called after each tensor with bytes read+written so far. */
  onTensor?: (name: string, done: number, total: number) => void;
}

export interface MergeResult {
  out: string;
  files: string[];
  inputBytes: number;
  outputBytes: number;
  seconds: number;
}

/** Files copied from the reference model's folder when present. */
export const SIDE_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model',
  'vocab.json', 'merges.txt', 'added_tokens.json', 'generation_config.json', 'chat_template.jinja',
];

const DTYPE_NAMES: Record<ComputeDtype, string> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' };

/** Checks the output folder: refuses a non-empty one without force, and one that is or holds an input (by device + inode). */
export function prepareOutputDir(out: string, force: boolean, inputs: readonly string[]): string {
  const dir = resolve(out);
  assertOutputFolderNotInput(dir, inputs);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new UsageError(`${dir} exists and is not a folder`);
    if (readdirSync(dir).length > 0 && !force) throw new UsageError(`output folder ${dir} is not empty; pass --force to overwrite it`);
  }
  return dir;
}

/**
 * A float tensor of an input, as a zero-copy view of its mapping. The merge kernels
 * read it with pread and refuse it (naming file and tensor) when it holds NaN or
 * ±Inf, in the same pass as the merge (docs/design.md §11); `checkFinite` scans it
 * here first, for the other uses.
 */
export function tensorInput(ck: Checkpoint, name: string, checkFinite = false): TensorInput {
  const { file, info } = ck.locate(name);
  if (!isComputeDtype(info.dtype)) throw new Error(`internal: ${name} is not a float tensor`);
  if (checkFinite) file.assertFinite(name);
  return { data: file.bytes(name), dtype: info.dtype };
}

/** c_k = 1/‖F_k‖ over every merged tensor of model k (Fisher normalisation). */
async function fisherScales(plan: MergePlan): Promise<number[]> {
  const normalize = plan.tensors.some((t) => t.kind === 'merge' && t.params.normalize_fisher === true);
  if (!normalize) return plan.fishers.map(() => 1);
  const scales: number[] = [];
  for (const f of plan.fishers) {
    let ss = 0;
    for (const t of plan.tensors) {
      if (t.kind !== 'merge') continue;
      ss += await sumOfSquares(tensorInput(f, t.name, true));
    }
    if (!(ss > 0)) throw new UsageError(`${f.path}: the Fisher is zero everywhere; it cannot be normalised`);
    scales.push(1 / Math.sqrt(ss));
  }
  return scales;
}

/**
 * Copies config.json (with the output dtype, and `edits` such as a restacked layer
 * count) and the tokenizer files of `src` into `out`, each atomically.
 */
export function copySideFiles(src: string, out: string, dtype: ComputeDtype | undefined, edits: Readonly<Record<string, unknown>> = {}): void {
  const cfgPath = join(src, 'config.json');
  if (existsSync(cfgPath)) {
    const cfg = { ...readJsonObjectFile(cfgPath, 'config.json') };
    for (const [k, v] of Object.entries(edits)) if (k in cfg) cfg[k] = v;
    if (dtype) {
      if ('torch_dtype' in cfg || !('dtype' in cfg)) cfg.torch_dtype = DTYPE_NAMES[dtype];
      if ('dtype' in cfg) cfg.dtype = DTYPE_NAMES[dtype];
    }
    writeFileAtomic(join(out, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
  }
  for (const f of SIDE_FILES) {
    const p = join(src, f);
    if (existsSync(p)) writeFileAtomic(join(out, f), readRegularFile(p, f));
  }
}

/** The merge config as YAML (mergekit's shape), saved beside the output for reproducibility. */
export function configYaml(c: MergeConfig): string {
  const params = (p: Readonly<Record<string, unknown>>) => (Object.keys(p).length ? { parameters: p } : {});
  return toYaml({
    merge_method: c.method,
    ...(c.base ? { base_model: c.base } : {}),
    ...(c.slices && c.slices.length > 0
      ? { slices: c.slices.map((s) => ({ sources: s.sources.map((src) => ({ model: src.path, layer_range: [...src.layerRange], ...params(src.parameters) })), ...params(s.parameters) })) }
      : { models: c.models.map((m) => ({ model: m.path, ...params(m.parameters), ...(m.fisher ? { fisher: m.fisher } : {}) })) }),
    ...params(c.parameters),
    ...(c.dtype ? { dtype: DTYPE_NAMES[c.dtype] } : {}),
    ...(c.outDtype ? { out_dtype: DTYPE_NAMES[c.outDtype] } : {}),
    ...(c.tokenizerSource ? { tokenizer_source: c.tokenizerSource } : {}),
    seed: c.seed,
  });
}

/** Removes weight files of an earlier output that the new one does not have. */
export function removeStaleWeights(out: string, keep: readonly string[]): void {
  for (const f of readdirSync(out)) {
    if ((f.endsWith('.safetensors') || f === INDEX_FILE) && !keep.includes(f)) unlinkSync(join(out, f));
  }
}

/** Merges (or copies) tensor t into its slot. */
async function mergeOne(plan: MergePlan, t: TensorPlan, writer: CheckpointWriter, fisherScale: number[], device: Device,
  threads: number | undefined): Promise<void> {
  const shard = writer.fileFor(t.name);
  const ckOf = (model: number) => (model < 0 ? plan.base! : plan.models[model]!);
  const input = (model: number, name: string): TensorInput => {
    const ck = ckOf(model);
    return ck instanceof LoraAdapter ? ck.tensor(name) : tensorInput(ck, name);
  };
  if (t.kind === 'copy') {
    const from = ckOf(t.copyFrom.model);
    const { file } = (from instanceof LoraAdapter ? from.base : from).locate(t.copyFrom.name);
    shard.copyFrom(t.name, file.bytes(t.copyFrom.name));
    return;
  }
  const inputs: MethodInputs = {
    base: t.baseName !== undefined ? tensorInput(plan.base!, t.baseName) : undefined,
    // vocabulary rows that differ from the output's: read with the output's rows (plan.ts, io/vocab_rows.ts)
    models: t.sources.map((s, j) => fitSourceInput(t, j, input(s.model, s.name), () => input(t.copyFrom.model, t.copyFrom.name))),
    fishers: plan.fishers.map((f, k) => fitFisherInput(t, k, tensorInput(f, t.name))),
    fisherScale,
    seed: plan.config.seed,
    ...(threads !== undefined ? { threads } : {}),
  };
  const req = await plan.descriptor.request(t, inputs, { kind: 'writer', writer: shard, tensor: t.name });
  await mergeTensor({ ...req, device, ...(threads !== undefined ? { threads } : {}) });
}

/** Refuses to publish a merge whose inputs changed or were replaced while it read them. */
function checkInputsUnchanged(plan: MergePlan): void {
  for (const ck of [...(plan.base ? [plan.base] : []), ...plan.models, ...plan.fishers]) {
    for (const f of ck.files) f.checkUnchanged();
  }
}

export async function runMerge(config: MergeConfig, opts: MergeRunOptions): Promise<MergeResult> {
  const inputs = [...(config.base ? [config.base] : []), ...config.models.flatMap((m) => [m.path, ...(m.fisher ? [m.fisher] : [])])];
  const out = prepareOutputDir(opts.out, opts.force === true, inputs);
  if (opts.threads !== undefined) {
    if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new UsageError(`threads must be a positive integer, got ${opts.threads}`);
    addon().setThreads(opts.threads);
  }
  const plan = buildPlan(config);
  // Written into a staging folder beside `out`, moved into place when complete.
  let staged: StagedFolder | undefined;
  let writer: CheckpointWriter | undefined;
  try {
    staged = StagedFolder.create(out);
    // config and tokenizer first: a bad config.json is reported before the long part
    const layerEdits = plan.layerCount !== undefined ? { num_hidden_layers: plan.layerCount, n_layer: plan.layerCount, num_layers: plan.layerCount } : {};
    copySideFiles(plan.reference.dir, staged.dir, outputDtype(config), layerEdits);
    const device = opts.device ?? 'cpu';
    const fisherScale = await fisherScales(plan);
    writer = new CheckpointWriter(staged.dir, plan.outputSpecs, {
      ...(opts.shardSize !== undefined ? { shardSize: opts.shardSize } : {}),
      metadata: { format: 'pt', merge_method: config.method, merged_by: 'dfmerge' },
    });
    const total = plan.inputBytes + plan.outputBytes;
    const progress = new Progress({ label: `merge ${config.method}`, total, unit: 'bytes', quiet: opts.quiet === true });
    let done = 0;
    // Two tensors in flight: tensor t + 1 is submitted before t is awaited, so the
    // native jobs follow each other without waiting on this thread in between
    // (they run one at a time on the compute thread, in order: docs/design.md §11).
    // Each finished tensor but the last is handed to the kernel's writeback while
    // the next one is merged, so the shards' fsync at the end finds little left
    // to write (warm task arithmetic 0.51 -> 0.42 s).
    const shards = writer;
    const last = plan.tensors.length - 1;
    const settle = async (i: number, run: Promise<void>): Promise<void> => {
      await run;
      const t = plan.tensors[i]!;
      if (i < last) shards.fileFor(t.name).startWriteback(t.name);
      done += t.ioBytes;
      progress.tick(t.ioBytes, t.name);
      opts.onTensor?.(t.name, done, total);
    };
    const inFlight: Promise<void>[] = [];
    try {
      for (const [i, t] of plan.tensors.entries()) {
        const run = mergeOne(plan, t, shards, fisherScale, device, opts.threads);
        run.catch(() => { /* awaited below, or after a failure before it */ });
        inFlight.push(run);
        if (i > 0) await settle(i - 1, inFlight.shift()!);
      }
      if (inFlight.length > 0) await settle(last, inFlight.shift()!);
    } catch (e) {
      // a tensor still being written must end before the shards are aborted below
      await Promise.allSettled(inFlight);
      throw e;
    }
    const files = writer.finish();
    writer = undefined;
    progress.finish();
    const yaml = configYaml(config);
    writeFileAtomic(join(staged.dir, 'dfmerge.yaml'), yaml);
    writeFileAtomic(join(staged.dir, 'README.md'), modelCard(config, plan.descriptor, yaml));
    checkInputsUnchanged(plan);
    staged.commit();
    return { out, files, inputBytes: plan.inputBytes, outputBytes: plan.outputBytes, seconds: progress.seconds };
  } catch (e) {
    throw staged?.explain(e) ?? e;
  } finally {
    writer?.abort();
    staged?.abort();
    plan.close();
  }
}
