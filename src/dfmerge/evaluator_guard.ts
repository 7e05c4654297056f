/**
 * Runs one external evaluator command in its own process group and takes the
 * whole group down with it: when the command ends (stragglers it left running),
 * when this guard is told to stop (SIGTERM, SIGINT, SIGHUP: a timeout or a Ctrl-C
 * in dfmerge), and when dfmerge dies without a word (even `kill -9`): its end of
 * our stdin pipe closes and we see end-of-file. The evaluator writes straight to
 * dfmerge's pipes; the guard exits with the command's status (128 + signal when a
 * signal ended it).
 *
 *   node evaluator_guard.js SCRIPT DIR    (SCRIPT runs as `sh -c SCRIPT dfmerge-evaluator DIR`)
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

const [script, dir] = process.argv.slice(2);
if (script === undefined || dir === undefined) {
  process.stderr.write('evaluator_guard: usage: evaluator_guard SCRIPT DIR\n');
  process.exit(2);
}

const child = spawn('/bin/sh', ['-c', script, 'dfmerge-evaluator', dir], {
  detached: true,  // a new process group: -pid reaches everything it starts
  stdio: ['ignore', 'inherit', 'inherit'],
});

function killGroup(): void {
  if (child.pid === undefined) return;
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
}

let stopping = false;
function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  killGroup();
  process.exit(code);
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => stop(128 + constants.signals[sig]));
process.stdin.on('end', () => stop(129));
process.stdin.on('error', () => stop(129));
process.stdin.resume();

child.on('error', (e) => {
  process.stderr.write(`evaluator could not start: ${e.message}\n`);
  stop(127);
});
child.on('exit', (code, signal) => {
  stop(code ?? 128 + (signal ? constants.signals[signal] : 0));
});
