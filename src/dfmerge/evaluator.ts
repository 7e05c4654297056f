/**
 * External evaluator hook: `--evaluator "CMD {dir}"` runs a shell command on a
 * candidate merge written to a folder and reads per-task scores as JSON from the
 * last JSON object the command prints on stdout: {"task": score, ...} or
 * {"scores": {"task": score, ...}} (scores in [0, 1], higher is better).
 */
import { spawn } from 'node:child_process';
import { DfmergeError } from '../errors.js';

export class EvaluatorError extends DfmergeError {
  readonly stderr: string;
  constructor(message: string, stderr: string) {
    super('EvaluatorFailed', message);
    this.stderr = stderr;
  }
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

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
      const scores = Object.fromEntries(Object.entries(obj as Record<string, unknown>).filter(([, x]) => typeof x === 'number' && Number.isFinite(x))) as Record<string, number>;
      if (Object.keys(scores).length > 0) return scores;
    }
  }
  return undefined;
}

/** Runs the command with {dir} replaced (shell-quoted); resolves to its scores. */
export function runEvaluator(command: string, dir: string, timeoutSeconds = 0): Promise<Record<string, number>> {
  if (!command.includes('{dir}')) throw new EvaluatorError(`the evaluator command must contain {dir} (where the candidate model is written): ${command}`, '');
  const cmd = command.split('{dir}').join(shellQuote(dir));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, { shell: true, stdio: ['ignore', 'pipe', 'pipe'], ...(timeoutSeconds > 0 ? { timeout: timeoutSeconds * 1000 } : {}) });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString('utf8'); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString('utf8'); if (err.length > 65536) err = err.slice(-32768); });
    child.on('error', (e) => reject(new EvaluatorError(`evaluator could not start: ${e.message}`, err)));
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new EvaluatorError(`evaluator exited with ${signal ? `signal ${signal}` : `code ${code}`}: ${err.trim().split('\n').slice(-3).join(' | ')}`, err));
        return;
      }
      const scores = parseScores(out);
      if (!scores) reject(new EvaluatorError('evaluator printed no JSON object of scores on stdout', err));
      else resolve(scores);
    });
  });
}
