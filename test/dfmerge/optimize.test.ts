import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { optimize, type OptimizeOptions } from '../../src/dfmerge/optimize.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { loadTask, tokenizeTask } from '../../src/eval/task.js';
import { drawFisherExamples } from '../../src/fisher/fisher.js';
import { evaluateTasks } from '../../src/eval/accuracy.js';
import { runMerge } from '../../src/merge/run.js';
import { validateConfig } from '../../src/merge/config.js';
import { DfMergeObjective } from '../../src/dfmerge/objective.js';
import { loadSetup } from '../../src/dfmerge/setup.js';
import { makeTinyRun, readFlat } from './support.js';
import { fisherFromGradients } from '../model/helpers.js';
import { runCli, tempDir } from '../helpers.js';

const root = tempDir();
const run = await makeTinyRun(root, 2, 0.05);
let n = 0;

function opts(extra: Partial<OptimizeOptions> = {}): OptimizeOptions {
  return {
    base: run.base, models: run.models, tasks: run.tasks.map((validation) => ({ validation, test: validation })),
    out: join(root, `out${n++}`), initPoints: 3, iterations: 2, fisherSamples: 3, seed: 5, baselines: false, ...extra,
  };
}

function journalLines(path: string): { type: string; lambda?: number[]; objective?: number | null; failed?: boolean; error?: string }[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
}

test('the saved merge is θ_pre + M·Σ F_i λ_i τ_i / Σ F_i with F_i the Fisher of the scaled model, recomputed independently', async () => {
  const r = await optimize(opts());
  assert.equal(r.history.length, 5);
  const lambda = r.best.lambda;
  // independent recomputation: each scaled model built in f32 in TypeScript and given to the runtime as
  // plain weights; its Fisher from full per-choice gradients (the unfused backward), squared here
  const rt0 = LlamaRuntime.fromCheckpoint(run.base);
  const base = readFlat(rt0, run.base);
  const thetas = run.models.map((m) => readFlat(rt0, m));
  const num = new Float64Array(base.length);
  const den = new Float64Array(base.length);
  for (let i = 0; i < run.models.length; i++) {
    const scaled = base.map((b, j) => b + lambda[i]! * (thetas[i]![j]! - b));
    const rt = LlamaRuntime.fromWeights(rt0.config, rt0.tensorViews(scaled), rt0.tokenizer);
    const task = tokenizeTask(loadTask(run.tasks[i]!), rt0.tokenizer!, rt0.config.maxPositions);
    const fisher = await fisherFromGradients(rt, drawFisherExamples(task.examples, 3, 5 + i));
    for (let j = 0; j < base.length; j++) {
      num[j] += fisher[j]! * lambda[i]! * (thetas[i]![j]! - base[j]!);
      den[j] += fisher[j]!;
    }
  }
  const saved = readFlat(rt0, r.out);
  let worst = 0;
  let scale = 0;
  for (let j = 0; j < base.length; j++) {
    const want = base[j]! + (run.models.length * num[j]!) / den[j]!;
    worst = Math.max(worst, Math.abs(saved[j]! - want));
    scale = Math.max(scale, Math.abs(want));
  }
  assert.ok(worst <= 1e-5 * scale, `max error ${worst} vs scale ${scale}`);
  for (const f of ['config.json', 'tokenizer.json', 'model.safetensors', 'dfmerge-report.md', 'dfmerge-report.json', 'dfmerge-objective.svg']) {
    assert.ok(existsSync(join(r.out, f)), f);
  }
  assert.match(readFileSync(join(r.out, 'dfmerge-objective.svg'), 'utf8'), /^<svg[\s\S]*<polyline[\s\S]*<\/svg>\n$/);
  const evals = journalLines(r.journal).filter((l) => l.type === 'evaluation');
  assert.equal(evals.length, 5);
  assert.equal(Math.max(...evals.map((e) => e.objective!)), r.best.objective);
});

// (a run really killed mid-evaluation is in interrupt.test.ts)
test('a finished run extended with --resume and more iterations repeats no evaluation and proposes what a longer run would', async () => {
  const whole = await optimize(opts({ iterations: 3 }));
  const o = opts({ iterations: 1 });
  const first = await optimize(o);
  const before = readFileSync(first.journal, 'utf8');
  const seen: number[] = [];
  const resumed = await optimize({ ...o, iterations: 3, resume: true, onEvaluation: (e) => seen.push(e.index) });
  assert.deepEqual(seen, [4, 5], 'only the missing evaluations run');
  assert.ok(readFileSync(resumed.journal, 'utf8').startsWith(before), 'the journal is only appended to');
  assert.deepEqual(resumed.history.map((e) => e.lambda), whole.history.map((e) => e.lambda));
});

test('resume refuses a journal of another configuration; a new run refuses to clobber a journal', async () => {
  const o = opts({ iterations: 0 });
  await optimize(o);
  await assert.rejects(optimize({ ...o, seed: 6, resume: true, force: true }), { code: 'ConfigChanged', message: /differs in: seed/ });
  await assert.rejects(optimize({ ...o, force: true }), { code: 'JournalExists', message: /pass --resume/ });
  await assert.rejects(optimize({ ...opts(), resume: true }), { code: 'NoJournal' });
});

test('--no-fisher gives task arithmetic with per-model λ', async () => {
  const r = await optimize(opts({ noFisher: true }));
  const rt = LlamaRuntime.fromCheckpoint(run.base);
  const base = readFlat(rt, run.base);
  const thetas = run.models.map((m) => readFlat(rt, m));
  const saved = readFlat(rt, r.out);
  for (let j = 0; j < base.length; j += 7) {
    const want = base[j]! + r.best.lambda.reduce((a, l, i) => a + l * (thetas[i]![j]! - base[j]!), 0);
    assert.ok(Math.abs(saved[j]! - want) <= 1e-6 * (1 + Math.abs(want)), `${j}: ${saved[j]} vs ${want}`);
  }
});

test('external evaluator: scores read from its stdout; a failing evaluator is journalled and the run goes on', async () => {
  const script = join(root, 'evaluator.mjs');
  const counter = join(root, 'count.txt');
  writeFileSync(counter, '0');
  // fails on its 2nd call, otherwise scores the candidate folder by whether it holds a model
  writeFileSync(script, `
    import { existsSync, readFileSync, writeFileSync } from 'node:fs';
    const k = Number(readFileSync(${JSON.stringify(counter)}, 'utf8')) + 1;
    writeFileSync(${JSON.stringify(counter)}, String(k));
    if (k === 2) { console.error('evaluator crashed on purpose'); process.exit(3); }
    const ok = existsSync(process.argv[2] + '/model.safetensors') && existsSync(process.argv[2] + '/config.json');
    console.log('some log line');
    console.log(JSON.stringify({ task0: ok ? 0.25 * k : 0, task1: 0.5 }));`);
  for (const noFisher of [false, true]) {
    writeFileSync(counter, '0');
    const r = await optimize(opts({ evaluator: `${JSON.stringify(process.execPath)} ${script} {dir}`, noFisher }));
    const evals = journalLines(r.journal).filter((l) => l.type === 'evaluation');
    assert.equal(evals.length, 5);
    assert.equal(evals[1]!.failed, true);
    assert.match(evals[1]!.error!, /exited with code 3[\s\S]*evaluator crashed on purpose/);
    assert.equal(evals[0]!.objective, (0.25 + 0.5) / 2);
    assert.equal(r.best.index, 4);
  }
});

test('bad input: models of another architecture, missing task files, too few models', async () => {
  await assert.rejects(optimize({ ...opts(), models: [run.models[0]!, join(root, '..', 'nope')] }), /nope/);
  await assert.rejects(optimize({ ...opts(), tasks: [{ validation: run.tasks[0]! }] }), { code: 'Usage', message: /2 models but 1 task files/ });
  await assert.rejects(optimize({ ...opts(), tasks: [{ validation: run.tasks[0]! }, { validation: join(root, 'missing.jsonl') }] }), { message: /missing\.jsonl does not exist/ });
  await assert.rejects(optimize({ ...opts(), models: [run.models[0]!], tasks: [{ validation: run.tasks[0]! }] }), { message: /at least two fine-tuned models/ });
});

test('dfmerge optimize CLI prints the comparison table and refuses bad flags', () => {
  const out = join(root, 'cli-out');
  const r = runCli(['optimize', '--base', run.base, '-m', run.models[0]!, '-m', run.models[1]!, '--task', run.tasks[0]!, '--task', run.tasks[1]!,
    '--init-points', '2', '--iterations', '1', '--fisher-samples', '2', '-o', out, '-q']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /best λ = \[/);
  assert.match(r.stdout, /\| DF-Merge \|/);
  assert.match(r.stdout, /\| TIES \(density 0\.2\)/);
  assert.match(r.stdout, /\| Fisher merging \|/);
  const bad = runCli(['optimize', '--base', run.base, '-m', run.models[0]!, '-m', run.models[1]!, '--task', run.tasks[0]!, '-o', join(root, 'x')]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /2 models but 1 --task files/);
});

test('report rows: base and experts equal their checkpoints evaluated from disk; --tuned-baselines adds TIES and DARE tuned by BO', async () => {
  const r = await optimize(opts({ baselines: true, tunedBaselines: true, iterations: 1 }));
  const names = r.report.rows.map((x) => x.name);
  const tasks = run.tasks.map((f) => tokenizeTask(loadTask(f), LlamaRuntime.fromCheckpoint(run.base).tokenizer!, 512));
  const accuracyOf = async (dir: string) => {
    const res = await evaluateTasks(LlamaRuntime.fromCheckpoint(dir), tasks);
    return res.tasks.map((t) => t.accuracy);
  };
  const rowScores = (name: string) => Object.values(r.report.rows.find((x) => x.name === name)!.validation);
  assert.deepEqual(rowScores('base (pre-trained)'), await accuracyOf(run.base));
  assert.deepEqual(rowScores('fine-tuned: model1'), await accuracyOf(run.models[1]!));
  for (const family of ['TIES', 'DARE']) {
    const tuned = names.find((x) => x.startsWith(`${family} (λ per model and density`));
    assert.ok(tuned, `${family} tuned row in ${names.join(' | ')}`);
    assert.match(tuned!, /by BO, 4 evaluations\)$/);
    const density = Number(/density ([0-9.]+)/.exec(tuned!)![1]);
    assert.ok(density >= 0.05 && density <= 1, tuned);
  }
});

test('the report\'s classic merges, streamed into the native buffer from the mapped checkpoints, equal dfmerge merge\'s output bit for bit', async () => {
  const setup = loadSetup({ base: run.base, models: run.models, tasks: run.tasks.map((validation) => ({ validation })), fisherSamples: 3, validationFraction: 1, seed: 5, needFisher: false });
  const obj = new DfMergeObjective(setup, { fisher: false, fisherMode: 'expected' });
  const cases: { name: string; yaml: Parameters<typeof validateConfig>[0]; build: () => Promise<unknown> }[] = [
    { name: 'linear', yaml: { method: 'linear', models: run.models.map((p) => ({ path: p, parameters: { weight: 1 } })), parameters: { normalize: true }, seed: 0 },
      build: () => obj.classic((p, _b, models, out) => ({ method: 'linear', tensor: p.name, models, weights: [1, 1], normalize: true, out })) },
    { name: 'ties', yaml: { method: 'ties', base: run.base, models: run.models.map((p, i) => ({ path: p, parameters: { weight: [0.7, 0.4][i]! } })), parameters: { density: 0.3, normalize: false }, seed: 0 },
      build: () => obj.classic((p, base, models, out) => ({ method: 'ties', tensor: p.name, base, models, weights: [0.7, 0.4], density: 0.3, normalize: false, out })) },
    { name: 'task arithmetic', yaml: { method: 'task_arithmetic', base: run.base, models: run.models.map((p, i) => ({ path: p, parameters: { weight: [0.3, 0.9][i]! } })), parameters: {}, seed: 0 },
      build: () => obj.taskArithmetic([0.3, 0.9]) },
  ];
  for (const c of cases) {
    const dir = join(root, `classic-${n++}`);
    await runMerge(validateConfig(c.yaml), { out: dir, quiet: true });
    await c.build();
    const want = readFlat(setup.rt, dir);
    for (const p of setup.rt.params) {
      const got = obj.merged.view(p.offset, p.numel);
      for (let j = 0; j < p.numel; j++) assert.equal(got[j], want[p.offset + j], `${c.name} ${p.name}[${j}]`);
    }
  }
  setup.close();
});
