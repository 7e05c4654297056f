/** Argument helpers shared by the CLI commands: typed parsing with usage errors that name the flag. */
import { UsageError } from '../errors.js';

/** commander accumulator for repeatable options. */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** A finite number, or a UsageError naming the flag. */
export function num(flag: string, s: string): number {
  const v = Number(s);
  if (!Number.isFinite(v)) throw new UsageError(`${flag} expects a number, got "${s}"`);
  return v;
}

/** An integer ≥ min, or a UsageError naming the flag. */
export function int(flag: string, s: string, min: number): number {
  const v = Number(s);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`${flag} must be an integer ≥ ${min}, got "${s}"`);
  return v;
}
