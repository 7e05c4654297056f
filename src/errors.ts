/**
 * Typed errors. Every error a user can cause carries a stable `code` and a
 * message that names the file (and tensor, where there is one) and says what to do.
 */
export class DfmergeError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A safetensors file that cannot be read: the file, the rule it breaks, the tensor. */
export class SafetensorsError extends DfmergeError {
  readonly file: string;
  readonly tensor: string | undefined;
  constructor(file: string, code: string, detail: string, tensor?: string) {
    super(code, `${file}: ${detail}`);
    this.file = file;
    this.tensor = tensor;
  }
}

/** A checkpoint folder whose layout, index or config is wrong. */
export class CheckpointError extends DfmergeError {
  readonly path: string;
  constructor(path: string, code: string, detail: string) {
    super(code, `${path}: ${detail}`);
    this.path = path;
  }
}

/** Bad command-line or API arguments. */
export class UsageError extends DfmergeError {
  constructor(message: string) {
    super('Usage', message);
  }
}

/** A merge that cannot run: bad arguments, an unknown method, no CUDA device, a failed write. */
export class MergeError extends DfmergeError {
  readonly tensor: string | undefined;
  constructor(code: string, message: string, tensor?: string) {
    super(code, tensor !== undefined && !message.includes(tensor) ? `${tensor}: ${message}` : message);
    this.tensor = tensor;
  }
}

/** A model config.json the runtime cannot run: names the file and the field. */
export class ConfigError extends DfmergeError {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, detail: string, code = 'UnsupportedConfig') {
    super(code, `${file}: ${field}: ${detail}`);
    this.file = file;
    this.field = field;
  }
}

/** A task file (JSONL) with a bad line: names the file and the 1-based line. */
export class TaskError extends DfmergeError {
  readonly file: string;
  readonly line: number | undefined;
  constructor(file: string, line: number | undefined, code: string, detail: string) {
    super(code, line === undefined ? `${file}: ${detail}` : `${file}:${line}: ${detail}`);
    this.file = file;
    this.line = line;
  }
}

/** A tokenizer.json that cannot be loaded or does not fit the model. */
export class TokenizerError extends DfmergeError {
  readonly file: string;
  constructor(file: string, code: string, detail: string) {
    super(code, `${file}: ${detail}`);
    this.file = file;
  }
}

/** A file or folder that cannot be written: names it and says why (disk full, read-only, permissions). */
export class WriteError extends DfmergeError {
  readonly file: string;
  constructor(file: string, detail: string) {
    super('WriteFailed', `${file}: ${detail}`);
    this.file = file;
  }
}

/** An input that changed (truncated, rewritten or replaced) while it was being read. */
export class InputChangedError extends DfmergeError {
  readonly file: string;
  constructor(file: string, detail: string) {
    super('InputChanged', `${file}: ${detail}`);
    this.file = file;
  }
}

/**
 * A Node file-system error (ENOSPC, EROFS, EACCES, ENOTDIR, ...) as a DfmergeError
 * naming the path, for errors that escaped the specific handling; undefined for
 * anything that is not a file-system error with a path.
 */
export function fileSystemError(e: unknown): DfmergeError | undefined {
  if (!(e instanceof Error)) return undefined;
  const err = e as NodeJS.ErrnoException & { dest?: unknown };
  if (typeof err.code !== 'string' || !/^E[A-Z]+$/.test(err.code) || typeof err.syscall !== 'string') return undefined;
  const where = typeof err.path === 'string' ? err.path : '(unknown path)';
  const dest = typeof err.dest === 'string' ? ` -> ${err.dest}` : '';
  const hint = FS_HINTS.get(err.code);
  return new DfmergeError(err.code, `${where}${dest}: ${err.syscall} failed: ${err.code}${hint ? ` (${hint})` : ''}`);
}

const FS_HINTS = new Map<string, string>([
  ['ENOSPC', 'no space left on the device: free some space or write elsewhere'],
  ['EDQUOT', 'disk quota exceeded'],
  ['EROFS', 'the file system is read-only: choose an output on a writable one'],
  ['EACCES', 'permission denied'],
  ['EPERM', 'operation not permitted'],
  ['ENOENT', 'no such file or folder'],
  ['ENOTDIR', 'a part of the path is a file, not a folder'],
  ['EISDIR', 'is a folder, not a file'],
  ['EEXIST', 'already exists'],
  ['EMFILE', 'too many open files'],
  ['ENAMETOOLONG', 'the path is too long'],
  ['ELOOP', 'too many levels of symbolic links'],
  ['EIO', 'input/output error from the device'],
]);

/** The native addon could not be loaded or misbehaved. */
export class NativeError extends DfmergeError {}

/** Reads `code` and `tensor` from an error thrown by the native addon. */
export function nativeErrorFields(e: unknown): { code: string; message: string; tensor?: string } {
  if (e instanceof Error) {
    const rec = e as Error & { code?: unknown; tensor?: unknown };
    return {
      code: typeof rec.code === 'string' ? rec.code : 'NativeError',
      message: e.message,
      tensor: typeof rec.tensor === 'string' ? rec.tensor : undefined,
    };
  }
  return { code: 'NativeError', message: String(e) };
}
