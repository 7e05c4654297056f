/**
 * What a model folder is, cheaply, for the run journal: a resumed run must be
 * evaluating the same weights, not merely the same paths. Per weight or config
 * file: size, modification time and the SHA-256 of its header (a safetensors
 * file's 8-byte length and JSON header: names, dtypes, shapes, offsets) or of its
 * whole content (small JSON files). Rewriting weights in place changes the size
 * or the mtime; a different checkpoint copied over with the same mtime still
 * changes the header hash unless it has identical tensors.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { CheckpointError } from '../errors.js';

export interface FileFingerprint {
  name: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** At most this much of a safetensors header is hashed (the format caps headers at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

function fingerprintFile(path: string): FileFingerprint {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);  // a FIFO must not block
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CheckpointError(path, 'NotAFile', 'is not a regular file (a FIFO, device or folder)');
    const h = createHash('sha256');
    if (path.endsWith('.safetensors')) {
      const len = readAt(fd, 0, 8);
      h.update(len);
      if (len.length === 8) {
        const n = Number(len.readBigUInt64LE(0));
        h.update(readAt(fd, 8, Math.min(n, MAX_HEADER_BYTES, Math.max(0, st.size - 8))));
      }
    } else {
      h.update(readAt(fd, 0, st.size));
    }
    return { name: basename(path), size: st.size, mtimeMs: st.mtimeMs, sha256: h.digest('hex') };
  } finally {
    closeSync(fd);
  }
}

/** A model folder (or single .safetensors file): its weight files, index and config.json, each fingerprinted. */
export function checkpointFingerprint(pathOrDir: string): { path: string; files: FileFingerprint[] } {
  const path = resolve(pathOrDir);
  let files: string[];
  try {
    files = statSync(path).isDirectory()
      ? readdirSync(path).filter((f) => f.endsWith('.safetensors') || f === 'model.safetensors.index.json' || f === 'config.json')
        .sort().map((f) => join(path, f))
      : [path];
  } catch (e) {
    throw new CheckpointError(path, 'NotFound', `cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return { path, files: files.map(fingerprintFile) };
}
