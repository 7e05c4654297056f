/**
 * Model folders named as on the Hugging Face Hub (`org/name`, `org/name@REV`),
 * found in the local Hub cache (docs/design.md §10). Offline only: nothing is
 * downloaded. The cache layout (huggingface_hub):
 *
 *   <cache>/models--org--name/refs/<branch or tag>      a file holding a commit hash
 *   <cache>/models--org--name/snapshots/<commit>/…      the files, symlinks into ../../blobs/
 *
 * <cache> is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub;
 * each that is set is tried in that order. A local folder of the same relative
 * name wins over the cache.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';

/** org/name with an optional @revision: Hub repository names (letters, digits, '-', '_', '.'). */
const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+?)(?:@([\w./-]+))?$/;

/** The Hub cache folders to look in, most specific first (duplicates removed). */
export function hubCacheDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs: string[] = [];
  if (env.HF_HUB_CACHE) dirs.push(resolve(env.HF_HUB_CACHE));
  if (env.HF_HOME) dirs.push(resolve(env.HF_HOME, 'hub'));
  dirs.push(join(homedir(), '.cache', 'huggingface', 'hub'));
  return [...new Set(dirs)];
}

const isFolder = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** `org/name[@rev]` parsed, or undefined when `spec` cannot be a Hub id (an absolute path, ./x, a/b/c …). */
export function parseHubId(spec: string): { org: string; name: string; revision: string | undefined } | undefined {
  if (spec.includes('..') || spec.startsWith('.')) return undefined;
  const m = HUB_ID.exec(spec);
  return m ? { org: m[1]!, name: m[2]!, revision: m[3] } : undefined;
}

export interface ResolvedModel {
  /** The folder to read (`spec` itself, as given, when that exists or is no Hub id). */
  readonly dir: string;
  /** How it was found, for a note on stderr; undefined for a plain path. */
  readonly note?: string;
}

/** The snapshot folder of a Hub id in one cache, or the paths looked at when it is not there. */
function inCache(cache: string, id: { org: string; name: string; revision: string | undefined }): { dir?: string; tried: string[] } {
  const repo = join(cache, `models--${id.org}--${id.name}`);
  const rev = id.revision ?? 'main';
  const tried: string[] = [];
  const ref = join(repo, 'refs', rev);
  tried.push(ref);
  let commit: string | undefined;
  try {
    if (statSync(ref).isFile()) commit = readFileSync(ref, 'utf8').trim();
  } catch {
    /* no such ref: perhaps the revision is a commit */
  }
  if (commit !== undefined && /^[\w.-]+$/.test(commit)) {
    const snap = join(repo, 'snapshots', commit);
    tried.push(snap);
    if (isFolder(snap)) return { dir: snap, tried };
  }
  if (!rev.includes('/')) {
    const snap = join(repo, 'snapshots', rev);
    if (!tried.includes(snap)) tried.push(snap);
    if (isFolder(snap)) return { dir: snap, tried };
  }
  return { tried };
}

/**
 * The folder `spec` names: itself when it exists; else, for `org/name[@rev]`, its
 * snapshot in the Hub cache. `what` names the flag or config entry in messages.
 */
export function resolveModelDir(spec: string, what: string, env: NodeJS.ProcessEnv = process.env): ResolvedModel {
  const id = parseHubId(spec);
  const local = resolve(spec);
  if (!id) return { dir: spec };
  const caches = hubCacheDirs(env);
  if (existsSync(local)) {
    const shadowed = id.revision === undefined ? caches.map((c) => inCache(c, id).dir).find((d) => d !== undefined) : undefined;
    return { dir: spec, ...(shadowed ? { note: `${what} ${spec}: using the local folder ${local}, not the Hugging Face cache's ${shadowed}` } : {}) };
  }
  const tried: string[] = [local];
  for (const c of caches) {
    const r = inCache(c, id);
    if (r.dir) return { dir: r.dir, note: `${what} ${spec}: using ${r.dir} from the Hugging Face cache` };
    tried.push(...r.tried);
  }
  throw new UsageError(`${what} ${spec}: no such folder, and not in the Hugging Face cache (offline: nothing is downloaded); looked at ${tried.join(', ')}. ` +
    `Download it first (e.g. \`huggingface-cli download ${id.org}/${id.name}\`), set HF_HUB_CACHE or HF_HOME to where your cache is, or give the folder's path`);
}

/** resolveModelDir, printing its note (which folder was used) on stderr. */
export function modelDir(spec: string, what: string): string {
  const r = resolveModelDir(spec, what);
  if (r.note) process.stderr.write(`note: ${r.note}\n`);
  return r.dir;
}
