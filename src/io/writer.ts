/**
 * Streaming safetensors writers. The header is laid out up front from the list of
 * output tensors; tensors are then written one at a time, in any order and in
 * chunks, into their slots; the file appears under its final name only when every
 * byte of every tensor has been written (temporary name + rename). A failure or
 * abort() leaves no file that looks complete.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MergeError, UsageError, WriteError, nativeErrorFields } from '../errors.js';
import { addon } from '../native/addon.js';
import { DTYPE_BITS, byteSize } from './dtypes.js';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint.js';
import { removeOnAbnormalExit } from './cleanup.js';
import { removeDeadLeftovers, temporarySibling } from './leftovers.js';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

export interface Slot {
  readonly spec: TensorSpec;
  /** Absolute byte offset in the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

export { WriteError };

/** `.NAME.partial-PID-N` beside the file (leftovers.ts removes those of dead runs). */
function tempNameFor(path: string): string {
  return temporarySibling(path, 'partial');
}

/**
 * A JSON object from entries, in order. Names come from files (a tensor may be
 * called "__proto__"), so they are never used as keys of a plain JS object.
 */
export function jsonObject(entries: Iterable<readonly [string, unknown]>, indent = ''): string {
  const parts: string[] = [];
  for (const [k, v] of entries) parts.push(`${JSON.stringify(k)}:${indent ? ' ' : ''}${JSON.stringify(v)}`);
  if (!indent) return `{${parts.join(',')}}`;
  return parts.length === 0 ? '{}' : `{\n${parts.map((p) => indent + p).join(',\n')}\n}`;
}

/**
 * Orders tensors by element size, widest first (then as given), so that every
 * tensor starts aligned to its own element size; returns the header bytes (padded
 * with spaces so the data starts 8-byte aligned) and the slots.
 */
export function layoutSafetensors(specs: readonly TensorSpec[], metadata: Record<string, string>): {
  header: Buffer;
  slots: Map<string, Slot>;
  totalSize: number;
} {
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new UsageError(`tensor "${s.name}" is listed twice for one output file`);
    seen.add(s.name);
    if (DTYPE_BITS[s.dtype] === undefined) throw new UsageError(`tensor "${s.name}" has unknown dtype ${s.dtype}`);
    if (!s.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new UsageError(`tensor "${s.name}" has an invalid shape [${s.shape.join(', ')}]`);
    }
    if (!Number.isInteger(byteSize(s.dtype, s.shape))) {
      throw new UsageError(`tensor "${s.name}" (${s.dtype}) does not fill a whole number of bytes`);
    }
  }
  const ordered = specs
    .map((s, i) => ({ s, i }))
    .sort((a, b) => DTYPE_BITS[b.s.dtype]! - DTYPE_BITS[a.s.dtype]! || a.i - b.i)
    .map((x) => x.s);
  const entries: Array<[string, unknown]> = [['__metadata__', metadata]];
  const rel = new Map<string, [number, number]>();
  let cursor = 0;
  for (const s of ordered) {
    const n = byteSize(s.dtype, s.shape);
    rel.set(s.name, [cursor, cursor + n]);
    entries.push([s.name, { dtype: s.dtype, shape: [...s.shape], data_offsets: [cursor, cursor + n] }]);
    cursor += n;
  }
  const json = Buffer.from(jsonObject(entries), 'utf8');
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(header, 8);
  const slots = new Map<string, Slot>();
  for (const s of specs) {
    const [b, e] = rel.get(s.name)!;
    slots.set(s.name, { spec: s, fileOffset: header.length + b, byteLength: e - b });
  }
  return { header, slots, totalSize: header.length + cursor };
}

/** One safetensors file written in place by slots, renamed into place when complete. */
export class SafetensorsWriter {
  readonly path: string;
  readonly tempPath: string;
  readonly totalSize: number;
  private readonly slots: Map<string, Slot>;
  private readonly written = new Map<string, number>();
  private fdValue: number | undefined;
  private unregister: (() => void) | undefined;

  constructor(path: string, specs: readonly TensorSpec[], metadata: Record<string, string> = { format: 'pt' }) {
    this.path = path;
    removeDeadLeftovers(dirname(path), basename(path));
    this.tempPath = tempNameFor(path);
    const { header, slots, totalSize } = layoutSafetensors(specs, { format: 'pt', ...metadata });
    this.slots = slots;
    this.totalSize = totalSize;
    this.unregister = removeOnAbnormalExit(this.tempPath);
    try {
      this.fdValue = openSync(this.tempPath, 'wx', 0o644);
      writeSync(this.fdValue, header, 0, header.length, 0);
      ftruncateSync(this.fdValue, totalSize);
    } catch (e) {
      this.abort();
      throw new WriteError(path, `cannot create (${e instanceof Error ? e.message : String(e)})`);
    }
  }

  /** The open file descriptor (for native code that writes slots directly). */
  get fd(): number {
    if (this.fdValue === undefined) throw new WriteError(this.path, 'writer is closed');
    return this.fdValue;
  }

  slot(name: string): Slot {
    const s = this.slots.get(name);
    if (!s) throw new UsageError(`${this.path}: no tensor "${name}" in this file's layout`);
    return s;
  }

  get names(): string[] {
    return [...this.slots.keys()];
  }

  /** Writes `data` at byte `offset` inside tensor `name`'s slot. */
  write(name: string, data: ArrayBufferView, offset = 0): void {
    const s = this.slot(name);
    if (offset < 0 || offset + data.byteLength > s.byteLength) {
      throw new UsageError(`${this.path}: write of ${data.byteLength} bytes at ${offset} overflows tensor "${name}" (${s.byteLength} bytes)`);
    }
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let done = 0;
    try {
      while (done < bytes.length) {
        done += writeSync(this.fd, bytes, done, bytes.length - done, s.fileOffset + offset + done);
      }
    } catch (e) {
      throw new WriteError(this.path, `write of tensor "${name}" failed (${e instanceof Error ? e.message : String(e)})`);
    }
    this.markWritten(name, data.byteLength);
  }

  /**
   * Writes a whole tensor's slot from `data`, which may be a view of a mapped input:
   * the native side then reads the file with pread, so an input truncated meanwhile
   * is an error naming it and the tensor, never SIGBUS (docs/design.md §11).
   */
  copyFrom(name: string, data: ArrayBufferView): void {
    const s = this.slot(name);
    if (data.byteLength !== s.byteLength) {
      throw new UsageError(`${this.path}: tensor "${name}" takes ${s.byteLength} bytes, got ${data.byteLength}`);
    }
    try {
      addon().copyToFile(data, this.fd, s.fileOffset, name);
    } catch (e) {
      const f = nativeErrorFields(e);
      if (f.code === 'WriteFailed') throw new WriteError(this.path, `write of tensor "${name}" failed (${f.message})`);
      throw new MergeError(f.code, f.message, name);
    }
    this.markWritten(name, data.byteLength);
  }

  /**
   * Asks the kernel to start writing tensor `name`'s slot to the device now, so
   * that finish()'s fsync finds little left (a hint: the merge calls it for each
   * finished tensor while the next one is merged; docs/design.md §11).
   */
  startWriteback(name: string): void {
    const s = this.slot(name);
    addon().startWriteback(this.fd, s.fileOffset, s.byteLength);
  }

  /** Records bytes of a slot written by someone else (native code using fd). */
  markWritten(name: string, bytes: number): void {
    this.slot(name);
    this.written.set(name, (this.written.get(name) ?? 0) + bytes);
  }

  /** Tensors not yet completely written. */
  incomplete(): string[] {
    return [...this.slots.values()].filter((s) => (this.written.get(s.spec.name) ?? 0) < s.byteLength).map((s) => s.spec.name);
  }

  /** Checks completeness, syncs, and renames the file into place. */
  finish(): void {
    const missing = this.incomplete();
    if (missing.length > 0) {
      this.abort();
      throw new WriteError(this.path, `not every tensor was written (missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}); nothing was saved`);
    }
    try {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fdValue = undefined;
      renameSync(this.tempPath, this.path);
    } catch (e) {
      this.abort();
      throw new WriteError(this.path, `cannot finish (${e instanceof Error ? e.message : String(e)})`);
    }
    this.unregister?.();
    this.unregister = undefined;
  }

  /** Closes and deletes the temporary file. Safe to call more than once. */
  abort(): void {
    if (this.fdValue !== undefined) {
      try { closeSync(this.fdValue); } catch { /* already closed */ }
      this.fdValue = undefined;
    }
    try { unlinkSync(this.tempPath); } catch { /* never created or already gone */ }
    this.unregister?.();
    this.unregister = undefined;
  }
}

export const DEFAULT_SHARD_SIZE = 5_000_000_000;

/** Splits tensors into shards of at most maxBytes (a tensor larger than that gets its own). */
export function planShards(specs: readonly TensorSpec[], maxBytes: number): TensorSpec[][] {
  if (!(maxBytes > 0)) throw new UsageError(`shard size must be positive, got ${maxBytes}`);
  const shards: TensorSpec[][] = [];
  let current: TensorSpec[] = [];
  let size = 0;
  for (const s of specs) {
    const n = byteSize(s.dtype, s.shape);
    if (current.length > 0 && size + n > maxBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(s);
    size += n;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

export function shardFileName(i: number, n: number): string {
  if (n === 1) return SINGLE_FILE;
  const pad = (k: number) => String(k).padStart(5, '0');
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

/**
 * A checkpoint folder's weights: one file or shards plus the index, each file
 * renamed into place when complete and the index written last.
 */
export class CheckpointWriter {
  readonly dir: string;
  readonly files: readonly SafetensorsWriter[];
  private readonly owner = new Map<string, SafetensorsWriter>();
  private readonly totalBytes: number;

  constructor(dir: string, specs: readonly TensorSpec[], options: { shardSize?: number; metadata?: Record<string, string> } = {}) {
    this.dir = dir;
    const shards = planShards(specs, options.shardSize ?? DEFAULT_SHARD_SIZE);
    const files: SafetensorsWriter[] = [];
    try {
      shards.forEach((shard, i) => {
        const w = new SafetensorsWriter(join(dir, shardFileName(i, shards.length)), shard, options.metadata);
        files.push(w);
        for (const s of shard) this.owner.set(s.name, w);
      });
    } catch (e) {
      for (const w of files) w.abort();
      throw e;
    }
    this.files = files;
    this.totalBytes = specs.reduce((a, s) => a + byteSize(s.dtype, s.shape), 0);
  }

  /** The shard writer holding tensor `name`. */
  fileFor(name: string): SafetensorsWriter {
    const w = this.owner.get(name);
    if (!w) throw new UsageError(`${this.dir}: no tensor "${name}" in this checkpoint's layout`);
    return w;
  }

  write(name: string, data: ArrayBufferView, offset = 0): void {
    this.fileFor(name).write(name, data, offset);
  }

  /** Finishes every shard, then writes the index (for more than one shard). */
  finish(): string[] {
    const missing = this.files.flatMap((f) => f.incomplete());
    if (missing.length > 0) {
      this.abort();
      throw new WriteError(this.dir, `not every tensor was written (missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}); nothing was saved`);
    }
    try {
      for (const f of this.files) f.finish();
      const names = this.files.map((f) => basename(f.path));
      if (this.files.length > 1) {
        const weightMap = [...this.owner.entries()].sort((a, b) => a[0].localeCompare(b[0]))
          .map(([name, w]) => [name, basename(w.path)] as const);
        const indexJson = `{\n  "metadata": ${JSON.stringify({ total_size: this.totalBytes })},\n  "weight_map": ${jsonObject(weightMap, '    ').replace(/\n}$/, '\n  }')}\n}\n`;
        writeFileAtomic(join(this.dir, INDEX_FILE), indexJson);
        names.push(INDEX_FILE);
      }
      return names;
    } catch (e) {
      this.abort();
      for (const f of this.files) { try { unlinkSync(f.path); } catch { /* not renamed yet */ } }
      throw e;
    }
  }

  abort(): void {
    for (const f of this.files) f.abort();
  }
}

/** Writes a whole small file under a temporary name and renames it into place. */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  const tmp = tempNameFor(path);
  const done = removeOnAbnormalExit(tmp);
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
      let done = 0;
      while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* never created */ }
    throw new WriteError(path, `cannot write (${e instanceof Error ? e.message : String(e)})`);
  } finally {
    done();
  }
}
