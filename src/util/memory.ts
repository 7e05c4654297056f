/** Peak resident memory of this process. */
import { readFileSync } from 'node:fs';

/**
 * Peak RSS in bytes: VmHWM from /proc/self/status (reset by exec, unlike
 * getrusage's maxrss, which a child inherits from the parent it was forked from);
 * falls back to process.resourceUsage() where /proc is missing.
 */
export function peakRssBytes(): number {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}
