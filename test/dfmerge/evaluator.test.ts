// The external evaluator: no way of writing {dir} injects or splits; timeouts and
// a dying dfmerge take the evaluator's whole process group down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluatorScript, runEvaluator } from '../../src/dfmerge/evaluator.js';
import { processAlive } from '../../src/io/leftovers.js';
import { tempDir } from '../helpers.js';

/** An evaluator that records the folder it was given (as $1) and prints a score. */
function recorder(root: string): string {
  const p = join(root, 'ev.sh');
  writeFileSync(p, '#!/bin/sh\nprintf "%s" "$1" > "$(dirname "$0")/seen"\nprintf "%s" "$DFMERGE_CANDIDATE_DIR" > "$(dirname "$0")/seen-env"\nreadlink -f "$1" > "$(dirname "$0")/seen-real"\ntest -f "$1/model.safetensors" || exit 7\necho \'{"task": 0.75}\'\n');
  chmodSync(p, 0o755);
  return p;
}

test('every way of writing {dir} reaches the evaluator as one argument and runs nothing it contains', async () => {
  const root = tempDir();
  const ev = recorder(root);
  // a folder name a shell would split and execute: spaces, $(...), backquotes, quotes
  process.env.DFM_TEST_MARK1 = join(root, 'PWNED1');
  process.env.DFM_TEST_MARK2 = join(root, 'PWNED2');
  const dir = join(root, 'cand $(touch $DFM_TEST_MARK1) `touch $DFM_TEST_MARK2` it\'s "q"');
  mkdirSync(dir);
  writeFileSync(join(dir, 'model.safetensors'), 'x');
  const forms = [
    `${ev} {dir}`, `${ev} '{dir}'`, `${ev} "{dir}"`, `sh -c '${ev} {dir}'`, `sh -c "${ev} {dir}"`,
    `${ev} "{dir}" && true`, `cd / && ${ev} {dir}`,
  ];
  for (const cmd of forms) {
    const scores = await runEvaluator(cmd, dir);
    assert.deepEqual(scores, { task: 0.75 }, cmd);
    const seen = readFileSync(join(root, 'seen'), 'utf8');
    // the same folder, possibly through a plainly-spelled symlink
    assert.equal(readFileSync(join(root, 'seen-real'), 'utf8').trim(), realpathSync(dir), `${cmd}: got ${seen}`);
    assert.match(seen, /^[A-Za-z0-9_./+-]+$/, 'the folder is spelled with characters no shell treats specially');
    assert.equal(readFileSync(join(root, 'seen-env'), 'utf8'), seen);
  }
  assert.equal(existsSync(join(root, 'PWNED1')), false, 'a $(...) in the folder name was run');
  assert.equal(existsSync(join(root, 'PWNED2')), false, 'a `...` in the folder name was run');
});

test('the command is refused up front without {dir} or with an unterminated quote', () => {
  assert.throws(() => evaluatorScript('python eval.py'), { code: 'Usage', message: /must contain \{dir\}/ });
  assert.throws(() => evaluatorScript("eval.sh '{dir}"), { code: 'Usage', message: /unterminated ' quote/ });
  assert.equal(evaluatorScript("e '{dir}'"), `e ''"\${DFMERGE_CANDIDATE_DIR}"''`);
  assert.equal(evaluatorScript('e "x={dir}/m"'), 'e "x=${DFMERGE_CANDIDATE_DIR}/m"');
  assert.equal(evaluatorScript('e {dir}'), 'e "${DFMERGE_CANDIDATE_DIR}"');
});

test('a timeout kills the evaluator and everything it started, and fails the evaluation', async () => {
  const root = tempDir();
  const pidFile = join(root, 'pid');
  // a background grandchild that would outlive a plain kill of the shell
  const cmd = `sleep 300 </dev/null >/dev/null 2>&1 & echo $! > ${pidFile}; wait; echo '{"t": 1}' # {dir}`;
  await assert.rejects(runEvaluator(cmd, root, { timeoutSeconds: 5 }), { code: 'EvaluatorFailed', message: /timed out after 5 s/ });
  const pid = Number(readFileSync(pidFile, 'utf8'));
  for (let i = 0; i < 100 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(processAlive(pid), false, `the evaluator's child ${pid} survived the timeout`);
});

test('an evaluator outlives no dfmerge killed with -9', async () => {
  const root = tempDir();
  const pidFile = join(root, 'pid');
  const script = `
    import { runEvaluator } from ${JSON.stringify(new URL('../../src/dfmerge/evaluator.js', import.meta.url).href)};
    await runEvaluator(${JSON.stringify(`sleep 300 </dev/null >/dev/null 2>&1 & echo $! > ${pidFile}; wait # {dir}`)}, ${JSON.stringify(root)});`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  for (let i = 0; i < 500 && !existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 20));
  const pid = Number(readFileSync(pidFile, 'utf8'));
  assert.ok(processAlive(pid));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  for (let i = 0; i < 250 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(processAlive(pid), false, `evaluator process ${pid} kept running after dfmerge was killed`);
});

test('a failing evaluator is reported with its exit code and stderr; no scores is a failure', async () => {
  const root = tempDir();
  await assert.rejects(runEvaluator('echo oops >&2; exit 4 # {dir}', root), { message: /exited with code 4: oops/ });
  await assert.rejects(runEvaluator('echo hello # {dir}', root), { message: /no JSON object of scores/ });
});
