/**
 * One safetensors file, memory-mapped by the native layer and validated in full
 * when opened (docs/design.md §2). Tensors are zero-copy views into the mapping.
 */
import { statSync } from 'node:fs';
import { InputChangedError, SafetensorsError, nativeErrorFields } from '../errors.js';
import { addon, type NativeSafetensorsFile } from '../native/addon.js';
import { isComputeDtype } from './dtypes.js';

export interface TensorInfo {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Byte range inside the data section. */
  readonly begin: number;
  readonly end: number;
}

/** Window size of the cached views (bytes()): 1 GiB, so a window's 2 GiB stays under typed arrays' 4 GiB limit. */
const VIEW_WINDOW = 2 ** 30;

export class SafetensorsFile {
  readonly path: string;
  readonly fileSize: number;
  readonly headerLength: number;
  /** Absolute file offset of the data section. */
  readonly dataStart: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in header order. */
  readonly tensors: readonly TensorInfo[];
  private readonly byName: Map<string, TensorInfo>;
  private handle: NativeSafetensorsFile | undefined;
  /** Cached views of the mapping by window index (bytes()). */
  private readonly windows = new Map<number, ArrayBuffer>();

  private constructor(path: string, handle: NativeSafetensorsFile) {
    this.path = path;
    this.handle = handle;
    const h = this.call(() => handle.header());
    this.fileSize = h.fileSize;
    this.headerLength = h.headerLength;
    this.dataStart = h.dataStart;
    // A prototype-free object: a key "__proto__" from the file stays a plain entry.
    const metadata = Object.create(null) as Record<string, string>;
    for (const [k, v] of h.metadata) Object.defineProperty(metadata, k, { value: v, enumerable: true });
    this.metadata = metadata;
    this.tensors = h.tensors;
    this.byName = new Map(h.tensors.map((t) => [t.name, t]));
  }

  /** Opens and validates `path`; throws SafetensorsError naming the file, rule and tensor. */
  static open(path: string): SafetensorsFile {
    let handle: NativeSafetensorsFile;
    try {
      const Ctor = addon().SafetensorsFile;
      handle = new Ctor(path);
    } catch (e) {
      throw toSafetensorsError(path, e);
    }
    return new SafetensorsFile(path, handle);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new SafetensorsError(this.path, 'TensorNotFound', `no tensor named "${name}"`, name);
    return t;
  }

  /**
   * The raw bytes of a tensor, zero-copy: a Uint8Array over one of a few cached
   * windows of the mapping. V8 counts every external ArrayBuffer's length as
   * external memory and answers its growth with full garbage collections: one
   * new view per tensor and merge pass meant a Mark-Compact every ~35 ms of a
   * merge (17 in a 0.6 s one, 100 ms on the main thread plus concurrent marking
   * on the merge's cores; docs/design.md §11). Window i covers bytes
   * [i·W, i·W + 2W) of the data section, so each tensor up to W bytes lies inside
   * the window of its first byte; a longer one gets a view of its own.
   */
  bytes(name: string): Uint8Array {
    const t = this.info(name);
    const len = t.end - t.begin;
    if (len > VIEW_WINDOW) return new Uint8Array(this.call(() => this.open().view(t.begin, t.end)));
    const i = Math.floor(t.begin / VIEW_WINDOW);
    let w = this.windows.get(i);
    if (!w) {
      const lo = i * VIEW_WINDOW;
      const hi = Math.min(this.fileSize - this.dataStart, lo + 2 * VIEW_WINDOW);
      w = this.call(() => this.open().view(lo, hi));
      this.windows.set(i, w);
    }
    return new Uint8Array(w, t.begin - i * VIEW_WINDOW, len);
  }

  /**
   * A typed view of a tensor: Float32Array for F32, Uint16Array for F16/BF16
   * (zero-copy when the data is suitably aligned, else a copy), raw bytes otherwise.
   */
  view(name: string): Float32Array | Uint16Array | Uint8Array {
    const t = this.info(name);
    const bytes = this.bytes(name);
    const width = t.dtype === 'F32' ? 4 : t.dtype === 'F16' || t.dtype === 'BF16' ? 2 : 1;
    if (width === 1) return bytes;
    const aligned = (this.dataStart + t.begin) % width === 0 ? bytes : bytes.slice();
    const n = aligned.byteLength / width;
    return width === 4
      ? new Float32Array(aligned.buffer, aligned.byteOffset, n)
      : new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  }

  /** A tensor converted to f32 (a new array); F32, F16 and BF16 only. */
  toFloat32(name: string): Float32Array {
    const t = this.info(name);
    if (!isComputeDtype(t.dtype)) {
      throw new SafetensorsError(this.path, 'NotFloat', `tensor "${name}" has dtype ${t.dtype}, not F32/F16/BF16`, name);
    }
    const dtype = t.dtype;
    const bytes = this.bytes(name);
    return this.call(() => addon().toFloat32(bytes, dtype));
  }

  /** NaN/±Inf values of a float tensor: how many, and the element index of the first (count 0 for other dtypes). */
  nonFinite(name: string): { count: number; first: number } {
    const t = this.info(name);
    if (!isComputeDtype(t.dtype)) return { count: 0, first: 0 };
    const dtype = t.dtype;
    const bytes = this.bytes(name);
    return this.call(() => addon().scanNonFinite(bytes, dtype));
  }

  /** Throws SafetensorsError naming the file, the tensor and the first element when a float tensor holds NaN or ±Inf. */
  assertFinite(name: string): void {
    const r = this.nonFinite(name);
    if (r.count > 0) {
      throw new SafetensorsError(this.path, 'NonFinite',
        `tensor "${name}" holds ${r.count} NaN or infinite value(s) (first at element ${r.first}); a model with them cannot be evaluated or merged meaningfully`, name);
    }
  }

  /** Drops this process's resident pages of a tensor (they stay in the page cache). */
  release(name: string): void {
    const t = this.info(name);
    this.call(() => this.open().release(t.begin, t.end));
  }

  /**
   * Throws InputChangedError when the file was modified, truncated or replaced
   * since it was opened: the open descriptor's size and modification time against
   * those at open, and the path's inode against the open one.
   */
  checkUnchanged(): void {
    const { opened, now } = this.call(() => this.open().identity());
    let st;
    try {
      st = statSync(this.path, { bigint: true });
    } catch {
      throw new InputChangedError(this.path, 'was deleted or moved while it was being read');
    }
    if (String(st.ino) !== opened.ino || String(st.dev) !== opened.dev) {
      throw new InputChangedError(this.path, 'was replaced by another file while it was being read (what was read is the old file): run again on the new one');
    }
    if (now.size !== opened.size) {
      throw new InputChangedError(this.path, `changed size from ${opened.size} to ${now.size} bytes while it was being read; the result would mix old and new data. Keep inputs unchanged while a command runs`);
    }
    if (now.mtimeNs !== opened.mtimeNs) {
      throw new InputChangedError(this.path, 'was modified while it was being read; the result would mix old and new data. Keep inputs unchanged while a command runs');
    }
  }

  /** Unmaps the file once no view is left (views already taken stay valid). */
  close(): void {
    this.handle?.close();
    this.handle = undefined;
    this.windows.clear();
  }

  private open(): NativeSafetensorsFile {
    if (!this.handle) throw new SafetensorsError(this.path, 'Closed', 'file was closed');
    return this.handle;
  }

  private call<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw toSafetensorsError(this.path, e);
    }
  }
}

function toSafetensorsError(path: string, e: unknown): SafetensorsError {
  if (e instanceof SafetensorsError) return e;
  const f = nativeErrorFields(e);
  return new SafetensorsError(path, f.code, f.message, f.tensor);
}
