/**
 * The run journal: JSONL, a header line describing the run's configuration, then
 * one line per finished evaluation, appended (and flushed) as each completes. A
 * run interrupted at any point resumes from it without repeating an evaluation;
 * a journal written by a different configuration is refused.
 *
 * One run at a time: `JOURNAL.lock` holds the PID of the run using the journal,
 * created exclusively; a lock whose PID is not running (a run killed with -9) is
 * stale and taken over. A line cut short by a crash mid-write is cut off the file
 * before anything is appended, so records are never glued onto a fragment; a
 * failed append (disk full) is rolled back the same way.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { DfmergeError } from '../errors.js';
import { onAbnormalExit } from '../io/cleanup.js';
import { processAlive } from '../io/leftovers.js';

export class JournalError extends DfmergeError {}

/** Takes `path`.lock for this process; JournalError when a live run holds it. Returns the release function. */
export function lockJournal(path: string): () => void {
  const lock = `${path}.lock`;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(lock, 'wx', 0o644);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new JournalError('JournalLockFailed', `${lock}: cannot create the journal's lock file (${code ?? String(e)})`);
      let text = '';
      try { text = readFileSync(lock, 'utf8'); } catch { continue; /* removed meanwhile: try again */ }
      const pid = Number.parseInt(text.trim(), 10);
      if (Number.isSafeInteger(pid) && processAlive(pid)) {
        throw new JournalError('JournalLocked', `${path}: in use by another dfmerge run (PID ${pid}, lock file ${lock}); wait for it to finish, or stop it, before resuming`);
      }
      // stale: the run that held it is gone; take it over only if it is still that lock
      try {
        if (readFileSync(lock, 'utf8') === text) unlinkSync(lock);
      } catch { /* someone else took it over first */ }
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
      fsyncSync(fd);
    } catch (e) {
      try { unlinkSync(lock); } catch { /* already gone */ }
      throw new JournalError('JournalLockFailed', `${lock}: cannot write the journal's lock file (${(e as NodeJS.ErrnoException).code ?? String(e)}${(e as NodeJS.ErrnoException).code === 'ENOSPC' ? ': no space left on the device; free some or put --journal elsewhere' : ''})`);
    } finally {
      closeSync(fd);
    }
    const unregister = onAbnormalExit(() => unlinkSync(lock));
    return () => {
      unregister();
      try {
        if (readFileSync(lock, 'utf8').trim() === String(process.pid)) unlinkSync(lock);
      } catch { /* already gone */ }
    };
  }
  throw new JournalError('JournalLocked', `${path}: could not take the lock file ${lock} (other runs keep taking it)`);
}

export interface JournalHeader {
  type: 'header';
  version: 1;
  /** SHA-256 of the canonical configuration (what must match to resume). */
  configHash: string;
  config: Record<string, unknown>;
  started: string;
}

export interface JournalEvaluation {
  type: 'evaluation';
  index: number;
  lambda: number[];
  /** Per-task validation accuracy (or the external evaluator's scores). */
  scores: Record<string, number>;
  objective: number | null;
  failed: boolean;
  error?: string;
  seconds: { fisher: number; merge: number; eval: number; total: number };
  phase: 'initial' | 'bo';
  finished: string;
}

/** Canonical JSON (sorted keys) so equal configurations hash equally. */
function readSyncAt(fd: number, buf: Buffer, offset: number): number {
  return readSync(fd, buf, offset, buf.length - offset, offset);
}

export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export function hashConfig(config: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex');
}

export class Journal {
  readonly path: string;
  readonly evaluations: JournalEvaluation[];
  private fd: number;
  private unlock: (() => void) | undefined;

  private constructor(path: string, fd: number, evaluations: JournalEvaluation[], unlock: () => void) {
    this.path = path;
    this.fd = fd;
    this.evaluations = evaluations;
    this.unlock = unlock;
  }

  /**
   * Opens a journal: a new one (refusing to clobber an existing journal unless
   * resuming), or an existing one to resume (its header must match `config`).
   */
  static open(path: string, config: Record<string, unknown>, resume: boolean): Journal {
    const configHash = hashConfig(config);
    const unlock = lockJournal(path);
    try {
      if (existsSync(path)) {
        if (!resume) throw new JournalError('JournalExists', `${path}: a journal from an earlier run exists; pass --resume to continue it, or remove it to start over`);
        const fd = Journal.openChecked(path, 'r+');
        try {
          const { evaluations, complete } = Journal.read(path, fd, configHash, config);
          // cut a torn last line off before appending after it
          if (complete < fstatSync(fd).size) {
            ftruncateSync(fd, complete);
            fsyncSync(fd);
          }
          return new Journal(path, fd, evaluations, unlock);
        } catch (e) {
          closeSync(fd);
          throw e;
        }
      }
      if (resume) throw new JournalError('NoJournal', `${path}: nothing to resume (no journal here); run without --resume to start`);
      const j = new Journal(path, Journal.openChecked(path, 'wx+'), [], unlock);
      j.append({ type: 'header', version: 1, configHash, config, started: new Date().toISOString() });
      return j;
    } catch (e) {
      unlock();
      throw e;
    }
  }

  private static openChecked(path: string, flags: string): number {
    try {
      return openSync(path, flags, 0o644);
    } catch (e) {
      throw new JournalError('JournalOpenFailed', `${path}: cannot open the journal (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  }

  /** Records of the journal and the byte length of its complete (newline-terminated) lines. */
  private static read(path: string, fd: number, configHash: string, config: Record<string, unknown>): { evaluations: JournalEvaluation[]; complete: number } {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSyncAt(fd, buf, got);
      if (n === 0) break;
      got += n;
    }
    const complete = buf.lastIndexOf(0x0a, got - 1) + 1;  // 0 when there is no newline at all
    const lines = buf.subarray(0, complete).toString('utf8').split('\n');
    const evaluations: JournalEvaluation[] = [];
    let header: JournalHeader | undefined;
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let rec: { type?: string };
      try {
        rec = JSON.parse(line) as { type?: string };
      } catch {
        throw new JournalError('CorruptJournal', `${path}:${i + 1}: not valid JSON (only a last line cut short by a crash is repaired)`);
      }
      if (rec.type === 'header') header = rec as JournalHeader;
      else if (rec.type === 'evaluation') {
        const e = rec as JournalEvaluation;
        if (e.index !== evaluations.length) {
          throw new JournalError('CorruptJournal', `${path}:${i + 1}: evaluation index ${String(e.index)} where ${evaluations.length} was expected (two runs wrote to this journal?)`);
        }
        evaluations.push(e);
      }
    });
    if (!header) throw new JournalError('CorruptJournal', `${path}: no header line; not a dfmerge journal`);
    if (header.configHash !== configHash) {
      const theirs = header.config;
      const diff = Object.keys({ ...theirs, ...config }).filter((k) => canonicalJson(theirs[k]) !== canonicalJson(config[k]));
      throw new JournalError('ConfigChanged', `${path}: this journal was written by a different configuration (differs in: ${diff.join(', ') || 'unknown'}); refusing to resume. Use the original settings, or a new --journal to start over`);
    }
    return { evaluations, complete };
  }

  /** Appends one record and syncs it; a failed write (disk full) is cut off again and reported naming the journal. */
  append(rec: JournalHeader | JournalEvaluation): void {
    const line = Buffer.from(JSON.stringify(rec) + '\n', 'utf8');
    const start = fstatSync(this.fd).size;
    let done = 0;
    try {
      while (done < line.length) done += writeSync(this.fd, line, done, line.length - done, start + done);
      fsyncSync(this.fd);
    } catch (e) {
      try { ftruncateSync(this.fd, start); } catch { /* the next open repairs a torn line */ }
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new JournalError('JournalWriteFailed', `${this.path}: cannot append to the journal (${code}${code === 'ENOSPC' ? ': no space left on the device' : ''}); ` +
        `the ${this.evaluations.length} evaluations before are safe: free space and run again with --resume`);
    }
    if (rec.type === 'evaluation') this.evaluations.push(rec);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.unlock?.();
    this.unlock = undefined;
  }
}
