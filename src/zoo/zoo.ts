/**
 * The self-made model zoo (issue 6): a character tokenizer, a tiny Llama base
 * model pre-trained on a mixed synthetic corpus, one expert per synthetic
 * multiple-choice task fine-tuned from it, and a multi-task model fine-tuned on
 * all tasks together (the upper bound merging is compared with). Everything is
 * seeded; the same options give the same files.
 *
 * Layout of DIR:
 *   tokenizer.json, tokenizer_config.json
 *   tasks/{train,validation,test}/<task>.jsonl   (a task is a file named after it, docs/design.md §2)
 *   base/, experts/<task>/, multitask/       (HF checkpoint folders)
 *   zoo.json                                 (ZooManifest, written last)
 * A model folder also holds zoo-model.json (the stage and configuration that
 * made it). An existing zoo whose manifest has the requested configuration is
 * reused as is; after an interrupted build, every model whose zoo-model.json
 * matches is reused and only the rest is trained.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { evaluateTasks } from '../eval/accuracy.js';
import { ZOO_DELIMITER } from './tasks.js';
import { loadTask, tokenizeTask, type TokenizedTask } from '../eval/task.js';
import { writeFileAtomic } from '../io/writer.js';
import { parseModelConfig, type ModelConfig } from '../model/config.js';
import { LlamaRuntime } from '../model/runtime.js';
import { ModelTokenizer } from '../model/tokenizer.js';
import { addon } from '../native/addon.js';
import { initialWeights } from '../train/init.js';
import { saveModel } from '../train/checkpoint.js';
import { choiceSequence, flatWeights, nextTokenSequence, train, type StepLog, type TrainSequence } from '../train/trainer.js';
import { makeCorpus } from './corpus.js';
import { TASKS, makeSplits, toJsonl } from './tasks.js';
import { SPECIAL_IDS, charTokenizerConfig, charTokenizerJson, charVocab, encodeChars } from './tokenizer.js';

export const ZOO_VERSION = 2;

export interface ZooModelShape {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  maxPositions: number;
  vocab: number;
}

export interface ZooStage {
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  weightDecay: number;
}

/** Everything that determines the zoo's files (compared to reuse a zoo). */
export interface ZooConfig {
  version: number;
  seed: number;
  fast: boolean;
  model: ZooModelShape;
  tasks: string[];
  splits: { train: number; validation: number; test: number };
  /** Pre-training corpus lines. */
  corpus: number;
  pretrain: ZooStage;
  expert: ZooStage;
  multitask: ZooStage;
}

export interface SplitAccuracy {
  validation: number;
  test: number;
}

/** DIR/zoo.json. Paths are relative to DIR (see resolveZoo for absolute ones). */
export interface ZooManifest {
  version: number;
  config: ZooConfig;
  tokenizer: string;
  /** Task name -> its split files and description, in the zoo's task order. */
  tasks: Record<string, { description: string; train: string; validation: string; test: string }>;
  models: {
    base: string;
    /** Task name -> expert folder. */
    experts: Record<string, string>;
    multitask: string;
  };
  /** Model ('base', 'multitask', or a task name for its expert) -> task -> accuracy. */
  accuracy: Record<string, Record<string, SplitAccuracy>>;
  /** Training record of each model (final loss, seconds). */
  training: Record<string, { steps: number; sequences: number; finalLoss: number; seconds: number; reused: boolean }>;
  seconds: number;
  created: string;
}

export interface BuildZooOptions {
  /** Output folder (created if needed). */
  out: string;
  /** Seed of everything (default 0). */
  seed?: number;
  /** The small configuration used by tests (well under a minute on 2 cores). */
  fast?: boolean;
  /** Override parts of the configuration (testing, experiments). */
  overrides?: Partial<Omit<ZooConfig, 'version' | 'seed' | 'fast'>>;
  /** Rebuild even when a matching zoo exists. */
  force?: boolean;
  /** Progress lines (default: none). */
  onProgress?: (line: string) => void;
  /** Model replicas for training (default: CPU count, at most 4). */
  replicas?: number;
}

export interface ZooBuild {
  dir: string;
  manifest: ZooManifest;
  /** True when an existing zoo was reused without training anything. */
  reused: boolean;
}

/** The configuration buildZoo uses for given options. */
export function zooConfig(seed = 0, fast = false, overrides: BuildZooOptions['overrides'] = {}): ZooConfig {
  const base: ZooConfig = fast
    ? {
      version: ZOO_VERSION, seed, fast,
      model: { hidden: 48, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, maxPositions: 32, vocab: 64 },
      tasks: [...TASKS.map((t) => t.name)],
      splits: { train: 800, validation: 100, test: 100 },
      corpus: 8000,
      pretrain: { steps: 800, batchSize: 16, lr: 4e-3, warmup: 50, weightDecay: 0.01 },
      expert: { steps: 250, batchSize: 16, lr: 3e-3, warmup: 20, weightDecay: 0.01 },
      multitask: { steps: 500, batchSize: 16, lr: 3e-3, warmup: 40, weightDecay: 0.01 },
    }
    : {
      version: ZOO_VERSION, seed, fast,
      model: { hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 192, maxPositions: 32, vocab: 64 },
      tasks: [...TASKS.map((t) => t.name)],
      splits: { train: 2000, validation: 200, test: 200 },
      corpus: 40000,
      pretrain: { steps: 3000, batchSize: 16, lr: 3e-3, warmup: 200, weightDecay: 0.01 },
      expert: { steps: 600, batchSize: 16, lr: 2e-3, warmup: 40, weightDecay: 0.01 },
      multitask: { steps: 1600, batchSize: 16, lr: 2e-3, warmup: 100, weightDecay: 0.01 },
    };
  return { ...base, ...overrides };
}

/** The model config of a zoo (HF Llama with GQA). */
export function zooModelConfig(m: ZooModelShape): ModelConfig {
  return parseModelConfig({
    architectures: ['LlamaForCausalLM'],
    hidden_size: m.hidden,
    intermediate_size: m.intermediate,
    num_attention_heads: m.heads,
    num_key_value_heads: m.kvHeads,
    num_hidden_layers: m.layers,
    vocab_size: m.vocab,
    max_position_embeddings: m.maxPositions,
    rms_norm_eps: 1e-5,
    rope_parameters: { rope_type: 'default', rope_theta: 10000 },
    tie_word_embeddings: false,
  });
}

/** A sub-seed for one purpose, from the zoo seed (FNV-1a of "seed:label"). */
export function subSeed(seed: number, label: string): number {
  let h = 0x811c9dc5;
  for (const c of `${seed}:${label}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

const key = (v: unknown): string => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** A manifest with absolute paths. */
export function resolveZoo(dir: string, m: ZooManifest): {
  tokenizer: string; base: string; multitask: string; experts: Record<string, string>;
  tasks: Record<string, { train: string; validation: string; test: string }>;
} {
  const abs = (p: string) => resolve(dir, p);
  return {
    tokenizer: abs(m.tokenizer),
    base: abs(m.models.base),
    multitask: abs(m.models.multitask),
    experts: Object.fromEntries(Object.entries(m.models.experts).map(([t, p]) => [t, abs(p)])),
    tasks: Object.fromEntries(Object.entries(m.tasks).map(([t, s]) => [t, { train: abs(s.train), validation: abs(s.validation), test: abs(s.test) }])),
  };
}

/** Reads DIR/zoo.json (undefined when absent or unreadable). */
export function readZooManifest(dir: string): ZooManifest | undefined {
  return readJson<ZooManifest>(join(dir, 'zoo.json'));
}

function modelComplete(dir: string): boolean {
  return ['config.json', 'tokenizer.json', 'model.safetensors'].every((f) => existsSync(join(dir, f)));
}

/** Builds the zoo in options.out, or reuses the one there when its configuration matches. */
export async function buildZoo(options: BuildZooOptions): Promise<ZooBuild> {
  const t0 = performance.now();
  const dir = resolve(options.out);
  const config = zooConfig(options.seed ?? 0, options.fast ?? false, options.overrides);
  const log = options.onProgress ?? (() => {});
  for (const t of config.tasks) {
    if (!TASKS.some((s) => s.name === t)) throw new UsageError(`unknown zoo task "${t}" (known: ${TASKS.map((s) => s.name).join(', ')})`);
  }
  if (config.tasks.length === 0) throw new UsageError('a zoo needs at least one task');

  const existing = readZooManifest(dir);
  if (!options.force && existing && key(existing.config) === key(config)) {
    const paths = resolveZoo(dir, existing);
    if ([paths.base, paths.multitask, ...Object.values(paths.experts)].every(modelComplete)) {
      log(`zoo: reusing ${dir} (seed ${config.seed}${config.fast ? ', fast' : ''})`);
      return { dir, manifest: existing, reused: true };
    }
  }
  mkdirSync(dir, { recursive: true });
  log(`zoo: building in ${dir} (seed ${config.seed}${config.fast ? ', fast' : ''}; ${config.tasks.length} tasks: ${config.tasks.join(', ')})`);

  // Tokenizer.
  const tokJson = charTokenizerJson();
  const tokCfg = charTokenizerConfig(config.model.maxPositions);
  writeFileAtomic(join(dir, 'tokenizer.json'), JSON.stringify(tokJson, null, 2) + '\n');
  writeFileAtomic(join(dir, 'tokenizer_config.json'), JSON.stringify(tokCfg, null, 2) + '\n');
  const vocab = charVocab();
  if (vocab.size > config.model.vocab) throw new UsageError(`the tokenizer has ${vocab.size} tokens, the model config only ${config.model.vocab}`);
  const tokenizer = ModelTokenizer.load(dir, config.model.vocab);
  const modelConfig = zooModelConfig(config.model);

  // Task splits.
  const tasks: ZooManifest['tasks'] = {};
  const tokenized: Record<string, { train: TokenizedTask; validation: TokenizedTask; test: TokenizedTask }> = {};
  for (const name of config.tasks) {
    const spec = TASKS.find((t) => t.name === name)!;
    const splits = makeSplits(spec, config.splits, subSeed(config.seed, `task:${name}`));
    const files = { train: '', validation: '', test: '' };
    for (const split of ['train', 'validation', 'test'] as const) {
      mkdirSync(join(dir, 'tasks', split), { recursive: true });
      const rel = join('tasks', split, `${name}.jsonl`);
      writeFileAtomic(join(dir, rel), toJsonl(splits[split]));
      files[split] = rel;
    }
    tasks[name] = { description: spec.description, ...files };
    const load = (split: 'train' | 'validation' | 'test') => {
      const t = tokenizeTask(loadTask(join(dir, files[split])), tokenizer, modelConfig.maxPositions, { delimiter: ZOO_DELIMITER });
      return { ...t, name };
    };
    tokenized[name] = { train: load('train'), validation: load('validation'), test: load('test') };
  }
  log(`zoo: tasks written (${config.splits.train} train / ${config.splits.validation} validation / ${config.splits.test} test examples each)`);

  // The flat parameter layout of this config (every model of the zoo shares it).
  const layout = LlamaRuntime.fromWeights(modelConfig, (_n, shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
  const training: ZooManifest['training'] = {};
  const accuracy: ZooManifest['accuracy'] = {};
  const evalSets = (split: 'validation' | 'test') => config.tasks.map((t) => tokenized[t]![split]);

  /** Trains (or reuses) one model folder; returns its flat weights. */
  const stage = async (label: string, rel: string, stageCfg: ZooStage, init: Float32Array, data: TrainSequence[], parentKey: string):
  Promise<{ theta: Float32Array; key: string }> => {
    const mdir = join(dir, rel);
    const stageKey = key({ config, label, parentKey });
    const rec = readJson<{ key: string; training: ZooManifest['training'][string] }>(join(mdir, 'zoo-model.json'));
    if (!options.force && rec?.key === stageKey && modelComplete(mdir)) {
      log(`zoo: ${label}: reusing ${mdir}`);
      const rt = LlamaRuntime.fromCheckpoint(mdir);
      training[label] = { ...rec.training, reused: true };
      return { theta: flatWeights(rt), key: stageKey };
    }
    const rt = LlamaRuntime.fromWeights(modelConfig, layout.tensorViews(init), tokenizer);
    let lastPrinted = 0;
    const every = Math.max(1, Math.floor(stageCfg.steps / 10));
    const res = await train(rt, data, {
      ...stageCfg,
      seed: subSeed(config.seed, `order:${label}`),
      clip: 1,
      replicas: options.replicas,
      onStep: (s: StepLog) => {
        if (s.step % every === 0 || s.step === s.steps) {
          log(`zoo: ${label}: step ${s.step}/${s.steps} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} (${(s.seconds - lastPrinted).toFixed(1)} s)`);
          lastPrinted = s.seconds;
        }
      },
    });
    const theta = flatWeights(rt);
    saveModel(mdir, {
      config: modelConfig, params: rt.params, theta, tokenizer: tokJson, tokenizerConfig: tokCfg,
      special: { bos: SPECIAL_IDS.bos, eos: SPECIAL_IDS.eos }, metadata: { 'dfmerge.zoo': label },
    });
    training[label] = { steps: res.steps, sequences: res.sequences, finalLoss: res.finalLoss, seconds: res.seconds, reused: false };
    writeFileSync(join(mdir, 'zoo-model.json'), JSON.stringify({ key: stageKey, label, stage: stageCfg, training: training[label] }, null, 2) + '\n');
    log(`zoo: ${label}: saved ${mdir} (final loss ${res.finalLoss.toFixed(4)}, ${res.seconds.toFixed(1)} s)`);
    return { theta, key: stageKey };
  };

  const evaluate = async (label: string, theta: Float32Array): Promise<void> => {
    const rt = LlamaRuntime.fromWeights(modelConfig, layout.tensorViews(theta), tokenizer);
    // One thread: a model this small is slower with more (and the numbers do not depend on it).
    const prevThreads = addon().buildInfo().threads;
    addon().setThreads(1);
    let val, test;
    try {
      val = await evaluateTasks(rt, evalSets('validation'));
      test = await evaluateTasks(rt, evalSets('test'));
    } finally {
      addon().setThreads(prevThreads);
    }
    accuracy[label] = Object.fromEntries(config.tasks.map((t, i) => [t, { validation: val.tasks[i]!.accuracy, test: test.tasks[i]!.accuracy }]));
    log(`zoo: ${label}: test accuracy ${config.tasks.map((t, i) => `${t} ${(100 * test.tasks[i]!.accuracy).toFixed(1)}%`).join(', ')}`);
  };

  // Base: pre-training from a seeded initialisation on the mixed corpus.
  const init = initialWeights(layout.params, layout.numParams, modelConfig.layers, subSeed(config.seed, 'init'));
  const corpus = makeCorpus(config.corpus, subSeed(config.seed, 'corpus'))
    .map((line) => nextTokenSequence(encodeChars(line, vocab, true)));
  const base = await stage('base', 'base', config.pretrain, init, corpus, 'init');
  await evaluate('base', base.theta);

  // Experts: one per task, fine-tuned from the base on the task's gold answers.
  const experts: Record<string, string> = {};
  for (const t of config.tasks) {
    const rel = join('experts', t);
    const data = tokenized[t]!.train.examples.map(choiceSequence);
    const e = await stage(t, rel, config.expert, base.theta, data, base.key);
    experts[t] = rel;
    await evaluate(t, e.theta);
  }

  // Multi-task: fine-tuned from the base on the union of the training splits.
  const all = config.tasks.flatMap((t) => tokenized[t]!.train.examples.map(choiceSequence));
  const mt = await stage('multitask', 'multitask', config.multitask, base.theta, all, base.key);
  await evaluate('multitask', mt.theta);

  const manifest: ZooManifest = {
    version: ZOO_VERSION,
    config,
    tokenizer: 'tokenizer.json',
    tasks,
    models: { base: 'base', experts, multitask: 'multitask' },
    accuracy,
    training,
    seconds: (performance.now() - t0) / 1000,
    created: new Date().toISOString(),
  };
  writeFileAtomic(join(dir, 'zoo.json'), JSON.stringify(manifest, null, 2) + '\n');
  log(`zoo: done in ${manifest.seconds.toFixed(1)} s`);
  return { dir, manifest, reused: false };
}
