/**
 * The DF-Merge loop (docs/design.md §1): a Gaussian-process Bayesian optimiser proposes
 * λ ∈ [lo, hi]^M; each λ is evaluated (Fisher at the scaled models, Fisher-weighted
 * merge, validation accuracy: objective.ts); every evaluation is journalled when
 * it is dispatched and when it completes, so an interrupted run resumes where it
 * stopped; at the end the best λ is merged again and written as a complete
 * checkpoint with a report.
 *
 * With `parallel` q > 1 (docs/design.md §8) evaluations run in synchronous
 * batches of q: the optimiser proposes q points at once (suggestBatch: kriging
 * believer), an executor runs them as jobs (`local` processes or `ray` jobs),
 * and their results are observed in index order once the batch is done, so the
 * proposals are a function of (seed, q, results) whatever order jobs finish in.
 */
import { effectiveDelimiter, type PromptOptions } from '../eval/prompt_options.js';
import type { Scoring } from '../eval/accuracy.js';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError, WriteError } from '../errors.js';
import { BayesianOptimizer } from '../bo/optimizer.js';
import type { FisherMode } from '../fisher/fisher.js';
import { runMerge } from '../merge/run.js';
import type { ComputeDtype } from '../native/addon.js';
import { baselineRows, row, tunedBaselineRows } from './baselines.js';
import { evaluatorScript } from './evaluator.js';
import { LM_EVAL, checkLmEvalPython, lmEvalLabels, type LmEvalOptions } from './evaluator_lm_eval.js';
import { scoreCandidate, taskArithmeticConfig, writeAtomically, type CandidateResult, type CandidateSpec, type EvaluatorSpec, type ScoreConfig } from './candidate.js';
import { defaultWorkerCommand, type EvaluationJob, type Executor, type JobOutcome } from './executor.js';
import { LocalExecutor } from './executor_local.js';
import { RayExecutor, RayJobsClient } from './executor_ray.js';
import { availableParallelism } from 'node:os';
import { checkpointFingerprint } from './fingerprint.js';
import { removeOnAbnormalExit } from '../io/cleanup.js';
import { removeDeadLeftovers, temporarySibling } from '../io/leftovers.js';
import { assertOutputFolderNotInput, sameFile } from '../io/paths.js';
import { StagedFolder } from '../io/staging.js';
import { Journal, hashConfig, type JournalEvaluation } from './journal.js';
import { DfMergeObjective, type EvaluationProgress } from './objective.js';
import { FisherGrid, GRID_INTERPOLATIONS, gridPoints, type GridInterpolation } from './fisher_grid.js';
import { markdownReport, objectiveSvg, type Report, type ReportRow } from './report.js';
import { saveFlatCheckpoint } from './save.js';
import { flatSource } from '../model/runtime.js';
import { loadSetup, type DfSetup, type SetupOptions, type TaskFiles } from './setup.js';

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
  /** External evaluator: a command with {dir} (scores from its stdout), or `lm-eval` (with `lmEval`). */
  evaluator?: string;
  /** Settings of `evaluator: 'lm-eval'`. */
  lmEval?: LmEvalOptions;
  /**
   * Seconds before an evaluation is stopped and journalled as failed (0: no limit): the
   * whole job (merge and evaluation) with an executor; in-process, the external evaluator.
   */
  evaluationTimeout?: number;
  /** The former name of evaluationTimeout (accepted; both given must agree). */
  evaluatorTimeout?: number;
  /** Evaluations in flight at once (synchronous batches of q; default 1). */
  parallel?: number;
  /** Who runs evaluations: in-process when q = 1 and none is named, else `local` (processes) or `ray`. */
  executor?: 'local' | 'ray';
  /** The Ray dashboard, http://HOST:8265 (executor `ray`). */
  rayAddress?: string;
  /** Resources Ray reserves for each job (entrypoint_num_cpus / entrypoint_num_gpus). */
  jobCpus?: number;
  jobGpus?: number;
  /** Ray runtime_env for each job. */
  rayRuntimeEnv?: Record<string, unknown>;
  /** Seconds between Ray status polls (default 1). */
  rayPollSeconds?: number;
  /** Shell words that run dfmerge where jobs run (default: this node and this dfmerge's bin). */
  workerCommand?: string;
  /** A folder both the coordinator and the workers see: candidate specs, merges and results go under it. */
  scratch?: string;
  /** Native threads of each worker (default: cores / q for local jobs, --job-cpus for Ray jobs, else all). */
  workerThreads?: number;
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
    ...(o.evaluator === LM_EVAL && o.lmEval ? {
      lmEval: { tasks: o.lmEval.tasks, metric: o.lmEval.metric, includePath: o.lmEval.includePath ?? null, modelArgs: o.lmEval.modelArgs ?? null, limit: o.lmEval.limit ?? null, numFewshot: o.lmEval.numFewshot ?? null },
    } : {}),
    // absent for q = 1, so journals of runs before --parallel resume unchanged
    ...((o.parallel ?? 1) > 1 ? { parallel: o.parallel } : {}),
  };
}

/** The canonical evaluation timeout (seconds, 0: none) from its two spellings. */
function evaluationTimeout(o: OptimizeOptions): number {
  const a = o.evaluationTimeout;
  const b = o.evaluatorTimeout;
  if (a !== undefined && b !== undefined && a !== b) throw new UsageError(`--evaluation-timeout ${a} and --evaluator-timeout ${b} disagree; --evaluator-timeout is the old name of --evaluation-timeout: give one`);
  const t = a ?? b ?? 0;
  if (!(Number.isFinite(t) && t >= 0)) throw new UsageError(`--evaluation-timeout must be ≥ 0 seconds, got ${t}`);
  return t;
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
  if (o.evaluator === LM_EVAL) {
    if (!o.lmEval) throw new UsageError('--evaluator lm-eval needs --lm-eval-tasks (one entry per model)');
    if (o.lmEval.tasks.length !== o.models.length) throw new UsageError(`--lm-eval-tasks has ${o.lmEval.tasks.length} entries for ${o.models.length} models: give one per --model, in order`);
  } else if (o.evaluator !== undefined) {
    evaluatorScript(o.evaluator);  // refuses a command without {dir} before any work
  }
  const q = o.parallel ?? 1;
  int('--parallel', q, 1);
  if (o.executor !== undefined && o.executor !== 'local' && o.executor !== 'ray') throw new UsageError(`--executor must be local or ray, got ${String(o.executor)}`);
  if (o.executor === 'ray' && !o.rayAddress) throw new UsageError('--executor ray needs --ray-address http://HOST:8265 (the Ray dashboard)');
  if (o.executor !== 'ray' && (o.rayAddress || o.jobGpus !== undefined || o.rayRuntimeEnv)) throw new UsageError('--ray-address, --job-gpus and --ray-runtime-env need --executor ray');
  for (const [name, v] of [['--job-cpus', o.jobCpus], ['--job-gpus', o.jobGpus]] as const) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new UsageError(`${name} must be ≥ 0, got ${v}`);
  }
  if (o.workerThreads !== undefined) int('worker threads', o.workerThreads, 1);
  if (o.rayAddress !== undefined) new RayJobsClient(o.rayAddress);  // refuses a malformed address now
  evaluationTimeout(o);
  const [lo, hi] = o.bounds;
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) throw new UsageError(`--bounds must be lo < hi, got [${lo}, ${hi}]`);
  const noTasks = o.tasks.length === 0 && o.noFisher && o.evaluator !== undefined;  // the evaluator brings its own tasks
  if (o.models.length !== o.tasks.length && !noTasks) {
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
  const q = o.parallel ?? 1;
  const timeout = evaluationTimeout(o);
  if (o.evaluator === LM_EVAL && o.executor !== 'ray') checkLmEvalPython(o.lmEval!.python);  // on Ray, the workers' Python counts
  const config = journalConfig(o);
  // this run's jobs and scratch are named after its configuration and journal
  const runId = hashConfig({ config, journal: journalPath }).slice(0, 12);
  const executor = makeExecutor(o, q, timeout, runId);
  // an unreachable head is refused before anything is opened or written
  if (executor instanceof RayExecutor) log(`Ray ${await executor.client.version()} at ${o.rayAddress}: up to ${q} jobs in flight`);
  const setupOptions: SetupOptions = {
    base: o.base, models: o.models, tasks: o.tasks, fisherSamples: o.fisherSamples,
    validationFraction: o.validationFraction, seed: o.seed, needFisher: !o.noFisher,
    ...(o.prompts ? { prompts: o.prompts } : {}), ...(o.scoring ? { scoring: o.scoring } : {}),
  };
  const setup: DfSetup | undefined = runtimeFree ? undefined : loadSetup(setupOptions);
  const taskNames = o.evaluator === LM_EVAL ? lmEvalLabels(o.lmEval!.tasks)
    : o.tasks.length > 0 ? o.tasks.map((t) => basename(t.validation).replace(/\.[^.]*$/, '')) : o.models.map((m) => basename(m));
  mkdirSync(dirname(out), { recursive: true });
  removeDeadLeftovers(dirname(out), basename(out));  // scratch and staging folders of killed runs
  mkdirSync(dirname(journalPath), { recursive: true });
  // candidates' scratch (beside the output, or under --scratch): also the check, before any journal is written, that the place is writable
  const scratchRoot = o.scratch ? join(resolve(o.scratch), `dfmerge-${runId}`) : temporarySibling(out, 'candidates');
  try {
    if (o.scratch) rmSync(scratchRoot, { recursive: true, force: true });  // what a killed run of this journal left
    mkdirSync(scratchRoot, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    setup?.close();
    throw o.scratch ? new WriteError(scratchRoot, `cannot create the scratch folder (${code}); choose a writable --scratch with free space`)
      : new WriteError(out, `cannot write beside the output, in ${dirname(out)} (${code}); choose an output on a writable file system with free space`);
  }
  const scratchDone = removeOnAbnormalExit(scratchRoot);
  let journal: Journal;
  try {
    journal = Journal.open(journalPath, config, o.resume === true);
  } catch (e) {
    rmSync(scratchRoot, { recursive: true, force: true });
    scratchDone();
    setup?.close();
    throw e;
  }
  let grid: FisherGrid | undefined;
  const gridDir = `${journalPath}.fisher-grid`;
  const gridPts = o.fisherGrid !== undefined ? gridPoints(o.fisherGrid, o.bounds) : [];
  const cancel = new AbortController();
  const inFlight = new Set<Promise<unknown>>();
  const onInterrupt = () => {
    cancel.abort();  // kills in-process evaluators; stops every job in flight
    if (!executor) {
      rmSync(scratchRoot, { recursive: true, force: true });
      process.stderr.write(`\ninterrupted after ${journal.evaluations.length} evaluations; every finished one is in ${journalPath}. Run the same command with --resume to continue.\n`);
      process.exit(130);
    }
    const bounded = new Promise((r) => setTimeout(r, 10_000));
    void Promise.race([Promise.allSettled([...inFlight]), bounded]).then(() => {
      rmSync(scratchRoot, { recursive: true, force: true });
      process.stderr.write(`\ninterrupted after ${journal.evaluations.length} evaluations (the ${executor.kind} jobs in flight were stopped); every finished one is in ${journalPath}. Run the same command with --resume to continue.\n`);
      process.exit(130);
    });
  };
  if (o.exitOnInterrupt) process.once('SIGINT', onInterrupt);
  try {
    // the grid (when asked for) is built or reused only once the journal is ours
    if (setup && o.fisherGrid !== undefined) {
      log(`Fisher grid: ${setup.models.length} models × λ ∈ {${gridPts.map((x) => x.toFixed(3)).join(', ')}} (${o.fisherGridInterpolation ?? 'linear'} interpolation), in ${gridDir}`);
      grid = await FisherGrid.open(setup, {
        dir: gridDir, points: gridPts, interpolation: o.fisherGridInterpolation ?? 'linear', fisherMode: o.fisherMode,
        onProgress: (done, total, detail) => o.onProgress?.('fisher', done, total, `grid: ${detail}`),
      });
    }
    const objective = setup ? new DfMergeObjective(setup, { fisher: !o.noFisher, fisherMode: o.fisherMode, ...(grid ? { grid } : {}) }) : undefined;
    if (objective && o.onProgress) objective.onProgress = o.onProgress;
    if (executor) log(`${executor.kind} executor: up to ${q} evaluations in flight, scratch ${scratchRoot}`);
    const bo = new BayesianOptimizer({ bounds, seed: o.seed, nInitial: o.initPoints, acquisition: o.acquisition, xi: o.xi, kappa: o.kappa, kernel: o.kernel });
    if (journal.evaluations.length > 0 || journal.inFlight.length > 0) {
      log(`resuming: ${journal.evaluations.length} evaluations already in ${journalPath}${journal.inFlight.length > 0 ? `, ${journal.inFlight.length} in flight when it stopped (dispatched again)` : ''}`);
    }
    for (const d of journal.inFlight) if (executor && d.job) await executor.stopStale(d.job);
    const total = o.initPoints + o.iterations;
    const scoreConfig: ScoreConfig = {
      base: o.base, models: o.models, ...(o.dtype ? { dtype: o.dtype } : {}), noFisher: o.noFisher, taskNames,
      ...(evaluatorSpec(o) ? { evaluator: evaluatorSpec(o)! } : {}), timeoutSeconds: timeout,
    };
    const phaseOf = (i: number): 'initial' | 'bo' => (i < o.initPoints ? 'initial' : 'bo');

    /** One evaluation: in-process, or as an executor's job from a spec on the scratch path. */
    const evaluateOne = async (index: number, lambda: number[]): Promise<void> => {
      const attempt = journal.attempts(index);  // earlier runs' dispatches of it: a fresh job id and folder
      const job: EvaluationJob = { index, attempt, specPath: '', resultPath: '' };
      const folder = join(scratchRoot, `eval-${index}-${attempt}`);
      job.specPath = join(folder, 'spec.json');
      job.resultPath = join(folder, 'result.json');
      const jobId = executor?.jobId(job);
      journal.append({ type: 'dispatch', index, lambda, phase: phaseOf(index), executor: executor?.kind ?? 'in-process', ...(jobId ? { job: jobId } : {}), started: new Date().toISOString() });
      let result: CandidateResult;
      let ran: string | undefined = jobId;
      if (!executor) {
        result = await scoreCandidate({ config: scoreConfig, ...(setup ? { setup } : {}), ...(objective ? { objective } : {}), log }, lambda, join(folder, 'candidate'), cancel.signal);
        rmSync(folder, { recursive: true, force: true });
      } else {
        const spec: CandidateSpec = {
          kind: 'dfmerge-candidate', version: 1, index, lambda, score: scoreConfig, fisherMode: o.fisherMode,
          ...(runtimeFree ? {} : { setup: { ...setupOptions, finiteChecked: true } }),  // checked here, once
          ...(grid ? { grid: { dir: resolve(gridDir), points: gridPts, interpolation: o.fisherGridInterpolation ?? 'linear' } } : {}),
          candidateDir: join(folder, 'candidate'), result: job.resultPath,
          ...(workerThreads(o, q) !== undefined ? { threads: workerThreads(o, q)! } : {}),
        };
        writeAtomically(job.specPath, JSON.stringify(spec, null, 1) + '\n');
        const outcome: JobOutcome = await executor.run(job, cancel.signal);
        rmSync(folder, { recursive: true, force: true });
        if (!outcome.ok && outcome.aborted) return;  // not an evaluation: dispatched again on --resume
        ran = outcome.job ?? jobId;
        if (outcome.ok) result = { ...outcome.result, lambda };
        else {
          log(`evaluation ${index} (λ=[${lambda.map((x) => x.toFixed(3)).join(', ')}]) failed: ${outcome.reason}`);
          result = { lambda, scores: {}, objective: null, failed: true, error: `${outcome.reason}\n${outcome.log.slice(-4000)}`, seconds: { fisher: 0, merge: 0, eval: 0, total: 0 } };
        }
      }
      if (cancel.signal.aborted) return;
      const rec: JournalEvaluation = { type: 'evaluation', index, ...result, phase: phaseOf(index), finished: new Date().toISOString(), ...(ran ? { job: ran } : {}) };
      journal.append(rec);
      o.onEvaluation?.(rec, bestOf(journal.evaluations), total);
    };

    // Synchronous batches [start, start + q): proposed together from the observations of
    // every earlier batch; observed in index order once all of them are done.
    for (let start = 0; start < total; start += q) {
      const end = Math.min(start + q, total);
      const indices = Array.from({ length: end - start }, (_, k) => start + k);
      const todo = indices.filter((i) => !journal.finishedAt(i));
      if (todo.length > 0) {
        const proposals = todo.some((i) => !journal.dispatchOf(i)) ? bo.suggestBatch(end - start) : undefined;
        const lambdaOf = (i: number): number[] => journal.dispatchOf(i)?.lambda ?? proposals![i - start]!;
        const batch = todo.map((i) => {
          const p = evaluateOne(i, lambdaOf(i));
          inFlight.add(p);
          return p.finally(() => inFlight.delete(p));
        });
        const settled = await Promise.allSettled(batch);
        const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failure) throw failure.reason;
        if (cancel.signal.aborted) await new Promise(() => {});  // the interrupt handler exits
      }
      for (const i of indices) {
        const e = journal.finishedAt(i)!;
        if (e.failed || e.objective === null) bo.observeFailure(e.lambda);
        else bo.observe(e.lambda, e.objective);
      }
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
    } catch (e) {
      throw staged.explain(e);
    } finally {
      staged.abort();
    }
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    await executor?.close();
    grid?.close();
    setup?.close();
    journal.close();
    rmSync(scratchRoot, { recursive: true, force: true });
    scratchDone();
  }
}

function bestOf(evals: readonly JournalEvaluation[]): JournalEvaluation | undefined {
  let best: JournalEvaluation | undefined;
  for (const e of evals) if (!e.failed && e.objective !== null && (!best || e.objective > best.objective!)) best = e;
  return best;
}

/** The external evaluator of a run, if it has one. */
function evaluatorSpec(o: OptimizeOptions): EvaluatorSpec | undefined {
  if (o.evaluator === undefined) return undefined;
  return o.evaluator === LM_EVAL ? { kind: 'lm-eval', lmEval: o.lmEval! } : { kind: 'command', command: o.evaluator };
}

/** Native threads of each worker: as asked, else the job's CPUs (Ray), else this machine's cores shared by the q local jobs. */
function workerThreads(o: OptimizeOptions, q: number): number | undefined {
  if (o.workerThreads !== undefined) return o.workerThreads;
  if (o.jobCpus !== undefined && o.jobCpus >= 1) return Math.floor(o.jobCpus);
  if ((o.executor ?? 'local') === 'local') return Math.max(1, Math.floor(availableParallelism() / q));
  return undefined;
}

/** The executor of a run: none (in-process) for q = 1 unless one is named. */
function makeExecutor(o: OptimizeOptions, q: number, timeoutSeconds: number, runId: string): Executor | undefined {
  const kind = o.executor ?? (q > 1 ? 'local' : undefined);
  const worker = o.workerCommand ?? defaultWorkerCommand();
  if (kind === 'local') return new LocalExecutor({ slots: q, timeoutSeconds, worker });
  if (kind === 'ray') {
    return new RayExecutor({
      address: o.rayAddress!, slots: q, timeoutSeconds, worker, runId,
      ...(o.jobCpus !== undefined ? { cpus: o.jobCpus } : {}), ...(o.jobGpus !== undefined ? { gpus: o.jobGpus } : {}),
      ...(o.rayRuntimeEnv ? { runtimeEnv: o.rayRuntimeEnv } : {}), ...(o.rayPollSeconds !== undefined ? { pollSeconds: o.rayPollSeconds } : {}),
    });
  }
  return undefined;
}
