/** Shared test helpers: repository paths, temporary folders, raw safetensors bytes. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

function findRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('package.json not found above the test file');
    d = up;
  }
  return d;
}

export const ROOT = findRoot();
export const FIXTURES = join(ROOT, 'test', 'fixtures');

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = 'dfmerge-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Builds safetensors bytes from a header (object or raw JSON text) and a data section. */
export function rawSafetensors(header: object | string, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** A Python interpreter with the safetensors package, or undefined. */
export function pythonWithSafetensors(): string | undefined {
  const candidates = [process.env.DFMERGE_PYTHON, join(ROOT, '.venv', 'bin', 'python')].filter((p): p is string => !!p);
  for (const py of candidates) {
    if (!existsSync(py)) continue;
    const r = spawnSync(py, ['-c', 'import safetensors, numpy, torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return undefined;
}

/** Runs the CLI in a child process. */
/** A Python (DFMERGE_PYTHON, else the repo's .venv) with lm_eval, transformers and torch, or undefined. */
export function pythonWithLmEval(): string | undefined {
  for (const py of [process.env.DFMERGE_PYTHON, join(ROOT, '.venv', 'bin', 'python')]) {
    if (py && existsSync(py) && spawnSync(py, ['-c', 'import lm_eval, transformers, torch'], { encoding: 'utf8' }).status === 0) return py;
  }
  return undefined;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'dfmerge.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
