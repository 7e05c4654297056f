/**
 * The run journal: JSONL, a header line describing the run's configuration, then
 * a `dispatch` line when an evaluation starts (its index and λ, the executor and
 * job that runs it) and an `evaluation` line when it ends, each appended (and
 * flushed) at once. With several evaluations in flight (`--parallel q`) the
 * `evaluation` lines come in completion order; `evaluations` is kept in index
 * order. A run interrupted at any point resumes from it: what was dispatched and
 * never finished (`inFlight`) is dispatched again, no finished evaluation is
 * repeated; a journal written by a different configuration is refused. Version 1
 * journals (no dispatch lines, evaluations in index order) are read as they are.
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
  /** 1: evaluation lines only (dfmerge before --parallel); 2: dispatch lines too. */
  version: 1 | 2;
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
  /** The executor's job that ran it (`local` PID or Ray submission id), when one did. */
  job?: string;
}

/** An evaluation handed to an executor (written when it starts; a later `evaluation` line with its index ends it). */
export interface JournalDispatch {
  type: 'dispatch';
  index: number;
  lambda: number[];
  phase: 'initial' | 'bo';
  /** `in-process`, `local` or `ray`. */
  executor: string;
  /** The executor's job id (a Ray submission id), when it has one before it runs. */
  job?: string;
  started: string;
}

export type JournalRecord = JournalHeader | JournalDispatch | JournalEvaluation;

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
  /** Finished evaluations, in index order. */
  readonly evaluations: JournalEvaluation[];
  /** The latest dispatch of each index not finished yet. */
  private readonly dispatched: Map<number, JournalDispatch>;
  private fd: number;
  private unlock: (() => void) | undefined;

  private constructor(path: string, fd: number, evaluations: JournalEvaluation[], dispatched: Map<number, JournalDispatch>, unlock: () => void) {
    this.path = path;
    this.fd = fd;
    this.evaluations = evaluations;
    this.dispatched = dispatched;
    this.unlock = unlock;
  }

  /** Dispatched and not finished (what a killed run had in flight), in index order. */
  get inFlight(): JournalDispatch[] {
    return [...this.dispatched.values()].sort((a, b) => a.index - b.index);
  }

  /** The finished evaluation of an index, if there is one. */
  finishedAt(index: number): JournalEvaluation | undefined {
    return this.evaluations.find((e) => e.index === index);
  }

  /** The latest dispatch of an unfinished index, if there is one. */
  dispatchOf(index: number): JournalDispatch | undefined {
    return this.dispatched.get(index);
  }

  /** How many dispatch lines this journal holds for an index, before this run (re-dispatches get new job ids). */
  attempts(index: number): number {
    return this.attemptCount.get(index) ?? 0;
  }

  private readonly attemptCount = new Map<number, number>();

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
          const { evaluations, dispatched, attempts, complete } = Journal.read(path, fd, configHash, config);
          // cut a torn last line off before appending after it
          if (complete < fstatSync(fd).size) {
            ftruncateSync(fd, complete);
            fsyncSync(fd);
          }
          const j = new Journal(path, fd, evaluations, dispatched, unlock);
          for (const [k, v] of attempts) j.attemptCount.set(k, v);
          return j;
        } catch (e) {
          closeSync(fd);
          throw e;
        }
      }
      if (resume) throw new JournalError('NoJournal', `${path}: nothing to resume (no journal here); run without --resume to start`);
      const j = new Journal(path, Journal.openChecked(path, 'wx+'), [], new Map(), unlock);
      j.append({ type: 'header', version: 2, configHash, config, started: new Date().toISOString() });
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
  private static read(path: string, fd: number, configHash: string, config: Record<string, unknown>):
  { evaluations: JournalEvaluation[]; dispatched: Map<number, JournalDispatch>; attempts: Map<number, number>; complete: number } {
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
    const finished = new Set<number>();
    const dispatched = new Map<number, JournalDispatch>();
    const attempts = new Map<number, number>();
    let header: JournalHeader | undefined;
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let rec: { type?: string };
      try {
        rec = JSON.parse(line) as { type?: string };
      } catch {
        throw new JournalError('CorruptJournal', `${path}:${i + 1}: not valid JSON (only a last line cut short by a crash is repaired)`);
      }
      if (rec.type === 'header') {
        header = rec as JournalHeader;
        if (header.version !== 1 && header.version !== 2) {
          throw new JournalError('JournalVersion', `${path}:${i + 1}: journal version ${String(header.version)}, which this dfmerge cannot read (it reads versions 1 and 2); use the dfmerge that wrote it, or a new --journal`);
        }
      } else if (rec.type === 'dispatch') {
        const d = rec as JournalDispatch;
        if (!Number.isInteger(d.index) || d.index < 0 || finished.has(d.index)) {
          throw new JournalError('CorruptJournal', `${path}:${i + 1}: dispatch of evaluation ${String(d.index)}, which ${finished.has(d.index) ? 'had already finished' : 'is not an index'} (two runs wrote to this journal?)`);
        }
        dispatched.set(d.index, d);
        attempts.set(d.index, (attempts.get(d.index) ?? 0) + 1);
      } else if (rec.type === 'evaluation') {
        const e = rec as JournalEvaluation;
        // without a dispatch line (a version 1 journal) evaluations come in index order
        const expected = dispatched.has(e.index) || (Number.isInteger(e.index) && e.index === finished.size && !finished.has(e.index));
        if (!expected) {
          throw new JournalError('CorruptJournal', `${path}:${i + 1}: evaluation index ${String(e.index)} where ${finished.size} was expected${finished.has(e.index) ? ', and it had finished already' : ''} (two runs wrote to this journal?)`);
        }
        dispatched.delete(e.index);
        finished.add(e.index);
        evaluations.push(e);
      }
    });
    if (!header) throw new JournalError('CorruptJournal', `${path}: no header line; not a dfmerge journal`);
    evaluations.sort((a, b) => a.index - b.index);
    if (header.configHash !== configHash) {
      const theirs = header.config;
      const diff = Object.keys({ ...theirs, ...config }).filter((k) => canonicalJson(theirs[k]) !== canonicalJson(config[k]));
      throw new JournalError('ConfigChanged', `${path}: this journal was written by a different configuration (differs in: ${diff.join(', ') || 'unknown'}); refusing to resume. Use the original settings, or a new --journal to start over`);
    }
    return { evaluations, dispatched, attempts, complete };
  }

  /** Appends one record and syncs it; a failed write (disk full) is cut off again and reported naming the journal. */
  append(rec: JournalRecord): void {
    if (rec.type === 'evaluation' && this.evaluations.some((e) => e.index === rec.index)) {
      throw new JournalError('DuplicateEvaluation', `${this.path}: evaluation ${rec.index} is already journalled; refusing to record it twice`);
    }
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
    if (rec.type === 'dispatch') this.dispatched.set(rec.index, rec);
    if (rec.type === 'evaluation') {
      this.dispatched.delete(rec.index);
      let at = this.evaluations.length;
      while (at > 0 && this.evaluations[at - 1]!.index > rec.index) at--;
      this.evaluations.splice(at, 0, rec);
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.unlock?.();
    this.unlock = undefined;
  }
}
