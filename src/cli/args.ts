/** Argument helpers shared by the CLI commands: typed parsing with usage errors that name the flag. */
import { UsageError } from '../errors.js';

/** commander accumulator for repeatable options. */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** A finite number, or a UsageError naming the flag ("" and "  " are not 0; "1e999" is not a number). */
export function num(flag: string, s: string): number {
  const v = s.trim() === '' ? NaN : Number(s);
  if (!Number.isFinite(v)) throw new UsageError(`${flag} expects a number, got "${s}"`);
  return v;
}

/** A number ≥ min, or a UsageError naming the flag. */
export function atLeast(flag: string, s: string, min: number): number {
  const v = num(flag, s);
  if (v < min) throw new UsageError(`${flag} must be ≥ ${min}, got "${s}"`);
  return v;
}

/** An integer in [min, max], or a UsageError naming the flag ("1e999", "2.5" and "" are refused, not rounded). */
export function int(flag: string, s: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = s.trim() === '' ? NaN : Number(s);
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new UsageError(`${flag} must be an integer${max === Number.MAX_SAFE_INTEGER ? ` ≥ ${min}` : ` in [${min}, ${max}]`}, got "${s}"`);
  }
  return v;
}

/** The most native threads a command accepts: far more than any machine has cores, far fewer than would exhaust it. */
export const MAX_THREADS = 1024;

/** --threads: an integer in [1, MAX_THREADS]. */
export function threads(s: string): number {
  return int('--threads', s, 1, MAX_THREADS);
}
