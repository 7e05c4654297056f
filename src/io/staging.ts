/**
 * Output folders that are either complete or absent. A run fills a hidden staging
 * folder beside the output (`.NAME.staging-PID-N`), then commit() syncs every file
 * and the folder, swaps it into place with renames and syncs the parent. Files of
 * an earlier output never survive into the new one: the whole folder is replaced.
 * A run that stops early leaves only hidden, PID-named folders, removed on exit
 * or, after a `kill -9`, by the next run writing beside them.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { WriteError } from '../errors.js';
import { removeOnAbnormalExit } from './cleanup.js';
import { removeDeadLeftovers, temporarySibling } from './leftovers.js';

/** fsync a file or folder by path (folders: so the renames inside them are durable). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncTree(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) fsyncTree(p);
    else if (e.isFile()) fsyncPath(p);
  }
  fsyncPath(dir);
}

export class StagedFolder {
  /** Where the output appears on commit(). */
  readonly out: string;
  /** Where the run writes meanwhile. */
  readonly dir: string;
  private done: (() => void) | undefined;

  private constructor(out: string, dir: string) {
    this.out = out;
    this.dir = dir;
    this.done = removeOnAbnormalExit(dir);
  }

  /** Creates the staging folder beside `out` (and the parents of `out`), after removing dead runs' leftovers there. */
  static create(out: string): StagedFolder {
    const target = resolve(out);
    const parent = dirname(target);
    try {
      mkdirSync(parent, { recursive: true });
    } catch (e) {
      throw new WriteError(parent, `cannot create the output's parent folder (${e instanceof Error ? e.message : String(e)})`);
    }
    removeDeadLeftovers(parent, basename(target));
    const dir = temporarySibling(target, 'staging');
    try {
      mkdirSync(dir);
    } catch (e) {
      throw new WriteError(target, `cannot create a staging folder beside it (${e instanceof Error ? e.message : String(e)})`);
    }
    return new StagedFolder(target, dir);
  }

  /** Syncs the staged files and renames the folder into place (replacing an earlier output). */
  commit(): void {
    if (!this.done) throw new WriteError(this.out, 'staging folder already committed or aborted');
    let old: string | undefined;
    try {
      fsyncTree(this.dir);
      if (existsAsFolder(this.out)) {
        old = temporarySibling(this.out, 'replaced');
        renameSync(this.out, old);
      }
      renameSync(this.dir, this.out);
      fsyncPath(dirname(this.out));
    } catch (e) {
      if (old !== undefined && !existsAsFolder(this.out)) {
        try { renameSync(old, this.out); old = undefined; } catch { /* leave it for the next run's cleanup */ }
      }
      throw new WriteError(this.out, `cannot move the finished output into place (${e instanceof Error ? e.message : String(e)})`);
    }
    this.done();
    this.done = undefined;
    if (old !== undefined) rmSync(old, { recursive: true, force: true });
  }

  /**
   * An error raised while writing into the staging folder, addressed to the output
   * the user named rather than to the hidden folder (which abort() removes): e.g.
   * `OUT: config.json: cannot write (ENOSPC …)`. Other errors are returned as they are.
   */
  explain(e: unknown): unknown {
    if (!(e instanceof Error) || !e.message.includes(this.dir)) return e;
    const detail = e.message.split(`${this.dir}/`).join('').split(this.dir).join('(staging folder)');
    return new WriteError(this.out, `${detail}; nothing was left there, and an earlier output in its place is untouched`);
  }

  /** Removes the staging folder. Safe to call more than once and after commit(). */
  abort(): void {
    if (!this.done) return;
    rmSync(this.dir, { recursive: true, force: true });
    this.done();
    this.done = undefined;
  }
}

function existsAsFolder(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
