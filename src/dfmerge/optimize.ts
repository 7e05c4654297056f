/**
 * The DF-Merge loop (docs/design.md §1): a Gaussian-process Bayesian optimiser proposes
 * λ ∈ [lo, hi]^M; each λ is evaluated (Fisher at the scaled models, Fisher-weighted
 * merge, validation accuracy: objective.ts); every evaluation is journalled as it
 * completes, so an interrupted run resumes where it stopped; at the end the best
 * λ is merged again and written as a complete checkpoint with a report.
 */
import { effectiveDelimiter, type PromptOptions } from '../eval/prompt_options.js';
import type { Scoring } from '../eval/accuracy.js';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { BayesianOptimizer } from '../bo/optimizer.js';
import type { FisherMode } from '../fisher/fisher.js';
import { runMerge } from '../merge/run.js';
import { validateConfig, type MergeConfig } from '../merge/config.js';
import type { ComputeDtype } from '../native/addon.js';
import { baselineRows, row, tunedBaselineRows } from './baselines.js';
import { evaluatorScript, runEvaluator, EvaluatorError } from './evaluator.js';
import { checkpointFingerprint } from './fingerprint.js';
import { removeOnAbnormalExit } from '../io/cleanup.js';
import { removeDeadLeftovers, temporarySibling } from '../io/leftovers.js';
import { assertOutputFolderNotInput, sameFile } from '../io/paths.js';
import { StagedFolder } from '../io/staging.js';
import { Journal, type JournalEvaluation } from './journal.js';
import { DfMergeObjective, type EvaluationProgress } from './objective.js';
import { FisherGrid, GRID_INTERPOLATIONS, gridPoints, type GridInterpolation } from './fisher_grid.js';
import { markdownReport, objectiveSvg, type Report, type ReportRow } from './report.js';
import { saveFlatCheckpoint } from './save.js';
import { flatSource } from '../model/runtime.js';
import { loadSetup, type DfSetup, type TaskFiles } from './setup.js';

export interface OptimizeOptions {
  base: string;
  models: readonly string[];
  /** One entry per model: its task's validation file (and optional test / Fisher-sample files). */
  tasks: readonly TaskFiles[];
  /** Where the best merge is written (a complete checkpoint folder, plus the report). */
  out: string;
  /** Run journal (default: `<out>.journal.jsonl`). */
  journal?: string;
  resume?: boolean;
  /** Overwrite a non-empty output folder. */
  force?: boolean;
  initPoints?: number;
  iterations?: number;
  acquisition?: 'ei' | 'ucb';
  xi?: number;
  kappa?: number;
  kernel?: 'ard' | 'isotropic';
  bounds?: readonly [number, number];
  fisherSamples?: number;
  fisherMode?: FisherMode;
  /** --fisher-grid K: F_i computed at K fixed λ per model and interpolated (undefined: exact, every evaluation). */
  fisherGrid?: number;
  fisherGridInterpolation?: GridInterpolation;
  validationFraction?: number;
  /** The --no-fisher ablation: task arithmetic with per-task λ tuned by BO. */
  noFisher?: boolean;
  seed?: number;
  /** External evaluator command with {dir}; scores come from its stdout. */
  evaluator?: string;
  /** Seconds before an external evaluation is killed and journalled as failed (0: no limit). */
  evaluatorTimeout?: number;
  dtype?: ComputeDtype;
  shardSize?: number;
  /** How task files become prompts (as `dfmerge eval`'s --delimiter, --truncate, --chat-template) and how choices are ranked. */
  prompts?: PromptOptions;
  scoring?: Scoring;
  /** Compute the comparison rows (base, fine-tuned, task arithmetic, TIES, Fisher merging). Default true. */
  baselines?: boolean;
  /** Also tune TIES and DARE (λ per model, density) with this run's optimiser and budget (fair rows; costs 2× the run's evaluations). */
  tunedBaselines?: boolean;
  onEvaluation?: (e: JournalEvaluation, best: JournalEvaluation | undefined, total: number) => void;
  /** Progress inside one evaluation (Fisher examples, then validation examples). */
  onProgress?: EvaluationProgress;
  log?: (message: string) => void;
  /** CLI use: on Ctrl-C, remove the scratch folder, say how to resume, exit 130 (the journal is already safe). */
  exitOnInterrupt?: boolean;
}

export interface OptimizeResult {
  history: JournalEvaluation[];
  best: JournalEvaluation;
  out: string;
  journal: string;
  report: Report;
  files: string[];
}

type Defaulted = 'initPoints' | 'iterations' | 'acquisition' | 'xi' | 'kappa' | 'kernel' | 'bounds' | 'fisherSamples' | 'fisherMode' | 'validationFraction' | 'noFisher' | 'seed';
type Resolved = OptimizeOptions & Required<Pick<OptimizeOptions, Defaulted>>;

/** The paper's settings: 10 random initial points then 50 BO iterations, EI with ξ = 0.01, N = 30 Fisher examples. */
export const OPTIMIZE_DEFAULTS: Required<Pick<OptimizeOptions, Defaulted>> = {
  initPoints: 10, iterations: 50, acquisition: 'ei', xi: 0.01, kappa: 2.576, kernel: 'ard',
  bounds: [0, 1], fisherSamples: 30, fisherMode: 'expected', validationFraction: 1, noFisher: false, seed: 0,
};

function sha256File(p: string): string {
  return createHash('sha256').update(readFileSync(p)).digest('hex');
}

/** The part of the configuration a journal must match to be resumed (iterations may grow); models by content, not only path. */
function journalConfig(o: Resolved): Record<string, unknown> {
  return {
    base: checkpointFingerprint(o.base),
    models: o.models.map((m) => checkpointFingerprint(m)),
    dtype: o.dtype ?? null,
    tasks: o.tasks.map((t) => ({
      validation: { path: resolve(t.validation), sha256: sha256File(t.validation) },
      ...(t.fisher ? { fisher: { path: resolve(t.fisher), sha256: sha256File(t.fisher) } } : {}),
    })),
    initPoints: o.initPoints, acquisition: o.acquisition, xi: o.xi, kappa: o.kappa, kernel: o.kernel, bounds: [...o.bounds],
    fisherSamples: o.noFisher ? null : o.fisherSamples, fisherMode: o.noFisher ? null : o.fisherMode,
    ...(o.fisherGrid !== undefined && !o.noFisher ? { fisherGrid: o.fisherGrid, fisherGridInterpolation: o.fisherGridInterpolation ?? 'linear' } : {}),
    validationFraction: o.validationFraction, noFisher: o.noFisher, seed: o.seed, evaluator: o.evaluator ?? null,
    // the prompts as built (the effective delimiter: its default changed to lm-eval's " ") and a non-default scoring change the objective
    prompts: { delimiter: effectiveDelimiter(o.prompts ?? {}), truncate: o.prompts?.truncate === true, chatTemplate: o.prompts?.chatTemplate === true },
    ...(o.scoring && o.scoring !== 'mean' ? { scoring: o.scoring } : {}),
  };
}

function checkOptions(o: Resolved): void {
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new UsageError(`${name} must be an integer ≥ ${min}, got ${v}`);
  };
  int('initial points', o.initPoints, 1);
  int('iterations', o.iterations, 0);
  int('Fisher samples', o.fisherSamples, 1);
  if (o.fisherGrid !== undefined) {
    int('Fisher grid points', o.fisherGrid, 2);
    if (o.noFisher) throw new UsageError('--fisher-grid has no use with --no-fisher (no Fisher is computed)');
  }
  if (o.fisherGridInterpolation !== undefined && !GRID_INTERPOLATIONS.includes(o.fisherGridInterpolation)) {
    throw new UsageError(`Fisher grid interpolation must be one of ${GRID_INTERPOLATIONS.join(', ')}, got ${String(o.fisherGridInterpolation)}`);
  }
  int('seed', o.seed, 0);
  if (!(Number.isFinite(o.xi) && o.xi >= 0)) throw new UsageError(`--xi (EI exploration margin) must be ≥ 0, got ${o.xi}`);
  if (!(Number.isFinite(o.kappa) && o.kappa >= 0)) throw new UsageError(`--kappa (UCB exploration weight) must be ≥ 0, got ${o.kappa}`);
  if (!(o.validationFraction > 0 && o.validationFraction <= 1)) throw new UsageError(`--validation-fraction must be in (0, 1], got ${o.validationFraction}`);
  if (o.evaluator !== undefined) evaluatorScript(o.evaluator);  // refuses a command without {dir} before any work
  const [lo, hi] = o.bounds;
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) throw new UsageError(`--bounds must be lo < hi, got [${lo}, ${hi}]`);
  if (o.models.length !== o.tasks.length) {
    throw new UsageError(`${o.models.length} models but ${o.tasks.length} task files: give one --task per --model, in the same order`);
  }
  const taskFiles: string[] = [];
  for (const t of o.tasks) {
    for (const f of [t.validation, t.test, t.fisher]) {
      if (f === undefined) continue;
      if (!existsSync(f)) throw new UsageError(`task file ${f} does not exist`);
      taskFiles.push(f);
    }
  }
  const out = resolve(o.out);
  const inputs = [o.base, ...o.models, ...taskFiles];
  assertOutputFolderNotInput(out, inputs);
  const journal = resolve(o.journal ?? `${out}.journal.jsonl`);
  for (const i of inputs) {
    if (sameFile(i, journal)) throw new UsageError(`--journal ${journal} is the input ${i}; choose another journal file`);
  }
  if (existsSync(out) && !statSync(out).isDirectory()) throw new UsageError(`--out ${out} exists and is not a folder`);
  if (existsSync(out) && readdirSync(out).length > 0 && !o.force && !o.resume) {
    throw new UsageError(`output folder ${out} is not empty; pass --force to overwrite it (or --resume to continue the run that writes it)`);
  }
}

export async function optimize(options: OptimizeOptions): Promise<OptimizeResult> {
  const o: Resolved = { ...OPTIMIZE_DEFAULTS, ...options };
  checkOptions(o);
  const log = o.log ?? (() => {});
  const out = resolve(o.out);
  const journalPath = resolve(o.journal ?? `${out}.journal.jsonl`);
  const started = performance.now();
  const bounds = o.models.map(() => [o.bounds[0], o.bounds[1]] as [number, number]);
  // Without Fisher and with an external evaluator the native runtime is not needed:
  // candidates are streamed through the merge engine, so any architecture works.
  const runtimeFree = o.noFisher && o.evaluator !== undefined;
  const setup: DfSetup | undefined = runtimeFree ? undefined : loadSetup({
    base: o.base, models: o.models, tasks: o.tasks, fisherSamples: o.fisherSamples,
    validationFraction: o.validationFraction, seed: o.seed, needFisher: !o.noFisher,
    ...(o.prompts ? { prompts: o.prompts } : {}), ...(o.scoring ? { scoring: o.scoring } : {}),
  });
  const taskNames = o.tasks.map((t) => basename(t.validation).replace(/\.[^.]*$/, ''));
  mkdirSync(dirname(out), { recursive: true });
  removeDeadLeftovers(dirname(out), basename(out));  // scratch and staging folders of killed runs
  mkdirSync(dirname(journalPath), { recursive: true });
  const journal = Journal.open(journalPath, journalConfig(o), o.resume === true);
  // the grid (when asked for) is built or reused only once the journal is ours
  let grid: FisherGrid | undefined;
  if (setup && o.fisherGrid !== undefined) {
    const points = gridPoints(o.fisherGrid, o.bounds);
    log(`Fisher grid: ${setup.models.length} models × λ ∈ {${points.map((x) => x.toFixed(3)).join(', ')}} (${o.fisherGridInterpolation ?? 'linear'} interpolation), in ${journalPath}.fisher-grid`);
    grid = await FisherGrid.open(setup, {
      dir: `${journalPath}.fisher-grid`, points, interpolation: o.fisherGridInterpolation ?? 'linear', fisherMode: o.fisherMode,
      onProgress: (done, total, detail) => o.onProgress?.('fisher', done, total, `grid: ${detail}`),
    });
  }
  const objective = setup ? new DfMergeObjective(setup, { fisher: !o.noFisher, fisherMode: o.fisherMode, ...(grid ? { grid } : {}) }) : undefined;
  if (objective && o.onProgress) objective.onProgress = o.onProgress;
  const scratchRoot = temporarySibling(out, 'candidates');
  mkdirSync(scratchRoot);
  const scratchDone = removeOnAbnormalExit(scratchRoot);
  const onInterrupt = () => {
    rmSync(scratchRoot, { recursive: true, force: true });
    process.stderr.write(`\ninterrupted after ${journal.evaluations.length} evaluations; every finished one is in ${journalPath}. Run the same command with --resume to continue.\n`);
    process.exit(130);
  };
  if (o.exitOnInterrupt) process.once('SIGINT', onInterrupt);
  try {
    const bo = new BayesianOptimizer({ bounds, seed: o.seed, nInitial: o.initPoints, acquisition: o.acquisition, xi: o.xi, kappa: o.kappa, kernel: o.kernel });
    for (const e of journal.evaluations) {
      if (e.failed || e.objective === null) bo.observeFailure(e.lambda);
      else bo.observe(e.lambda, e.objective);
    }
    if (journal.evaluations.length > 0) log(`resuming: ${journal.evaluations.length} evaluations already in ${journalPath}`);
    const total = o.initPoints + o.iterations;

    /** The (emptied) folder a candidate merge is written to for the external evaluator. */
    const freshCandidateDir = (): string => {
      const dir = join(scratchRoot, 'candidate');
      rmSync(dir, { recursive: true, force: true });
      return dir;
    };

    /** Scores of one candidate λ: native validation accuracy, or the external evaluator's. */
    const evaluate = async (lambda: number[]): Promise<Omit<JournalEvaluation, 'type' | 'index' | 'phase' | 'finished'>> => {
      const t0 = performance.now();
      const seconds = { fisher: 0, merge: 0, eval: 0, total: 0 };
      try {
        let scores: Record<string, number>;
        if (objective && setup) {
          const { merged, timings } = await objective.merge(lambda);
          seconds.fisher = timings.fisherSeconds;
          seconds.merge = timings.mergeSeconds;
          const t1 = performance.now();
          if (o.evaluator) {
            const dir = freshCandidateDir();
            await saveFlatCheckpoint(setup.rt, merged, o.base, dir, o.dtype ? { dtype: o.dtype } : {});
            scores = await runEvaluator(o.evaluator, dir, { timeoutSeconds: o.evaluatorTimeout ?? 0 });
          } else {
            const r = await objective.evaluateMerged(setup.validation);
            scores = Object.fromEntries(r.tasks.map((t) => [t.task, t.accuracy]));
          }
          seconds.eval = (performance.now() - t1) / 1000;
        } else {
          const dir = freshCandidateDir();
          const t1 = performance.now();
          await runMerge(taskArithmeticConfig(o, lambda), { out: dir, quiet: true, force: true });
          seconds.merge = (performance.now() - t1) / 1000;
          const t2 = performance.now();
          scores = await runEvaluator(o.evaluator!, dir, { timeoutSeconds: o.evaluatorTimeout ?? 0 });
          seconds.eval = (performance.now() - t2) / 1000;
        }
        const named = taskNames.filter((t) => Object.hasOwn(scores, t));
        const values = named.length > 0 ? named.map((t) => scores[t]!) : Object.values(scores);
        seconds.total = (performance.now() - t0) / 1000;
        return { lambda, scores, objective: values.reduce((a, b) => a + b, 0) / values.length, failed: false, seconds };
      } catch (e) {
        if (!(e instanceof EvaluatorError)) throw e;
        seconds.total = (performance.now() - t0) / 1000;
        log(`evaluation of λ=[${lambda.map((x) => x.toFixed(3)).join(', ')}] failed: ${e.message}`);
        return { lambda, scores: {}, objective: null, failed: true, error: `${e.message}\n${e.stderr.slice(-4000)}`, seconds };
      }
    };

    while (journal.evaluations.length < total) {
      const index = journal.evaluations.length;
      const lambda = bo.suggest();
      const r = await evaluate(lambda);
      const rec: JournalEvaluation = { type: 'evaluation', index, ...r, phase: index < o.initPoints ? 'initial' : 'bo', finished: new Date().toISOString() };
      journal.append(rec);
      if (rec.failed || rec.objective === null) bo.observeFailure(lambda);
      else bo.observe(lambda, rec.objective);
      o.onEvaluation?.(rec, bestOf(journal.evaluations), total);
    }
    const best = bestOf(journal.evaluations);
    if (!best) throw new UsageError(`every one of the ${journal.evaluations.length} evaluations failed; see ${journalPath} for the evaluator's errors`);

    // The best λ, merged again and saved (the paper's code never saves it).
    log(`writing the best merge (λ = [${best.lambda.map((x) => x.toFixed(3)).join(', ')}]) to ${out}`);
    // the folder appears complete (weights, config, tokenizer, report) or not at all
    const staged = StagedFolder.create(out);
    try {
      const outDir = staged.dir;
      let files: string[];
      const rows: ReportRow[] = [];
      if (objective && setup) {
        // The baselines use the objective's buffer: they come first, then the best λ is merged into it.
        if (o.baselines !== false) rows.push(...await baselineRows(objective, setup, log));
        if (o.baselines !== false && o.tunedBaselines) {
          rows.push(...await tunedBaselineRows(objective, setup, {
            bo: { seed: o.seed, nInitial: o.initPoints, acquisition: o.acquisition, xi: o.xi, kappa: o.kappa, kernel: o.kernel },
            bounds: o.bounds, evaluations: total,
          }, log));
        }
        const { merged } = await objective.merge(best.lambda);
        const name = o.noFisher ? 'DF-Merge --no-fisher (task arithmetic, λ by BO)' : 'DF-Merge';
        rows.push(await row(objective, setup, name, flatSource(merged)));
        files = await saveFlatCheckpoint(setup.rt, merged, o.base, outDir, { ...(o.dtype ? { dtype: o.dtype } : {}), ...(o.shardSize ? { shardSize: o.shardSize } : {}), metadata: { merge_method: o.noFisher ? 'dfmerge_no_fisher' : 'dfmerge', dfmerge_lambda: JSON.stringify(best.lambda) } });
      } else {
        const r = await runMerge(taskArithmeticConfig(o, best.lambda), { out: outDir, quiet: true, force: true, ...(o.shardSize ? { shardSize: o.shardSize } : {}) });
        files = r.files;
        rows.push({ name: 'DF-Merge --no-fisher (external evaluator)', validation: best.scores });
      }
      const report: Report = {
        tasks: taskNames, rows, evaluations: journal.evaluations.length, seconds: (performance.now() - started) / 1000,
        best: { lambda: best.lambda, objective: best.objective!, evaluation: best.index },
      };
      writeFileSync(join(outDir, 'dfmerge-report.md'), markdownReport(report));
      writeFileSync(join(outDir, 'dfmerge-report.json'), JSON.stringify({ ...report, history: journal.evaluations }, null, 2) + '\n');
      writeFileSync(join(outDir, 'dfmerge-objective.svg'), objectiveSvg(journal.evaluations, o.initPoints));
      staged.commit();
      return { history: [...journal.evaluations], best, out, journal: journalPath, report, files };
    } finally {
      staged.abort();
    }
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    grid?.close();
    setup?.close();
    journal.close();
    rmSync(scratchRoot, { recursive: true, force: true });
    scratchDone();
  }
}

/** θ_pre + Σ λ_i τ_i as a streaming merge (the --no-fisher merge when the native runtime is not used). */
function taskArithmeticConfig(o: Resolved, lambda: readonly number[]): MergeConfig {
  return validateConfig({
    method: 'task_arithmetic', base: o.base, models: o.models.map((p, i) => ({ path: p, parameters: { weight: lambda[i]! } })),
    parameters: {}, seed: 0, ...(o.dtype ? { dtype: o.dtype } : {}),
  });
}

function bestOf(evals: readonly JournalEvaluation[]): JournalEvaluation | undefined {
  let best: JournalEvaluation | undefined;
  for (const e of evals) if (!e.failed && e.objective !== null && (!best || e.objective > best.objective!)) best = e;
  return best;
}
