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
