/**
 * "Is this output one of the inputs?" answered by what the paths are, not how
 * they are spelled: every path is compared by device + inode after following
 * symlinks, so `-o link-to-base`, `-o base/.` and `--base base/model.safetensors
 * -o base` are all recognised. Used by every command that writes.
 */
import { readdirSync, realpathSync, statSync, type BigIntStats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';

interface FileId { readonly dev: bigint; readonly ino: bigint }

function idOf(path: string): FileId | undefined {
  let st: BigIntStats;
  try {
    st = statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
  return { dev: st.dev, ino: st.ino };
}

const same = (a: FileId, b: FileId) => a.dev === b.dev && a.ino === b.ino;

/** True when both paths exist and name the same file or folder (through symlinks and hard links). */
export function sameFile(a: string, b: string): boolean {
  const x = idOf(a);
  const y = idOf(b);
  return x !== undefined && y !== undefined && same(x, y);
}

/** The real path of `p`, or its resolved spelling when it does not exist. */
function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** The folder itself and its real ancestors, as identities. */
function selfAndAncestors(p: string): FileId[] {
  const ids: FileId[] = [];
  let d = real(p);
  for (;;) {
    const id = idOf(d);
    if (id) ids.push(id);
    const up = dirname(d);
    if (up === d) return ids;
    d = up;
  }
}

/**
 * What an input occupies on disk: the path itself and, for a folder, every entry
 * in it (a checkpoint's files may be symlinks into another folder, as in the
 * Hugging Face cache).
 */
function occupied(input: string): string[] {
  const paths = [input];
  try {
    if (statSync(input).isDirectory()) for (const f of readdirSync(input)) paths.push(join(input, f));
  } catch {
    /* missing inputs are reported by whoever opens them */
  }
  return paths;
}

/**
 * Refuses an output folder that would replace or hold any input: the output is an
 * input folder, the folder of an input file, or a folder above either (including
 * through symlinks). The output folder is replaced as a whole when a run finishes,
 * so anything inside it would be lost.
 */
export function assertOutputFolderNotInput(out: string, inputs: readonly string[], flag = '--out'): void {
  const outId = idOf(out);
  if (!outId) return;  // a folder that does not exist yet holds nothing
  for (const input of inputs) {
    for (const p of occupied(input)) {
      if (selfAndAncestors(p).some((id) => same(id, outId))) {
        const how = real(p) === real(input) ? input : `${input} (its file ${p} resolves to ${real(p)})`;
        throw new UsageError(`${flag} ${out}: the output folder is one of the input models or holds one (${how}); writing there would destroy it: choose another output folder`);
      }
    }
  }
}

/**
 * Refuses an output file that is one of the inputs' files (by device + inode: a
 * symlink or hard link to an input is refused too), or an existing file without
 * force.
 */
export function assertOutputFileNotInput(out: string, inputs: readonly string[], force: boolean, flag = '--out'): void {
  let st;
  try {
    st = statSync(out);
  } catch {
    return;
  }
  if (st.isDirectory()) throw new UsageError(`${flag} ${out} is a folder; give a file name, e.g. ${join(out, 'fisher.safetensors')}`);
  for (const input of inputs) {
    for (const p of occupied(input)) {
      if (sameFile(p, out)) throw new UsageError(`${flag} ${out} is the input file ${p}; writing there would destroy it: choose another output file`);
    }
  }
  if (!force) throw new UsageError(`${flag} ${out} already exists; pass --force to replace it`);
}
