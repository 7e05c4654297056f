/**
 * Everything a DF-Merge run holds in memory: θ_pre and every θ_i as flat f32
 * arrays in the native runtime's parameter layout, one runtime (whose weights are
 * swapped between scaled models and merges), and the tokenized tasks.
 */
import { basename } from 'node:path';
import { CheckpointError, UsageError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { checkSameArchitecture } from '../merge/plan.js';
import { readModelConfig, type ModelConfig } from '../model/config.js';
import { LlamaRuntime } from '../model/runtime.js';
import { ModelTokenizer } from '../model/tokenizer.js';
import { loadTask, tokenizeTask, type TokenizedTask } from '../eval/task.js';
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
}

export interface DfSetup {
  config: ModelConfig;
  tokenizer: ModelTokenizer;
  rt: LlamaRuntime;
  /** θ_pre, flat. */
  base: Float32Array;
  /** θ_i, flat, in model order. */
  models: Float32Array[];
  modelNames: string[];
  validation: TokenizedTask[];
  test: TokenizedTask[] | undefined;
  fisherExamples: FisherExample[][];
}

const CONFIG_FIELDS = ['hidden', 'intermediate', 'heads', 'kvHeads', 'headDim', 'layers', 'vocab', 'rmsEps', 'ropeTheta', 'tieEmbeddings', 'attentionBias'] as const;

/** Reads a checkpoint's parameters into one flat array in the runtime's layout. */
export function loadFlat(rt: LlamaRuntime, dir: string): Float32Array {
  const flat = rt.newAccumulator();
  const ck = Checkpoint.open(dir);
  try {
    for (const p of rt.params) {
      if (!ck.has(p.name)) throw new CheckpointError(ck.path, 'TensorNotFound', `no tensor "${p.name}" (the model config needs it)`);
      const { file, info } = ck.locate(p.name);
      if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
        throw new CheckpointError(ck.path, 'ShapeMismatch', `tensor "${p.name}" has shape [${info.shape.join(', ')}], the base model has [${p.shape.join(', ')}]`);
      }
      flat.set(file.toFloat32(p.name), p.offset);
    }
  } finally {
    ck.close();
  }
  return flat;
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
  for (const m of o.models) {
    const c = readModelConfig(m);
    const diff = CONFIG_FIELDS.filter((f) => c[f] !== config[f]);
    if (diff.length > 0) {
      throw new CheckpointError(m, 'ModelMismatch', `does not share the base model's architecture (${diff.map((f) => `${f}: ${String(c[f])} vs base ${String(config[f])}`).join(', ')})`);
    }
  }
  const baseCk = Checkpoint.open(o.base);
  try {
    for (const m of o.models) {
      const ck = Checkpoint.open(m);
      try { checkSameArchitecture(baseCk, ck); } finally { ck.close(); }
    }
  } finally {
    baseCk.close();
  }
  const tokenizer = ModelTokenizer.load(o.base, config.vocab);
  // weights are set per evaluation; start from zeros
  const rt = LlamaRuntime.fromWeights(config, (_name, shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)), tokenizer);
  const base = loadFlat(rt, o.base);
  const models = o.models.map((m) => loadFlat(rt, m));
  const tokenized = (file: string) => tokenizeTask(loadTask(file), tokenizer, config.maxPositions);
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
  return { config, tokenizer, rt, base, models, modelNames: o.models.map((m) => basename(m)), validation, test, fisherExamples };
}
