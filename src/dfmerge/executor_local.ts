/**
 * The `local` executor: each evaluation job is a child process
 * (`dfmerge evaluate-candidate SPEC`) in its own process group under the
 * evaluator guard, at most `slots` at once. A job past the evaluation timeout,
 * or aborted (Ctrl-C), has its whole group killed; when dfmerge itself dies the
 * guard kills the group too (docs/design.md §8).
 */
import { runGuarded } from './evaluator.js';
import { Slots, readResultFile, type EvaluationJob, type Executor, type JobOutcome } from './executor.js';

export interface LocalExecutorOptions {
  slots: number;
  /** Seconds before a job is killed and counts as a failed evaluation (0: no limit). */
  timeoutSeconds: number;
  /** The shell words that run dfmerge (defaultWorkerCommand()). */
  worker: string;
}

export class LocalExecutor implements Executor {
  readonly kind = 'local' as const;
  readonly slots: number;
  private readonly pool: Slots;

  constructor(private readonly o: LocalExecutorOptions) {
    this.slots = o.slots;
    this.pool = new Slots(o.slots);
  }

  jobId(): string | undefined {
    return undefined;  // the PID, known once it runs, is journalled with the result
  }

  async run(job: EvaluationJob, signal: AbortSignal): Promise<JobOutcome> {
    const release = await this.pool.acquire();
    try {
      if (signal.aborted) return { ok: false, aborted: true, reason: 'cancelled before it started', log: '' };
      // "$1" is the spec path: the script's text holds no path
      const script = `exec ${this.o.worker} evaluate-candidate "$1"`;
      let r;
      try {
        r = await runGuarded(script, job.specPath, { timeoutSeconds: this.o.timeoutSeconds, signal });
      } catch (e) {
        return { ok: false, aborted: false, reason: `the worker could not start: ${(e as Error).message}`, log: '' };
      }
      const job_ = `local:${r.pid ?? '?'}`;
      const log = r.stderr.slice(-8000);
      if (r.aborted) return { ok: false, aborted: true, reason: 'cancelled (its processes were killed)', log, job: job_ };
      if (r.timedOut) return { ok: false, aborted: false, reason: `timed out after ${this.o.timeoutSeconds} s (its processes were killed)`, log, job: job_ };
      if (r.code !== 0) {
        const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
        return { ok: false, aborted: false, reason: `the worker exited with ${r.signal ? `signal ${r.signal}` : `code ${r.code}`}: ${tail}`, log, job: job_ };
      }
      const { result, problem } = readResultFile(job.resultPath);
      if (!result) return { ok: false, aborted: false, reason: `the worker exited 0 but ${problem}`, log, job: job_ };
      return { ok: true, result, job: job_ };
    } finally {
      release();
    }
  }

  async stopStale(): Promise<void> {
    // a killed coordinator's local jobs died with it (the guard saw its stdin close)
  }

  async close(): Promise<void> {}
}
