/**
 * Names for temporary files and folders that say which process made them, and
 * removal of those a dead process left behind (a `kill -9`, a power cut). A
 * leftover is removed only when the PID in its name is not a running process, so
 * a run never deletes another live run's work; a PID reused since leaves the
 * leftover in place (the safe direction).
 *
 *   .NAME.partial-PID-N      a file being written (writer.ts)
 *   .NAME.staging-PID-N      an output folder being filled (staging.ts)
 *   .NAME.replaced-PID-N     the previous output folder, while it is swapped out
 *   .NAME.candidates-PID-N   DF-Merge's scratch folder for candidate merges
 */
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export type LeftoverKind = 'partial' | 'staging' | 'replaced' | 'candidates';

let counter = 0;

/** A fresh hidden name beside `path`: `.NAME.KIND-PID-N`. */
export function temporarySibling(path: string, kind: LeftoverKind): string {
  counter += 1;
  return join(dirname(path), `.${basename(path)}.${kind}-${process.pid}-${counter}`);
}

const PATTERN = /^\.(.+)\.(partial|staging|replaced|candidates)-(\d+)-[0-9A-Za-z]+$/;

/** Whether a process with this PID is running (EPERM: it exists but is not ours; a zombie has ended). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/PID/stat: "pid (comm) state ..."; the comm may hold spaces and parentheses
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;  // no /proc: kill(0) said it exists
  }
}

/**
 * Removes, in `folder`, the temporary files and folders of dead runs; with `name`,
 * only those belonging to that output name. Returns what was removed.
 */
export function removeDeadLeftovers(folder: string, name?: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(folder);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const e of entries) {
    const m = PATTERN.exec(e);
    if (!m || (name !== undefined && m[1] !== name)) continue;
    if (processAlive(Number(m[3]))) continue;
    const p = join(folder, e);
    try {
      rmSync(p, { recursive: true, force: true });
      removed.push(p);
    } catch { /* not ours to remove (permissions): leave it */ }
  }
  return removed;
}
