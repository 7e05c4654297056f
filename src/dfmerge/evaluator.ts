/**
 * External evaluator hook: `--evaluator "CMD {dir}"` runs a shell command on a
 * candidate merge written to a folder and reads per-task scores as JSON from the
 * last JSON object the command prints on stdout: {"task": score, ...} or
 * {"scores": {"task": score, ...}} (scores in [0, 1], higher is better).
 *
 * The folder never enters the command text. It is passed as the environment
 * variable DFMERGE_CANDIDATE_DIR and as the script's first argument ($1); every
 * `{dir}` is replaced by a reference to the variable, quoted for where it stands
 * (bare, inside '…' or inside "…"), so no way of writing `{dir}` lets a path with
 * spaces split or a path with `$(…)` run. The folder handed over is also spelled
 * with safe characters only (a symlink when the real path has others), which
 * covers commands that pass it through a second shell. The command runs in its
 * own process group under a guard that kills the group on timeout, on Ctrl-C and
 * when dfmerge dies.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DfmergeError, UsageError } from '../errors.js';
import { onAbnormalExit } from '../io/cleanup.js';

export class EvaluatorError extends DfmergeError {
  readonly stderr: string;
  constructor(message: string, stderr: string) {
    super('EvaluatorFailed', message);
    this.stderr = stderr;
  }
}

export const CANDIDATE_DIR_VAR = 'DFMERGE_CANDIDATE_DIR';
const PLACEHOLDER = '{dir}';

/**
 * The shell script for a command: each {dir} becomes a quoted reference to
 * $DFMERGE_CANDIDATE_DIR fitting its quoting context. UsageError for a command
 * without {dir} or with an unterminated quote.
 */
export function evaluatorScript(command: string): string {
  if (!command.includes(PLACEHOLDER)) {
    throw new UsageError(`--evaluator must contain {dir}, where the candidate model folder goes (it is also in $${CANDIDATE_DIR_VAR}): ${command}`);
  }
  let out = '';
  let state: 'bare' | 'single' | 'double' = 'bare';
  for (let i = 0; i < command.length;) {
    if (command.startsWith(PLACEHOLDER, i)) {
      out += state === 'bare' ? `"\${${CANDIDATE_DIR_VAR}}"`
        : state === 'double' ? `\${${CANDIDATE_DIR_VAR}}`
          : `'"\${${CANDIDATE_DIR_VAR}}"'`;  // close '…', insert a double-quoted reference, reopen
      i += PLACEHOLDER.length;
      continue;
    }
    const c = command[i]!;
    if (state === 'single') {
      if (c === "'") state = 'bare';
    } else if (c === '\\' && i + 1 < command.length) {
      out += c + command[i + 1]!;
      i += 2;
      continue;
    } else if (state === 'bare' && c === "'") {
      state = 'single';
    } else if (c === '"') {
      state = state === 'double' ? 'bare' : 'double';
    }
    out += c;
    i += 1;
  }
  if (state !== 'bare') throw new UsageError(`--evaluator has an unterminated ${state === 'single' ? "'" : '"'} quote: ${command}`);
  return out;
}

/** Parses the evaluator's stdout: the last line (or the whole output) holding a JSON object of numbers. */
export function parseScores(stdout: string): Record<string, number> | undefined {
  const candidates = [stdout, ...stdout.split('\n').reverse()];
  for (const c of candidates) {
    const t = c.trim();
    if (!t.startsWith('{')) continue;
    let v: unknown;
    try { v = JSON.parse(t); } catch { continue; }
    const obj = (v as { scores?: unknown }).scores ?? v;
    if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
      // Object.fromEntries defines own properties: a task named "__proto__" stays data
      const scores = Object.fromEntries(Object.entries(obj as Record<string, unknown>)
        .filter(([, x]) => typeof x === 'number' && Number.isFinite(x))) as Record<string, number>;
      if (Object.keys(scores).length > 0) return scores;
    }
  }
  return undefined;
}

const SAFE_PATH = /^[A-Za-z0-9_./+-]+$/;

/** `dir` spelled with safe characters only: itself, or a symlink to it in a fresh temporary folder (with its remover). */
export function safeSpelling(dir: string): { path: string; remove: () => void } {
  if (SAFE_PATH.test(dir)) return { path: dir, remove: () => {} };
  const base = tmpdir();
  if (!SAFE_PATH.test(base)) {
    throw new EvaluatorError(`the candidate folder ${JSON.stringify(dir)} has characters a shell treats specially, and so has the temporary folder ${JSON.stringify(base)}; set TMPDIR to a plain path`, '');
  }
  const holder = mkdtempSync(join(base, 'dfmerge-candidate-'));
  const link = join(holder, 'candidate');
  symlinkSync(dir, link, 'dir');
  return { path: link, remove: () => rmSync(holder, { recursive: true, force: true }) };
}

const GUARD = fileURLToPath(new URL('./evaluator_guard.js', import.meta.url));

export interface EvaluatorOptions {
  /** Seconds before the evaluator's process group is killed and the evaluation counts as failed; 0: no limit. */
  timeoutSeconds?: number;
  /** Aborting kills the process group (Ctrl-C in the coordinator). */
  signal?: AbortSignal;
}

export interface GuardedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  aborted: boolean;
  pid: number | undefined;
}

/**
 * Runs `sh -c SCRIPT dfmerge-evaluator ARG` under the guard (its own process
 * group, killed on timeout, on abort and when dfmerge dies); resolves when it
 * has ended, whatever its status. Rejects only when node cannot start the guard.
 */
export function runGuarded(script: string, arg: string, options: EvaluatorOptions & { env?: NodeJS.ProcessEnv } = {}): Promise<GuardedRun> {
  const timeout = options.timeoutSeconds ?? 0;
  return new Promise((resolve, reject) => {
    // detached: the guard outlives a kill of the group it was started from (a worker's job killed
    // as a group), so it still sees its stdin close and takes its own command's group down
    const child = spawn(process.execPath, [GUARD, script, arg], { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env, detached: true });
    // on any exit of ours the guard kills the command's group (its stdin closes too)
    const unregister = onAbnormalExit(() => { child.kill('SIGTERM'); });
    let timedOut = false;
    let aborted = false;
    const timer = timeout > 0 ? setTimeout(() => { timedOut = true; child.kill('SIGTERM'); }, timeout * 1000) : undefined;
    const onAbort = () => { aborted = true; child.kill('SIGTERM'); };
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString('utf8'); if (out.length > 1 << 24) out = out.slice(-(1 << 20)); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString('utf8'); if (err.length > 65536) err = err.slice(-32768); });
    child.stdin.on('error', () => { /* the guard is gone; its exit is reported below */ });
    const finish = () => {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      unregister();
    };
    child.on('error', (e) => { finish(); reject(e); });
    child.on('close', (code, signal) => {
      finish();
      resolve({ code, signal, stdout: out, stderr: err, timedOut, aborted, pid: child.pid });
    });
  });
}

/** Runs the command on `dir`; resolves to its scores, rejects with EvaluatorError (failure, timeout, no scores). */
export async function runEvaluator(command: string, dir: string, options: EvaluatorOptions = {}): Promise<Record<string, number>> {
  const script = evaluatorScript(command);
  const timeout = options.timeoutSeconds ?? 0;
  const spelled = safeSpelling(dir);
  let r: GuardedRun;
  try {
    r = await runGuarded(script, spelled.path, { ...options, env: { ...process.env, [CANDIDATE_DIR_VAR]: spelled.path } });
  } catch (e) {
    throw new EvaluatorError(`evaluator could not start: ${(e as Error).message}`, '');
  } finally {
    spelled.remove();
  }
  if (r.timedOut) throw new EvaluatorError(`evaluator timed out after ${timeout} s (its processes were killed)`, r.stderr);
  if (r.aborted) throw new EvaluatorError('evaluator was cancelled (its processes were killed)', r.stderr);
  if (r.code !== 0) {
    throw new EvaluatorError(`evaluator exited with ${r.signal ? `signal ${r.signal}` : `code ${r.code}`}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`, r.stderr);
  }
  const scores = parseScores(r.stdout);
  if (!scores) throw new EvaluatorError('evaluator printed no JSON object of scores on stdout', r.stderr);
  return scores;
}
