/**
 * What a DF-Merge run holds (docs/design.md §5): θ_pre and every θ_i
 * as open, memory-mapped checkpoints read in their stored dtype (no f32
 * copies), one runtime whose parameters are re-bound between scaled models and
 * merges, and the tokenized tasks.
 */
import { basename } from 'node:path';
import { CheckpointError, UsageError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { checkSameArchitecture } from '../merge/plan.js';
import { readModelConfig, type ModelConfig } from '../model/config.js';
import { checkConfigAgainstCheckpoint } from '../model/check_weights.js';
import { LlamaRuntime, checkpointSource, type TensorSource } from '../model/runtime.js';
import type { ComputeDtype } from '../native/addon.js';
import { firstRows, fitRows, rowFitWarning, type RowFit } from '../io/vocab_rows.js';
import { ModelTokenizer } from '../model/tokenizer.js';
import { loadTask, tokenizeTask, type TokenizedTask } from '../eval/task.js';
import { tokenizeOptions, type PromptOptions } from '../eval/prompt_options.js';
import type { Scoring } from '../eval/accuracy.js';
import { drawFisherExamples, type FisherExample } from '../fisher/fisher.js';
import { Rng } from '../util/rng.js';

export interface TaskFiles {
  /** Validation JSONL of this model's task (the objective). */
  validation: string;
  /** Optional test JSONL (reported, never optimised on). */
  test?: string;
  /** Optional JSONL the Fisher samples are drawn from (default: the validation file). */
  fisher?: string;
}

export interface SetupOptions {
  base: string;
  models: readonly string[];
  tasks: readonly TaskFiles[];
  /** Fisher examples per task (paper: 30). */
  fisherSamples: number;
  /** Fraction of each validation set used for the objective (seeded subset; 1 = all). */
  validationFraction: number;
  seed: number;
  /** Whether Fisher information is needed (false for the --no-fisher ablation). */
  needFisher: boolean;
  /** Where warnings go (vocabulary rows that differ from the base's); default stderr. */
  warn?: (line: string) => void;
  /** How task files become prompts, as in `dfmerge eval` (delimiter, truncation, chat template). */
  prompts?: PromptOptions;
  /** How the objective ranks choices (default mean; the Fisher's ℓ is always the mean, docs/design.md §1). */
  scoring?: Scoring;
  /**
   * The weights were already scanned for NaN/±Inf by whoever dispatched this setup (a candidate job:
   * the coordinator scanned them once for the whole run, as an in-process run does), so each job
   * skips that extra pass over every model. Default: scanned.
   */
  finiteChecked?: boolean;
}

export interface DfSetup {
  config: ModelConfig;
  tokenizer: ModelTokenizer | undefined;
  rt: LlamaRuntime;
  /** θ_pre, mapped. */
  base: Checkpoint;
  /** θ_i, mapped, in model order. */
  models: Checkpoint[];
  /** The runtime's parameters read from θ_pre and from each θ_i (checked once, when opened). */
  baseSource: TensorSource;
  /**
   * θ_i with the base's shapes: where a fine-tune's vocabulary has more rows, a
   * zero-copy prefix; where it has fewer, a copy whose missing rows are the
   * base's (docs/design.md §10). Valid as `a` or `b` of a binding and as a merge input.
   */
  modelSources: TensorSource[];
  /**
   * θ_i as the `b` of a scaled view θ_pre + λ·(θ_i − θ_pre) only: zero-copy
   * always (a vocabulary with fewer rows is bound short; the runtime reads τ = 0
   * in the rows it lacks). Absent: modelSources serve.
   */
  scaledSources?: TensorSource[];
  modelNames: string[];
  validation: TokenizedTask[];
  test: TokenizedTask[] | undefined;
  /** How validation and test accuracy rank choices (default mean). */
  scoring?: Scoring;
  fisherExamples: FisherExample[][];
  /** Drops this process's resident pages of model i (they stay in the page cache; read again, they fault back in). */
  releaseModel(i: number): void;
  /** Unmaps the checkpoints (parameters still bound to them stay valid until re-bound). */
  close(): void;
}

/** Drops this process's resident pages of every tensor of a checkpoint. */
export function releaseCheckpoint(ck: Checkpoint): void {
  for (const name of ck.names) ck.locate(name).file.release(name);
}

// What every model must share with the base for one runtime to compute them all: the family, shapes and layer kinds.
// vocab_size may differ (the embedding and LM head rows are then checked and fitted, docs/design.md §10); rope
// settings are taken from the base (a fine-tune that extended its context is still evaluated with the base's).
const CONFIG_FIELDS = ['architecture', 'hidden', 'intermediate', 'heads', 'kvHeads', 'headDim', 'layers', 'rmsEps', 'ropeTheta', 'tieEmbeddings', 'attentionBias',
  'qkNorm', 'activation', 'normOffset', 'embedScale', 'postNorms', 'queryPreAttnScalar', 'attnSoftcap', 'finalSoftcap'] as const;

/** A fine-tune's parameters in their stored dtype, vocabulary tensors fitted to the base's rows (`full`) or left short (scaled views). */
function fineTuneSource(ck: Checkpoint, base: TensorSource, fits: ReadonlyMap<string, RowFit>, full: boolean): TensorSource {
  return (p) => {
    const { file, info } = ck.locate(p.name);
    const t = { data: file.bytes(p.name), dtype: info.dtype as ComputeDtype };
    const fit = fits.get(p.name);
    if (!fit) return t;
    if (fit.stored > fit.used || !full) return firstRows(t, Math.min(fit.stored, fit.used), fit.rowElements);
    return fitRows(t, fit, base(p));
  };
}

function subset<T>(items: readonly T[], fraction: number, seed: number): T[] {
  if (fraction >= 1) return [...items];
  const k = Math.max(1, Math.round(fraction * items.length));
  return new Rng(seed).sample(items.length, k).sort((a, b) => a - b).map((i) => items[i]!);
}

export function loadSetup(o: SetupOptions): DfSetup {
  if (o.models.length < 2) throw new UsageError('DF-Merge needs at least two fine-tuned models (--model, repeated)');
  if (o.tasks.length !== o.models.length) {
    throw new UsageError(`${o.models.length} models but ${o.tasks.length} validation task files: give one --task per model, in the same order`);
  }
  if (!(o.validationFraction > 0 && o.validationFraction <= 1)) throw new UsageError(`validation fraction must be in (0, 1], got ${o.validationFraction}`);
  const config = readModelConfig(o.base);
  const configs = o.models.map((m) => readModelConfig(m));
  for (const [i, m] of o.models.entries()) {
    const c = configs[i]!;
    const diff = CONFIG_FIELDS.filter((f) => c[f] !== config[f]);
    if (diff.length > 0) {
      throw new CheckpointError(m, 'ModelMismatch', `does not share the base model's architecture (${diff.map((f) => `${f}: ${String(c[f])} vs base ${String(config[f])}`).join(', ')})`);
    }
  }
  const opened: Checkpoint[] = [];
  const close = () => { for (const ck of opened) ck.close(); };
  try {
    const base = Checkpoint.open(o.base);
    opened.push(base);
    checkConfigAgainstCheckpoint(config, base);  // every tensor the config implies, nothing unused
    if (!o.finiteChecked) base.assertFinite();
    const warn = o.warn ?? ((line: string) => { process.stderr.write(line); });
    const fits: Map<string, RowFit>[] = [];
    const models = o.models.map((m, i) => {
      const ck = Checkpoint.open(m);
      opened.push(ck);
      const f = checkSameArchitecture(base, ck, 'model', true);
      for (const fit of f) warn(rowFitWarning(fit, ck.path, base.path));
      fits.push(new Map(f.map((fit) => [fit.name, fit])));
      checkConfigAgainstCheckpoint(configs[i]!, ck);  // and its own config.json describes its own weights (e.g. its vocab_size)
      if (!o.finiteChecked) ck.assertFinite();
      return ck;
    });
    const tokenizer = ModelTokenizer.load(o.base, config.vocab);
    const rt = LlamaRuntime.fromConfig(config, tokenizer);
    const baseSource = checkpointSource(base, rt.params);
    const modelSources = models.map((ck, i) => (fits[i]!.size === 0 ? checkpointSource(ck, rt.params) : fineTuneSource(ck, baseSource, fits[i]!, true)));
    const scaledSources = models.map((ck, i) => (fits[i]!.size === 0 ? modelSources[i]! : fineTuneSource(ck, baseSource, fits[i]!, false)));
    return {
      config, tokenizer, rt, base, models, baseSource, modelSources, scaledSources, modelNames: o.models.map((m) => basename(m)),
      ...loadTasks(o, tokenizer, config), ...(o.scoring ? { scoring: o.scoring } : {}), close, releaseModel: (i) => releaseCheckpoint(models[i]!),
    };
  } catch (e) {
    close();
    throw e;
  }
}

function loadTasks(o: SetupOptions, tokenizer: ModelTokenizer, config: ModelConfig): Pick<DfSetup, 'validation' | 'test' | 'fisherExamples'> {
  const options = tokenizeOptions(o.prompts, tokenizer);
  const tokenized = (file: string) => tokenizeTask(loadTask(file), tokenizer, config.maxPositions, options);
  const validationFull = o.tasks.map((t) => tokenized(t.validation));
  const seen = new Map<string, string>();
  for (const t of validationFull) {
    const prior = seen.get(t.name);
    if (prior) throw new UsageError(`two validation files are both named "${t.name}" (${prior}, ${t.file}); a task is named after its file, so rename one`);
    seen.set(t.name, t.file);
  }
  const validation = validationFull.map((t, i) => ({ ...t, examples: subset(t.examples, o.validationFraction, o.seed + 1000 + i) }));
  // test splits are reported under their validation task's name, whatever their files are called
  const test = o.tasks.every((t) => t.test) ? o.tasks.map((t, i) => ({ ...tokenized(t.test!), name: validationFull[i]!.name })) : undefined;
  const fisherExamples = o.needFisher
    ? o.tasks.map((t, i) => drawFisherExamples((t.fisher ? tokenized(t.fisher) : validationFull[i]!).examples, o.fisherSamples, o.seed + i))
    : o.tasks.map(() => []);
  return { validation, test, fisherExamples };
}
