/**
 * The lm-evaluation-harness evaluator (`--evaluator lm-eval`): runs
 * `PYTHON -m lm_eval run --model hf --model_args pretrained=DIR,... --tasks ...
 * --output_path OUT` on a candidate folder, reads the results JSON it writes and
 * maps its tasks to the models.
 *
 * Which task belongs to which model: `--lm-eval-tasks` lists one entry per
 * model, in `--model` order, separated by commas; an entry with several tasks
 * joins them with `+` ("hellaswag+piqa,arc_easy": model 1 is scored on hellaswag
 * and piqa, model 2 on arc_easy). A model's score is the mean of its tasks'
 * metric; the objective is the mean over models (docs/design.md §1 "Objective",
 * with lm-eval's metric in place of rank-classification accuracy). Scores are
 * journalled per model entry (named as written) and per task when an entry has
 * several.
 *
 * The folder reaches lm-eval as "$1" of the guarded shell script (never in the
 * script's text), spelled with safe characters only (so no comma can split
 * lm-eval's model_args), under the evaluator guard's timeout and process-group
 * kill.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { EvaluatorError, runGuarded, safeSpelling, type EvaluatorOptions } from './evaluator.js';
import { shellQuote } from './shell.js';

export interface LmEvalOptions {
  /** tasks[i]: the lm-eval tasks scoring model i. */
  tasks: string[][];
  /** The Python that has lm_eval (absolute path). */
  python: string;
  /** lm-eval --include_path: a folder of local task YAMLs. */
  includePath?: string;
  /** The metric read from each task's results (`acc` reads `acc,none`). */
  metric: string;
  /** Appended to model_args after pretrained=DIR (e.g. `dtype=float32`). */
  modelArgs?: string;
  device?: string;
  batchSize?: string;
  /** lm-eval --limit: examples per task (a quick, noisier objective). */
  limit?: number;
  numFewshot?: number;
}

export const LM_EVAL = 'lm-eval';
const TASK_NAME = /^[A-Za-z0-9_.:-]+$/;

/** "a+b,c" for two models: [["a","b"],["c"]]. UsageError when the count or a name is wrong. */
export function parseLmEvalTasks(spec: string, models: number): string[][] {
  const entries = spec.split(',').map((e) => e.trim());
  if (entries.length !== models) {
    throw new UsageError(`--lm-eval-tasks lists ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} for ${models} models: give one per --model, in order, separated by commas (join several tasks of one model with +, e.g. "hellaswag+piqa,arc_easy")`);
  }
  return entries.map((e, i) => {
    const tasks = e.split('+').map((t) => t.trim());
    for (const t of tasks) {
      if (!TASK_NAME.test(t)) throw new UsageError(`--lm-eval-tasks: entry ${i + 1} ("${e}") has the task name "${t}", which is empty or has characters a task name cannot have`);
    }
    return tasks;
  });
}

/** The name of model i's score: its entry as written. */
export function lmEvalLabels(tasks: readonly string[][]): string[] {
  return tasks.map((t) => t.join('+'));
}

/** --python, else $DFMERGE_PYTHON, else ./.venv/bin/python; UsageError naming what was tried. */
export function resolvePython(flag: string | undefined): string {
  const tried: string[] = [];
  for (const [from, p] of [['--python', flag], ['DFMERGE_PYTHON', process.env.DFMERGE_PYTHON], ['./.venv', join('.venv', 'bin', 'python')]] as const) {
    if (!p) continue;
    if (existsSync(p)) return resolve(p);
    tried.push(`${from} ${p}`);
    if (from !== './.venv') break;  // a Python named explicitly must exist
  }
  throw new UsageError(`--evaluator lm-eval needs a Python with lm_eval: none found (${tried.join(', ') || 'no --python, no DFMERGE_PYTHON, no ./.venv/bin/python'}); pass --python PATH`);
}

/** UsageError unless `python` can import lm_eval (checked once, before any evaluation). */
export function checkLmEvalPython(python: string): void {
  const r = spawnSync(python, ['-c', 'import lm_eval'], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) {
    throw new UsageError(`${python} cannot import lm_eval (${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0] ?? ''}); install lm-evaluation-harness there or pass --python`);
  }
}

/** The shell script lm-eval runs as; the candidate folder is "$1". */
export function lmEvalScript(o: LmEvalOptions, outputPath: string): string {
  const all = [...new Set(o.tasks.flat())];
  const words = [o.python, '-m', 'lm_eval', 'run', '--model', 'hf', '--tasks', all.join(','), '--output_path', outputPath];
  if (o.includePath) words.push('--include_path', o.includePath);
  if (o.device) words.push('--device', o.device);
  if (o.batchSize) words.push('--batch_size', o.batchSize);
  if (o.limit !== undefined) words.push('--limit', String(o.limit));
  if (o.numFewshot !== undefined) words.push('--num_fewshot', String(o.numFewshot));
  const extra = o.modelArgs ? `,${o.modelArgs}` : '';
  return `exec ${words.map(shellQuote).join(' ')} --model_args "pretrained=$1"${shellQuote(extra)}`;
}

/** The newest results_*.json under lm-eval's output folder. */
function findResults(dir: string): string | undefined {
  let best: { path: string; mtime: number } | undefined;
  const walk = (d: string, depth: number) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      const st = statSync(p);
      if (st.isDirectory() && depth < 4) walk(p, depth + 1);
      else if (st.isFile() && /^results.*\.json$/.test(f) && (!best || st.mtimeMs > best.mtime)) best = { path: p, mtime: st.mtimeMs };
    }
  };
  walk(dir, 0);
  return best?.path;
}

/** One task's metric from lm-eval's `results` section: `METRIC,none`, else the first `METRIC,<filter>`. */
function metricOf(results: Map<string, unknown>, task: string, metric: string, file: string): number {
  const r = results.get(task);
  if (!r || typeof r !== 'object') throw new EvaluatorError(`${file}: lm-eval wrote no results for task "${task}"`, '');
  const entries = new Map(Object.entries(r as Record<string, unknown>));
  const key = entries.has(`${metric},none`) ? `${metric},none` : [...entries.keys()].find((k) => k.startsWith(`${metric},`)) ?? (entries.has(metric) ? metric : undefined);
  const v = key === undefined ? undefined : entries.get(key);
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new EvaluatorError(`${file}: task "${task}" has no numeric "${metric}" (it has: ${[...entries.keys()].filter((k) => k !== 'alias').join(', ')}); choose one with --lm-eval-metric`, '');
  }
  return v;
}

/** Scores per model entry (and per task where an entry has several) and the objective, from a results JSON. */
export function readLmEvalResults(file: string, o: Pick<LmEvalOptions, 'tasks' | 'metric'>): { scores: Record<string, number>; objective: number } {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EvaluatorError(`${file}: lm-eval's results are not readable JSON (${(e as Error).message})`, '');
  }
  const section = (doc as { results?: unknown }).results;
  if (!section || typeof section !== 'object') throw new EvaluatorError(`${file}: no "results" object in lm-eval's output`, '');
  const results = new Map(Object.entries(section as Record<string, unknown>));
  const scores = new Map<string, number>();
  const perModel = o.tasks.map((tasks) => {
    const values = tasks.map((t) => metricOf(results, t, o.metric, file));
    if (tasks.length > 1) tasks.forEach((t, k) => scores.set(t, values[k]!));
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    scores.set(tasks.join('+'), mean);
    return mean;
  });
  return { scores: Object.fromEntries(scores), objective: perModel.reduce((a, b) => a + b, 0) / perModel.length };
}

/** Runs lm-eval on a candidate folder; EvaluatorError on failure, timeout or unreadable results. */
export async function runLmEval(dir: string, o: LmEvalOptions, options: EvaluatorOptions = {}): Promise<{ scores: Record<string, number>; objective: number }> {
  const outDir = mkdtempSync(join(resolve(dir, '..'), '.lm-eval-out-'));
  const spelled = safeSpelling(dir);
  try {
    const env = { ...process.env, HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE ?? '1', HF_DATASETS_OFFLINE: process.env.HF_DATASETS_OFFLINE ?? '1', TOKENIZERS_PARALLELISM: 'false' };
    let r;
    try {
      r = await runGuarded(lmEvalScript(o, outDir), spelled.path, { ...options, env });
    } catch (e) {
      throw new EvaluatorError(`lm-eval could not start: ${(e as Error).message}`, '');
    }
    if (r.timedOut) throw new EvaluatorError(`lm-eval timed out after ${options.timeoutSeconds ?? 0} s (its processes were killed)`, r.stderr);
    if (r.aborted) throw new EvaluatorError('lm-eval was cancelled (its processes were killed)', r.stderr);
    if (r.code !== 0) {
      throw new EvaluatorError(`lm-eval (${o.python} -m lm_eval) exited with ${r.signal ? `signal ${r.signal}` : `code ${r.code}`}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`, r.stderr);
    }
    const file = findResults(outDir);
    if (!file) throw new EvaluatorError(`lm-eval exited 0 but wrote no results_*.json under ${outDir}`, r.stderr);
    return readLmEvalResults(file, o);
  } finally {
    spelled.remove();
    rmSync(outDir, { recursive: true, force: true });
  }
}
