/**
 * Rank-classification accuracy (docs/design.md §1, objective): the prediction is
 * the choice with the highest score (first one on a tie). Scores, from the sum
 * S = Σ_j log p(y_j | x, y_<j) over the choice's L tokens:
 *   mean       S / L, the length-normalised ℓ(y|x) of DF-Merge (the paper's; default)
 *   sum        S, lm-evaluation-harness's `acc`
 *   char-norm  S / (characters of the choice), lm-eval's `acc_norm`
 *   byte-norm  S / (UTF-8 bytes of the choice), lm-eval's `acc_bytes`
 * (lm-eval counts the choice as written, without the delimiter before it.)
 */
import type { LlamaRuntime, TokenizedExample } from '../model/runtime.js';
import { UsageError } from '../errors.js';
import type { TokenizedTask, TokenizedTaskExample } from './task.js';

export type Scoring = 'mean' | 'sum' | 'char-norm' | 'byte-norm';
export const SCORINGS: readonly Scoring[] = ['mean', 'sum', 'char-norm', 'byte-norm'];

export interface TaskResult {
  task: string;
  file: string;
  examples: number;
  correct: number;
  accuracy: number;
  /** Predicted choice index per example. */
  predictions: number[];
  /** Every choice's score per example (the scoring's values). */
  scores: number[][];
  scoring: Scoring;
}

export interface EvalOptions {
  /** How a choice's token log-likelihoods become its score (default mean). */
  scoring?: Scoring;
  /** Examples per native call (progress is reported between calls). */
  batch?: number;
  onProgress?: (task: string, done: number, total: number) => void;
}

export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** The score of each choice from its mean token log-likelihood ℓ (see the header). */
export function choiceScores(ex: TokenizedTaskExample, meanLoglik: ArrayLike<number>, scoring: Scoring, file = '<task>'): number[] {
  return ex.choices.map((c, j) => {
    const sum = meanLoglik[j]! * c.length;
    if (scoring === 'mean') return meanLoglik[j]!;
    if (scoring === 'sum') return sum;
    const text = ex.choiceTexts?.[j];
    if (text === undefined) throw new UsageError(`${file}: ${scoring} scoring needs the choices' texts (tokenize the task with tokenizeTask)`);
    return sum / (scoring === 'char-norm' ? [...text].length : Buffer.byteLength(text, 'utf8'));
  });
}

/** ℓ of every choice; choices with their own (left-truncated) prompts are scored one by one. */
async function scoreExamples(rt: LlamaRuntime, examples: readonly TokenizedTaskExample[]): Promise<Float64Array[]> {
  const flat: TokenizedExample[] = [];
  const where: [number, number][] = [];  // (first request, count) per example
  for (const e of examples) {
    if (e.choicePrompts) {
      where.push([flat.length, e.choices.length]);
      e.choices.forEach((c, j) => flat.push({ prompt: e.choicePrompts![j]!, choices: [c], answer: 0 }));
    } else {
      where.push([flat.length, 1]);
      flat.push(e);
    }
  }
  const out = await rt.score(flat);
  return where.map(([i, n], k) => (examples[k]!.choicePrompts ? Float64Array.from(out.slice(i, i + n), (a) => a[0]!) : out[i]!));
}

export async function evaluateTask(rt: LlamaRuntime, task: TokenizedTask, options: EvalOptions = {}): Promise<TaskResult> {
  const batch = Math.max(1, options.batch ?? 16);
  const scoring = options.scoring ?? 'mean';
  const predictions: number[] = [];
  const scores: number[][] = [];
  let correct = 0;
  for (let i = 0; i < task.examples.length; i += batch) {
    const chunk = task.examples.slice(i, i + batch);
    const lls = await scoreExamples(rt, chunk);
    lls.forEach((ll, j) => {
      const s = choiceScores(chunk[j]!, ll, scoring, task.file);
      scores.push(s);
      const p = argmax(s);
      predictions.push(p);
      if (p === chunk[j]!.answer) correct++;
    });
    options.onProgress?.(task.name, Math.min(i + batch, task.examples.length), task.examples.length);
  }
  const n = task.examples.length;
  return { task: task.name, file: task.file, examples: n, correct, accuracy: n === 0 ? 0 : correct / n, predictions, scores, scoring };
}

/** Accuracy on every task and their mean (the DF-Merge objective). */
export async function evaluateTasks(rt: LlamaRuntime, tasks: readonly TokenizedTask[], options: EvalOptions = {}):
Promise<{ tasks: TaskResult[]; meanAccuracy: number }> {
  const results: TaskResult[] = [];
  for (const t of tasks) results.push(await evaluateTask(rt, t, options));
  const meanAccuracy = results.length === 0 ? 0 : results.reduce((a, r) => a + r.accuracy, 0) / results.length;
  return { tasks: results, meanAccuracy };
}
