/**
 * Reading the small files a user points at (config.json, tokenizer.json, task
 * JSONL, YAML): only regular files, opened without blocking so a FIFO or a device
 * is refused instead of hanging, with a size limit, and errors that name the file.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { DfmergeError } from '../errors.js';

export class InputFileError extends DfmergeError {
  readonly file: string;
  constructor(file: string, code: string, detail: string) {
    super(code, `${file}: ${detail}`);
    this.file = file;
  }
}

/** 2 GiB: larger than any config, tokenizer or task file; a bound on what is read into memory. */
export const MAX_TEXT_FILE_BYTES = 2 ** 31 - 1;

function kindOf(mode: number): string {
  const t = mode & constants.S_IFMT;
  if (t === constants.S_IFDIR) return 'a folder';
  if (t === constants.S_IFIFO) return 'a FIFO (named pipe)';
  if (t === constants.S_IFCHR) return 'a character device';
  if (t === constants.S_IFBLK) return 'a block device';
  if (t === constants.S_IFSOCK) return 'a socket';
  return 'not a regular file';
}

/** The bytes of a regular file; InputFileError for anything else. `what` says what the file is for. */
export function readRegularFile(path: string, what = 'file', maxBytes = MAX_TEXT_FILE_BYTES): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'OpenFailed';
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'permission denied' : `cannot be opened (${code})`;
    throw new InputFileError(path, code === 'ENOENT' ? 'NotFound' : 'OpenFailed', `${what} ${why}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputFileError(path, 'NotAFile', `${what} is ${kindOf(st.mode)}, expected a regular file`);
    if (st.size > maxBytes) throw new InputFileError(path, 'TooLarge', `${what} is ${st.size} bytes, more than the ${maxBytes}-byte limit`);
    const buf = Buffer.alloc(st.size);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, done);
      if (n === 0) break;  // shrank while reading: what is there is what we have
      done += n;
    }
    return done === buf.length ? buf : buf.subarray(0, done);
  } catch (e) {
    if (e instanceof InputFileError) throw e;
    throw new InputFileError(path, 'ReadFailed', `${what} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  } finally {
    closeSync(fd);
  }
}

/** A regular file as UTF-8 text, without a leading byte-order mark. */
export function readTextFile(path: string, what = 'file'): string {
  const text = readRegularFile(path, what).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * A regular file holding one JSON object; InputFileError naming the file when it is
 * empty, binary or not an object. (JSON.parse defines keys as own properties, so a
 * key "__proto__" is data here; iterate with Object.entries, never copy by assignment.)
 */
export function readJsonObjectFile(path: string, what = 'JSON file'): Record<string, unknown> {
  const text = readTextFile(path, what || 'file');
  const is = what ? `${what} is` : 'is';
  if (text.trim() === '') throw new InputFileError(path, 'InvalidJson', `${is} empty, expected a JSON object`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InputFileError(path, 'InvalidJson', `${what ? `${what} is ` : ''}not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InputFileError(path, 'InvalidJson', `${what ? `${what} ` : ''}expected a JSON object`);
  }
  return value as Record<string, unknown>;
}
