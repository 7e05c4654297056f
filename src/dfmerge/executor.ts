/**
 * Executors run candidate evaluations as jobs (docs/design.md §8): each job is
 * `dfmerge evaluate-candidate SPEC` on a spec written to the scratch path, and
 * writes its result next to it. One interface, two implementations: `local` (a
 * bounded pool of child processes, executor_local.ts) and `ray` (jobs submitted
 * to a Ray cluster through its Jobs REST API, executor_ray.ts). A job that fails,
 * times out or writes no result is a failed evaluation with its reason; an
 * aborted job (Ctrl-C) is neither: it is left to be dispatched again on --resume.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseCandidateResult, type CandidateResult } from './candidate.js';
import { shellQuote } from './shell.js';

export interface EvaluationJob {
  index: number;
  /** 0 for the first dispatch of this index, 1 for the first re-dispatch after a resume, ... */
  attempt: number;
  /** The candidate spec (on the scratch path both sides see) and where its result appears. */
  specPath: string;
  resultPath: string;
}

export type JobOutcome =
  | { ok: true; result: CandidateResult; job: string }
  | { ok: false; aborted: boolean; reason: string; log: string; job?: string };

export interface Executor {
  readonly kind: 'local' | 'ray';
  /** Jobs it runs at once. */
  readonly slots: number;
  /** The job id a dispatch is journalled with before it runs (Ray submission id), if known in advance. */
  jobId(job: EvaluationJob): string | undefined;
  /** Runs one job to its end; resolves whatever happens (never rejects for a failed job). */
  run(job: EvaluationJob, signal: AbortSignal): Promise<JobOutcome>;
  /** Stops a job a killed coordinator left running (best effort), before its index is dispatched again. */
  stopStale(jobId: string): Promise<void>;
  close(): Promise<void>;
}

/** The command line that runs dfmerge on a worker: this dfmerge (same node, same bin) unless told otherwise. */
export function defaultWorkerCommand(): string {
  const bin = fileURLToPath(new URL('../../../bin/dfmerge.js', import.meta.url));
  return `${shellQuote(process.execPath)} ${shellQuote(bin)}`;
}

/** `WORKER evaluate-candidate SPEC` as one shell command line. */
export function workerEntrypoint(worker: string, specPath: string): string {
  return `${worker} evaluate-candidate ${shellQuote(specPath)}`;
}

/** The result file a job wrote, or undefined when there is none (or it is not a result: the reason). */
export function readResultFile(path: string): { result?: CandidateResult; problem?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { problem: `no result file ${path}` };
  }
  try {
    return { result: parseCandidateResult(text, path) };
  } catch (e) {
    return { problem: (e as Error).message };
  }
}

/** A counting semaphore: at most `n` holders at once. */
export class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(n: number) { this.free = n; }
  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}
