/**
 * The run journal: JSONL, a header line describing the run's configuration, then
 * one line per finished evaluation, appended (and flushed) as each completes. A
 * run interrupted at any point resumes from it without repeating an evaluation;
 * a journal written by a different configuration is refused.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { DfmergeError } from '../errors.js';

export class JournalError extends DfmergeError {}

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

  private constructor(path: string, fd: number, evaluations: JournalEvaluation[]) {
    this.path = path;
    this.fd = fd;
    this.evaluations = evaluations;
  }

  /**
   * Opens a journal: a new one (refusing to clobber an existing journal unless
   * resuming), or an existing one to resume (its header must match `config`).
   */
  static open(path: string, config: Record<string, unknown>, resume: boolean): Journal {
    const configHash = hashConfig(config);
    if (existsSync(path)) {
      if (!resume) throw new JournalError('JournalExists', `${path}: a journal from an earlier run exists; pass --resume to continue it, or remove it to start over`);
      const evaluations = Journal.read(path, configHash, config);
      return new Journal(path, openSync(path, 'a'), evaluations);
    }
    if (resume) throw new JournalError('NoJournal', `${path}: nothing to resume (no journal here); run without --resume to start`);
    const fd = openSync(path, 'wx');
    const j = new Journal(path, fd, []);
    j.append({ type: 'header', version: 1, configHash, config, started: new Date().toISOString() });
    return j;
  }

  private static read(path: string, configHash: string, config: Record<string, unknown>): JournalEvaluation[] {
    const lines = readFileSync(path, 'utf8').split('\n');
    const evaluations: JournalEvaluation[] = [];
    let header: JournalHeader | undefined;
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let rec: { type?: string };
      try {
        rec = JSON.parse(line) as { type?: string };
      } catch {
        // a line cut short by a crash mid-write: only the last line may be partial
        if (i >= lines.length - 2) return;
        throw new JournalError('CorruptJournal', `${path}:${i + 1}: not valid JSON`);
      }
      if (rec.type === 'header') header = rec as JournalHeader;
      else if (rec.type === 'evaluation') evaluations.push(rec as JournalEvaluation);
    });
    if (!header) throw new JournalError('CorruptJournal', `${path}: no header line; not a dfmerge journal`);
    if (header.configHash !== configHash) {
      const theirs = header.config;
      const diff = Object.keys({ ...theirs, ...config }).filter((k) => canonicalJson(theirs[k]) !== canonicalJson(config[k]));
      throw new JournalError('ConfigChanged', `${path}: this journal was written by a different configuration (differs in: ${diff.join(', ') || 'unknown'}); refusing to resume. Use the original settings, or a new --journal to start over`);
    }
    return evaluations;
  }

  append(rec: JournalHeader | JournalEvaluation): void {
    const line = Buffer.from(JSON.stringify(rec) + '\n', 'utf8');
    let done = 0;
    while (done < line.length) done += writeSync(this.fd, line, done, line.length - done);
    fsyncSync(this.fd);
    if (rec.type === 'evaluation') this.evaluations.push(rec);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
