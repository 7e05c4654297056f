// One task file, the same prompts in `dfmerge eval`, `fisher` and `optimize`: --delimiter,
// --truncate and --chat-template (and, for the objective, --scoring) reach every command,
// and the default delimiter is lm-eval's " ".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTask, tokenizeTask, encodePair } from '../../src/eval/task.js';
import { tokenizeOptions, DEFAULT_DELIMITER } from '../../src/eval/prompt_options.js';
import { evaluateTasks } from '../../src/eval/accuracy.js';
import { computeFisher, drawFisherExamples } from '../../src/fisher/fisher.js';
import { loadSetup } from '../../src/dfmerge/setup.js';
import { DfMergeObjective } from '../../src/dfmerge/objective.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { makeTinyRun } from './support.js';
import { runCli, tempDir } from '../helpers.js';

const root = tempDir('dfmerge-prompts-');
const run = await makeTinyRun(root, 2, 0.05);
const DELIM = ' the ';  // words of the fixture vocabulary: the choices' tokens visibly change
const ids = (x: Int32Array) => [...x];

test('the default delimiter is lm-eval\'s " " ("" with a chat template), and an explicit one is used as given', () => {
  const rt = LlamaRuntime.fromCheckpoint(run.base);
  const task = loadTask(run.tasks[0]!);
  const e = task.examples[0]!;
  assert.equal(DEFAULT_DELIMITER, ' ');
  const byDefault = tokenizeTask(task, rt.tokenizer!, 64).examples[0]!;
  assert.deepEqual(ids(byDefault.choices[0]!), ids(encodePair(rt.tokenizer!, e.prompt, ' ' + e.choices[0]!).continuation));
  const given = tokenizeTask(task, rt.tokenizer!, 64, tokenizeOptions({ delimiter: DELIM }, rt.tokenizer!)).examples[0]!;
  assert.deepEqual(ids(given.choices[0]!), ids(encodePair(rt.tokenizer!, e.prompt, DELIM + e.choices[0]!).continuation));
  assert.notDeepEqual(ids(given.choices[0]!), ids(byDefault.choices[0]!));
});

test('loadSetup tokenizes validation and Fisher examples with the prompt options, and the objective ranks with the scoring', async () => {
  const rt = LlamaRuntime.fromCheckpoint(run.base);
  const opts = { delimiter: DELIM };
  const want = tokenizeTask(loadTask(run.tasks[0]!), rt.tokenizer!, rt.config.maxPositions, tokenizeOptions(opts, rt.tokenizer!));
  const setup = loadSetup({ base: run.base, models: run.models, tasks: run.tasks.map((validation) => ({ validation })), fisherSamples: 2,
    validationFraction: 1, seed: 3, needFisher: true, prompts: opts, scoring: 'sum' });
  try {
    assert.deepEqual(setup.validation[0]!.examples.map((x) => x.choices.map(ids)), want.examples.map((x) => x.choices.map(ids)));
    const drawn = drawFisherExamples(want.examples, 2, 3);
    assert.deepEqual(setup.fisherExamples[0]!.map((x) => x.choices.map(ids)), drawn.map((x) => x.choices.map(ids)));
    const obj = new DfMergeObjective(setup, { fisher: true, fisherMode: 'expected' });
    const r = await obj.evaluate(setup.validation, setup.baseSource);
    const direct = await evaluateTasks(rt, [want], { scoring: 'sum' });
    assert.equal(r.tasks[0]!.scoring, 'sum');
    assert.deepEqual(r.tasks[0]!.predictions, direct.tasks[0]!.predictions);
  } finally {
    setup.close();
  }
});

test('dfmerge fisher and optimize take --delimiter (and optimize --scoring) and build the prompts eval builds', async () => {
  const out = join(root, 'f.safetensors');
  const r = runCli(['fisher', '--model', run.base, '--task', run.tasks[0]!, '--samples', '3', '--seed', '1', '--delimiter', DELIM, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const rt = LlamaRuntime.fromCheckpoint(run.base);
  const task = tokenizeTask(loadTask(run.tasks[0]!), rt.tokenizer!, rt.config.maxPositions, tokenizeOptions({ delimiter: DELIM }, rt.tokenizer!));
  const { fisher } = await computeFisher(rt, drawFisherExamples(task.examples, 3, 1), { mode: 'expected', batch: 1 });
  const f = SafetensorsFile.open(out);
  try {
    assert.equal(f.metadata.dfmerge_delimiter, JSON.stringify(DELIM));
    const name = rt.params[0]!.name;
    const got = f.toFloat32(name);
    const want = rt.tensorViews(fisher).get(name)!;
    let worst = 0;
    for (let j = 0; j < got.length; j++) worst = Math.max(worst, Math.abs(got[j]! - want[j]!) / Math.max(1e-30, Math.abs(want[j]!)));
    assert.ok(worst <= 1e-5, `relative difference ${worst}`);
  } finally {
    f.close();
  }
  const o = runCli(['optimize', '--base', run.base, '-m', run.models[0]!, '-m', run.models[1]!, '--task', run.tasks[0]!, '--task', run.tasks[1]!,
    '-o', join(root, 'opt'), '--init-points', '1', '--iterations', '0', '--fisher-samples', '2', '--no-baselines', '-q',
    '--delimiter', DELIM, '--scoring', 'sum']);
  assert.equal(o.status, 0, o.stderr);
  const header = JSON.parse(readFileSync(join(root, 'opt.journal.jsonl'), 'utf8').split('\n')[0]!) as { config: { prompts: { delimiter: string }; scoring?: string } };
  assert.equal(header.config.prompts.delimiter, DELIM);
  assert.equal(header.config.scoring, 'sum');
});
