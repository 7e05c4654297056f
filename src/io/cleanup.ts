/**
 * What a run must undo if it stops early: partial files, staging and scratch
 * folders, child process groups. Each is registered while it exists and removed
 * from the registry once it is committed or cleaned. The registry runs when the
 * process exits (normally, by process.exit, or, once installSignalCleanup() is
 * called, by SIGINT / SIGTERM / SIGHUP). What a `kill -9` leaves behind carries the
 * dead process's PID in its name and is removed by the next run (leftovers.ts).
 */
import { rmSync } from 'node:fs';

type Action = () => void;

const actions = new Map<number, Action>();
let nextId = 1;
let exitHookInstalled = false;
let signalsInstalled = false;

/** Runs every registered action once (each in isolation: one failure does not stop the rest). */
export function runCleanups(): void {
  const all = [...actions.values()].reverse();
  actions.clear();
  for (const a of all) {
    try { a(); } catch { /* best effort while exiting */ }
  }
}

/** Registers an action to run if the process exits before `done()` is called; returns done(). */
export function onAbnormalExit(action: Action): () => void {
  if (!exitHookInstalled) {
    process.on('exit', runCleanups);
    exitHookInstalled = true;
  }
  const id = nextId++;
  actions.set(id, action);
  return () => { actions.delete(id); };
}

/** Registers a path (file or folder) to delete if the process exits before `done()`. */
export function removeOnAbnormalExit(path: string): () => void {
  return onAbnormalExit(() => rmSync(path, { recursive: true, force: true }));
}

const SIGNAL_EXIT: ReadonlyArray<[NodeJS.Signals, number]> = [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]];

/**
 * CLI use: on SIGINT, SIGTERM or SIGHUP, clean up and exit with 128 + the signal
 * number. Where a command has its own handler for the signal (it prints how to
 * resume and exits), that handler runs and the exit hook still cleans up.
 */
export function installSignalCleanup(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  for (const [sig, code] of SIGNAL_EXIT) {
    process.on(sig, () => {
      if (process.listenerCount(sig) > 1) return;  // the command's own handler exits
      runCleanups();
      process.stderr.write(`\ndfmerge: stopped by ${sig}; partial output removed\n`);
      process.exit(code);
    });
  }
}
