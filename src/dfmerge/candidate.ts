/**
 * One DF-Merge candidate evaluation (docs/design.md §1, §8): λ → merge → scores.
 * Used in-process by `optimize` (q = 1 without an executor, sharing one
 * objective across evaluations) and by `dfmerge evaluate-candidate SPEC`, what
 * an executor's job runs: it reads a candidate spec (a JSON file on the scratch
 * path), opens the checkpoints itself, merges there (the native Fisher-weighted
 * merge, or the streamed task-arithmetic merge) and writes its result JSON next
 * to the spec (and prints it as the last line of its output, for an executor
 * that reads logs), so the coordinator never moves weights.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DfmergeError, UsageError } from '../errors.js';
import type { FisherMode } from '../fisher/fisher.js';
import { runMerge } from '../merge/run.js';
import { validateConfig, type MergeConfig } from '../merge/config.js';
import type { ComputeDtype } from '../native/addon.js';
import { EvaluatorError, runEvaluator } from './evaluator.js';
import { runLmEval, type LmEvalOptions } from './evaluator_lm_eval.js';
import { FisherGrid, type GridInterpolation } from './fisher_grid.js';
import type { JournalEvaluation } from './journal.js';
import { DfMergeObjective } from './objective.js';
import { saveFlatCheckpoint } from './save.js';
import { loadSetup, type DfSetup, type SetupOptions } from './setup.js';

/** How a candidate folder is scored when it is not the native validation accuracy. */
export type EvaluatorSpec = { kind: 'command'; command: string } | { kind: 'lm-eval'; lmEval: LmEvalOptions };

/** A candidate's outcome, as journalled (less index, phase and time). */
export type CandidateResult = Omit<JournalEvaluation, 'type' | 'index' | 'phase' | 'finished' | 'job'>;

export interface ScoreConfig {
  base: string;
  models: readonly string[];
  dtype?: ComputeDtype;
  noFisher: boolean;
  /** The report's task names: scores under these names make the objective (else all of them do). */
  taskNames: readonly string[];
  evaluator?: EvaluatorSpec;
  /** Seconds for the external evaluator (0: none). */
  timeoutSeconds: number;
}

export interface ScoreContext {
  config: ScoreConfig;
  /** The native setup and objective (absent when no Fisher is needed and an external evaluator scores). */
  setup?: DfSetup;
  objective?: DfMergeObjective;
  log: (message: string) => void;
}

/** θ_pre + Σ λ_i τ_i as a streaming merge (the --no-fisher merge when the native runtime is not used). */
export function taskArithmeticConfig(c: Pick<ScoreConfig, 'base' | 'models' | 'dtype'>, lambda: readonly number[]): MergeConfig {
  return validateConfig({
    method: 'task_arithmetic', base: c.base, models: c.models.map((p, i) => ({ path: p, parameters: { weight: lambda[i]! } })),
    parameters: {}, seed: 0, ...(c.dtype ? { dtype: c.dtype } : {}),
  });
}

async function external(e: EvaluatorSpec, dir: string, timeoutSeconds: number, taskNames: readonly string[], signal?: AbortSignal): Promise<{ scores: Record<string, number>; objective: number }> {
  const opts = { timeoutSeconds, ...(signal ? { signal } : {}) };
  if (e.kind === 'lm-eval') return runLmEval(dir, e.lmEval, opts);
  const scores = await runEvaluator(e.command, dir, opts);
  return { scores, objective: objectiveOf(scores, taskNames) };
}

/** Mean of the scores named like the tasks, or of all scores when none is (docs/design.md §1 "Objective"). */
export function objectiveOf(scores: Record<string, number>, taskNames: readonly string[]): number {
  const named = taskNames.filter((t) => Object.hasOwn(scores, t));
  const values = named.length > 0 ? named.map((t) => scores[t]!) : Object.values(scores);
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * Scores one λ: native validation accuracy of the Fisher-weighted merge, or the
 * external evaluator's on the merge written to `candidateDir` (emptied first).
 * A failing evaluator gives a failed result with its reason; other errors throw.
 */
export async function scoreCandidate(ctx: ScoreContext, lambda: number[], candidateDir: string, signal?: AbortSignal): Promise<CandidateResult> {
  const { config: c, setup, objective } = ctx;
  const t0 = performance.now();
  const seconds = { fisher: 0, merge: 0, eval: 0, total: 0 };
  try {
    let scored: { scores: Record<string, number>; objective: number };
    if (objective && setup) {
      const { merged, timings } = await objective.merge(lambda);
      seconds.fisher = timings.fisherSeconds;
      seconds.merge = timings.mergeSeconds;
      const t1 = performance.now();
      if (c.evaluator) {
        rmSync(candidateDir, { recursive: true, force: true });
        await saveFlatCheckpoint(setup.rt, merged, c.base, candidateDir, c.dtype ? { dtype: c.dtype } : {});
        scored = await external(c.evaluator, candidateDir, c.timeoutSeconds, c.taskNames, signal);
      } else {
        const r = await objective.evaluateMerged(setup.validation);
        const scores = Object.fromEntries(r.tasks.map((t) => [t.task, t.accuracy]));
        scored = { scores, objective: objectiveOf(scores, c.taskNames) };
      }
      seconds.eval = (performance.now() - t1) / 1000;
    } else {
      if (!c.evaluator) throw new UsageError('a candidate without the native runtime needs an external evaluator');
      rmSync(candidateDir, { recursive: true, force: true });
      const t1 = performance.now();
      await runMerge(taskArithmeticConfig(c, lambda), { out: candidateDir, quiet: true, force: true });
      seconds.merge = (performance.now() - t1) / 1000;
      const t2 = performance.now();
      scored = await external(c.evaluator, candidateDir, c.timeoutSeconds, c.taskNames, signal);
      seconds.eval = (performance.now() - t2) / 1000;
    }
    seconds.total = (performance.now() - t0) / 1000;
    return { lambda, scores: scored.scores, objective: scored.objective, failed: false, seconds };
  } catch (e) {
    if (!(e instanceof EvaluatorError)) throw e;
    seconds.total = (performance.now() - t0) / 1000;
    ctx.log(`evaluation of λ=[${lambda.map((x) => x.toFixed(3)).join(', ')}] failed: ${e.message}`);
    return { lambda, scores: {}, objective: null, failed: true, error: `${e.message}\n${e.stderr.slice(-4000)}`, seconds };
  }
}

/** What a worker needs to evaluate one candidate; JSON, written by the coordinator on the scratch path. */
export interface CandidateSpec {
  kind: 'dfmerge-candidate';
  version: 1;
  index: number;
  lambda: number[];
  score: ScoreConfig;
  /** The native setup (Fisher examples, validation subset); absent when no runtime is needed. */
  setup?: SetupOptions;
  fisherMode: FisherMode;
  /** --fisher-grid: the grid the coordinator built, reused read-only. */
  grid?: { dir: string; points: number[]; interpolation: GridInterpolation };
  /** Where the candidate merge is written (for an external evaluator). */
  candidateDir: string;
  /** Where the result JSON goes. */
  result: string;
  /** Native threads of the worker (default: all its cores). */
  threads?: number;
}

/** The line prefix of the result a worker prints (the logs fallback when the result file is not shared). */
export const RESULT_MARKER = 'dfmerge-candidate-result: ';

export class CandidateError extends DfmergeError {}

function isResult(v: unknown): v is CandidateResult {
  if (!v || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  return Array.isArray(r.lambda) && r.lambda.every((x) => typeof x === 'number') && typeof r.failed === 'boolean'
    && (r.objective === null || typeof r.objective === 'number') && !!r.scores && typeof r.scores === 'object'
    && !!r.seconds && typeof r.seconds === 'object';
}

/** A result from JSON text; CandidateError naming where it came from when it is not one. */
export function parseCandidateResult(text: string, from: string): CandidateResult {
  let v: unknown;
  try { v = JSON.parse(text); } catch (e) { throw new CandidateError('BadCandidateResult', `${from}: not JSON (${(e as Error).message})`); }
  if (!isResult(v)) throw new CandidateError('BadCandidateResult', `${from}: not a candidate result (lambda, scores, objective, failed, seconds)`);
  return v;
}

/** The result a worker printed in its logs (the last marked line), if any. */
export function resultFromLogs(logs: string, from: string): CandidateResult | undefined {
  const line = logs.split('\n').reverse().find((l) => l.startsWith(RESULT_MARKER));
  return line === undefined ? undefined : parseCandidateResult(line.slice(RESULT_MARKER.length), from);
}

export function readCandidateSpec(path: string): CandidateSpec {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CandidateError('BadCandidateSpec', `${path}: cannot read the candidate spec (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const s = v as Partial<CandidateSpec>;
  if (s.kind !== 'dfmerge-candidate' || s.version !== 1) throw new CandidateError('BadCandidateSpec', `${path}: not a dfmerge candidate spec (version 1)`);
  if (!Array.isArray(s.lambda) || !s.score || typeof s.result !== 'string' || typeof s.candidateDir !== 'string' || !Number.isInteger(s.index)) {
    throw new CandidateError('BadCandidateSpec', `${path}: the spec lacks index, lambda, score, candidateDir or result`);
  }
  return s as CandidateSpec;
}

/** Writes a file whole or not at all (temporary name, then rename). */
export function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${process.pid}.partial-${Date.now()}`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** `dfmerge evaluate-candidate SPEC`: evaluates the spec's λ, writes and returns its result. */
export async function evaluateCandidateSpec(specPath: string, log: (m: string) => void): Promise<CandidateResult> {
  const spec = readCandidateSpec(specPath);
  const setup = spec.setup ? loadSetup(spec.setup) : undefined;
  let grid: FisherGrid | undefined;
  try {
    if (setup && spec.grid) {
      if (!existsSync(spec.grid.dir)) throw new CandidateError('NoFisherGrid', `${spec.grid.dir}: the Fisher grid the spec names does not exist (the coordinator builds it before dispatching)`);
      grid = await FisherGrid.open(setup, { dir: spec.grid.dir, points: spec.grid.points, interpolation: spec.grid.interpolation, fisherMode: spec.fisherMode });
    }
    const objective = setup ? new DfMergeObjective(setup, { fisher: !spec.score.noFisher, fisherMode: spec.fisherMode, ...(grid ? { grid } : {}) }) : undefined;
    const result = await scoreCandidate({ config: spec.score, ...(setup ? { setup } : {}), ...(objective ? { objective } : {}), log }, spec.lambda, spec.candidateDir);
    writeAtomically(spec.result, JSON.stringify(result) + '\n');
    return result;
  } finally {
    grid?.close();
    setup?.close();
    rmSync(spec.candidateDir, { recursive: true, force: true });
  }
}
