/**
 * Rank-classification accuracy (DESIGN.md §1, objective): the prediction is
 * the choice with the highest length-normalised log-likelihood ℓ(y|x) (first
 * one on a tie).
 */
import type { LlamaRuntime } from '../model/runtime.js';
import type { TokenizedTask } from './task.js';

export interface TaskResult {
  task: string;
  file: string;
  examples: number;
  correct: number;
  accuracy: number;
  /** Predicted choice index per example. */
  predictions: number[];
}

export interface EvalOptions {
  /** Examples per native call (progress is reported between calls). */
  batch?: number;
  onProgress?: (task: string, done: number, total: number) => void;
}

export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

export async function evaluateTask(rt: LlamaRuntime, task: TokenizedTask, options: EvalOptions = {}): Promise<TaskResult> {
  const batch = Math.max(1, options.batch ?? 16);
  const predictions: number[] = [];
  let correct = 0;
  for (let i = 0; i < task.examples.length; i += batch) {
    const chunk = task.examples.slice(i, i + batch);
    const scores = await rt.score(chunk);
    scores.forEach((s, j) => {
      const p = argmax(s);
      predictions.push(p);
      if (p === chunk[j]!.answer) correct++;
    });
    options.onProgress?.(task.name, Math.min(i + batch, task.examples.length), task.examples.length);
  }
  const n = task.examples.length;
  return { task: task.name, file: task.file, examples: n, correct, accuracy: n === 0 ? 0 : correct / n, predictions };
}

/** Accuracy on every task and their mean (the DF-Merge objective). */
export async function evaluateTasks(rt: LlamaRuntime, tasks: readonly TokenizedTask[], options: EvalOptions = {}):
Promise<{ tasks: TaskResult[]; meanAccuracy: number }> {
  const results: TaskResult[] = [];
  for (const t of tasks) results.push(await evaluateTask(rt, t, options));
  const meanAccuracy = results.length === 0 ? 0 : results.reduce((a, r) => a + r.accuracy, 0) / results.length;
  return { tasks: results, meanAccuracy };
}
