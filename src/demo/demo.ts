/**
 * `dfmerge demo`: dfmerge's whole job on an embedded default. Builds (or reuses)
 * a small model zoo — a base model and four experts fine-tuned from it on
 * synthetic multiple-choice tasks that compete for capacity, plus a multi-task
 * model — then merges the experts with every method and DF-Merge, and prints the
 * per-task test accuracy table the paper shows.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { evaluateTasks } from '../eval/accuracy.js';
import { loadTask, tokenizeTask } from '../eval/task.js';
import { ZOO_DELIMITER, ZOO_PROMPTS } from '../zoo/tasks.js';
import { LlamaRuntime } from '../model/runtime.js';
import { JournalError, type JournalEvaluation } from '../dfmerge/journal.js';
import { optimize, type OptimizeOptions, type OptimizeResult } from '../dfmerge/optimize.js';
import { markdownTable, objectiveSvg, type ReportRow } from '../dfmerge/report.js';
import { buildZoo, resolveZoo } from '../zoo/zoo.js';

export interface DemoOptions {
  /** Zoo folder (built when missing or different, reused otherwise). */
  zoo: string;
  /** Where merges, journals and the report go. */
  out: string;
  seed: number;
  /** The small zoo and a short optimisation (tests). */
  fast: boolean;
  initPoints: number;
  iterations: number;
  fisherSamples: number;
  validationFraction: number;
  log: (line: string) => void;
  onEvaluation?: OptimizeOptions['onEvaluation'];
}

export interface DemoResult {
  tasks: string[];
  rows: ReportRow[];
  dfmerge: OptimizeResult;
  noFisher: OptimizeResult;
  seconds: { zoo: number; dfmerge: number; noFisher: number; total: number };
  reportPath: string;
}

/** Runs optimize(), resuming a finished or interrupted run of the same configuration and starting over otherwise. */
async function optimizeResuming(o: OptimizeOptions, log: (s: string) => void): Promise<OptimizeResult> {
  const journal = o.journal!;
  if (existsSync(journal)) {
    try {
      return await optimize({ ...o, resume: true, force: true });
    } catch (e) {
      if (!(e instanceof JournalError) || e.code !== 'ConfigChanged') throw e;
      log(`settings changed since ${journal} was written: starting that run over`);
      rmSync(journal);
    }
  }
  return optimize({ ...o, force: true });
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = performance.now();
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });

  o.log('== 1/4 model zoo: base model, four experts, multi-task model');
  const zoo = await buildZoo({ out: o.zoo, seed: o.seed, fast: o.fast, onProgress: o.log });
  o.log(zoo.reused ? `reusing the zoo in ${zoo.dir}` : `zoo built in ${zoo.manifest.seconds.toFixed(0)} s`);
  const z = resolveZoo(zoo.dir, zoo.manifest);
  const taskNames = Object.keys(z.tasks);
  const tZoo = performance.now();

  const common: OptimizeOptions = {
    base: z.base,
    models: taskNames.map((t) => z.experts[t]!),
    tasks: taskNames.map((t) => ({ validation: z.tasks[t]!.validation, test: z.tasks[t]!.test })),
    out: join(out, 'dfmerge'),
    journal: join(out, 'dfmerge.journal.jsonl'),
    initPoints: o.initPoints,
    iterations: o.iterations,
    fisherSamples: o.fisherSamples,
    validationFraction: o.validationFraction,
    seed: o.seed,
    prompts: ZOO_PROMPTS,
    log: o.log,
    ...(o.onEvaluation ? { onEvaluation: o.onEvaluation } : {}),
  };
  o.log(`== 2/4 DF-Merge: ${o.initPoints} random λ then ${o.iterations} Bayesian-optimisation steps, and the classic merges for comparison`);
  // TIES and DARE also get the same optimiser and budget over their own hyperparameters (fair rows).
  const df = await optimizeResuming({ ...common, tunedBaselines: true }, o.log);
  const tDf = performance.now();

  o.log('== 3/4 ablation --no-fisher: task arithmetic with one λ per expert tuned by the same optimiser');
  const nf = await optimizeResuming({ ...common, noFisher: true, baselines: false, out: join(out, 'no-fisher'), journal: join(out, 'no-fisher.journal.jsonl') }, o.log);
  const tNf = performance.now();

  o.log('== 4/4 multi-task model (upper bound)');
  const rt = LlamaRuntime.fromCheckpoint(z.multitask);
  const scores = async (split: 'validation' | 'test') => {
    const tasks = taskNames.map((t) => tokenizeTask(loadTask(z.tasks[t]![split]), rt.tokenizer!, rt.config.maxPositions, { delimiter: ZOO_DELIMITER }));
    const r = await evaluateTasks(rt, tasks);
    return Object.fromEntries(r.tasks.map((x) => [x.task, x.accuracy]));
  };
  const multitask: ReportRow = { name: 'multi-task training (upper bound)', validation: await scores('validation'), test: await scores('test') };

  const rows = [...df.report.rows, ...nf.report.rows, multitask];
  const tasks = df.report.tasks;
  const seconds = { zoo: (tZoo - t0) / 1000, dfmerge: (tDf - tZoo) / 1000, noFisher: (tNf - tDf) / 1000, total: (performance.now() - t0) / 1000 };
  const best = df.report.best;
  const md = [
    '# dfmerge demo',
    '',
    `Zoo: ${zoo.dir} (${taskNames.length} experts: ${taskNames.join(', ')}). DF-Merge: ${df.history.length} evaluations, best λ = [${best.lambda.map((x) => x.toFixed(3)).join(', ')}].`,
    `Time: zoo ${seconds.zoo.toFixed(0)} s, DF-Merge and baselines ${seconds.dfmerge.toFixed(0)} s, --no-fisher ${seconds.noFisher.toFixed(0)} s, total ${seconds.total.toFixed(0)} s.`,
    '',
    '## Test accuracy (%)',
    '',
    markdownTable(tasks, rows, 'test'),
    '',
    '## Validation accuracy (%) (the split DF-Merge optimises)',
    '',
    markdownTable(tasks, rows, 'validation'),
    '',
  ].join('\n');
  const reportPath = join(out, 'report.md');
  writeFileSync(reportPath, md);
  writeFileSync(join(out, 'report.json'), JSON.stringify({ tasks, rows, seconds, best, zoo: zoo.manifest }, null, 2) + '\n');
  writeFileSync(join(out, 'dfmerge-objective.svg'), objectiveSvg(df.history, o.initPoints));
  return { tasks, rows, dfmerge: df, noFisher: nf, seconds, reportPath };
}

export type { JournalEvaluation };
