/**
 * Learning-rate schedule: linear warm-up then cosine decay (Loshchilov & Hutter,
 * SGDR, without restarts), the usual recipe for small transformers.
 *
 *   lr(t) = peak · t / warmup                                        for t ≤ warmup
 *   lr(t) = min + (peak − min) · ½ · (1 + cos(π · (t − warmup) / (total − warmup)))   after
 *
 * with t the 1-based step and min = peak · minRatio; lr(total) = min.
 */
import { UsageError } from '../errors.js';

export interface LrSchedule {
  /** Peak learning rate (reached at the end of warm-up). */
  peak: number;
  /** Warm-up steps (0: start at the peak). */
  warmup: number;
  /** Total steps. */
  total: number;
  /** Final learning rate as a fraction of the peak (default 0.1). */
  minRatio?: number;
}

export function validateSchedule(s: LrSchedule): void {
  if (!(s.peak > 0) || !Number.isFinite(s.peak)) throw new UsageError(`learning rate must be a positive number, got ${s.peak}`);
  if (!Number.isInteger(s.total) || s.total < 1) throw new UsageError(`total steps must be a positive integer, got ${s.total}`);
  if (!Number.isInteger(s.warmup) || s.warmup < 0 || s.warmup > s.total) {
    throw new UsageError(`warm-up steps must be an integer in [0, ${s.total}], got ${s.warmup}`);
  }
  const r = s.minRatio ?? 0.1;
  if (!(r >= 0 && r <= 1)) throw new UsageError(`minRatio must be in [0, 1], got ${r}`);
}

/** The learning rate of 1-based step t. */
export function learningRate(s: LrSchedule, t: number): number {
  const min = s.peak * (s.minRatio ?? 0.1);
  if (t <= s.warmup) return (s.peak * t) / s.warmup;
  const span = s.total - s.warmup;
  if (span <= 0) return s.peak;
  const progress = Math.min(1, (t - s.warmup) / span);
  return min + (s.peak - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
