/**
 * The comparison the report shows: the base model, each fine-tuned model, and the
 * classic merges next to DF-Merge, all evaluated in memory on the same tasks.
 * Linear is the plain average. Task arithmetic, TIES and DARE get one shared λ
 * chosen on validation from a grid (as their papers tune it); Fisher merging uses
 * the Fisher of each θ_i itself.
 */
import type { TokenizedTask } from '../eval/task.js';
import type { DfMergeObjective } from './objective.js';
import type { ReportRow } from './report.js';
import type { DfSetup } from './setup.js';

export const LAMBDA_GRID = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
export const TIES_DENSITY = 0.2;
export const DARE_DENSITY = 0.5;
export const DARE_SEED = 0;

type Scores = Record<string, number>;

async function scores(obj: DfMergeObjective, params: Float32Array, tasks: readonly TokenizedTask[]): Promise<Scores> {
  const r = await obj.evaluate(params, tasks);
  return Object.fromEntries(r.tasks.map((t) => [t.task, t.accuracy]));
}

const avg = (s: Scores) => Object.values(s).reduce((a, b) => a + b, 0) / Math.max(1, Object.keys(s).length);

/** A report row: accuracy of flat parameters on every validation (and test) task. */
export async function row(obj: DfMergeObjective, setup: DfSetup, name: string, params: Float32Array): Promise<ReportRow> {
  return {
    name,
    validation: await scores(obj, params, setup.validation),
    ...(setup.test ? { test: await scores(obj, params, setup.test) } : {}),
  };
}

/** Picks the grid λ with the best mean validation accuracy for a merge family θ(λ). */
async function tuned(obj: DfMergeObjective, setup: DfSetup, name: string, build: (lambda: number, out: Float32Array) => Promise<void>): Promise<ReportRow> {
  const buf = new Float32Array(setup.base.length);
  let best = { lambda: LAMBDA_GRID[0]!, score: -1 };
  for (const lambda of LAMBDA_GRID) {
    await build(lambda, buf);
    const s = avg(await scores(obj, buf, setup.validation));
    if (s > best.score) best = { lambda, score: s };
  }
  await build(best.lambda, buf);
  return row(obj, setup, `${name} (λ=${best.lambda})`, buf);
}

export async function baselineRows(obj: DfMergeObjective, setup: DfSetup, log: (msg: string) => void = () => {}): Promise<ReportRow[]> {
  const rows: ReportRow[] = [];
  log('evaluating the base model');
  rows.push(await row(obj, setup, 'base (pre-trained)', setup.base));
  for (let i = 0; i < setup.models.length; i++) {
    log(`evaluating fine-tuned model ${setup.modelNames[i]}`);
    rows.push(await row(obj, setup, `fine-tuned: ${setup.modelNames[i]}`, setup.models[i]!));
  }
  log('linear (average of the fine-tuned models)');
  const linear = new Float32Array(setup.base.length);
  await obj.perTensor((name, _base, models, out) => ({
    method: 'linear', tensor: name, models: models.map((x) => ({ data: x, dtype: 'F32' })), weights: models.map(() => 1), normalize: true,
    out: { kind: 'memory', data: out, dtype: 'F32' },
  }), linear);
  rows.push(await row(obj, setup, 'linear (average)', linear));
  log('task arithmetic: tuning λ on validation');
  rows.push(await tuned(obj, setup, 'task arithmetic', (lambda, out) => obj.taskArithmetic(setup.models, setup.models.map(() => lambda), out)));
  log('TIES: tuning λ on validation');
  const ties = new Float32Array(setup.base.length);
  await obj.perTensor((name, base, models, out) => ({
    method: 'ties', tensor: name, base: { data: base, dtype: 'F32' }, models: models.map((x) => ({ data: x, dtype: 'F32' })),
    weights: models.map(() => 1), density: TIES_DENSITY, normalize: true, out: { kind: 'memory', data: out, dtype: 'F32' },
  }), ties);
  rows.push(await tuned(obj, setup, `TIES (density ${TIES_DENSITY})`, (lambda, out) => obj.taskArithmetic([ties], [lambda], out)));
  log('DARE: tuning λ on validation');
  const dare = new Float32Array(setup.base.length);
  await obj.perTensor((name, base, models, out) => ({
    method: 'dare_linear', tensor: name, base: { data: base, dtype: 'F32' }, models: models.map((x) => ({ data: x, dtype: 'F32' })),
    weights: models.map(() => 1), density: DARE_DENSITY, seed: DARE_SEED, out: { kind: 'memory', data: out, dtype: 'F32' },
  }), dare);
  // dare = θ_pre + Σ τ̃_i; the family θ_pre + λ Σ τ̃_i
  rows.push(await tuned(obj, setup, `DARE (drop ${1 - DARE_DENSITY})`, (lambda, out) => obj.taskArithmetic([dare], [lambda], out)));
  if (setup.fisherExamples.every((e) => e.length > 0)) {
    log('Fisher merging');
    rows.push(await row(obj, setup, 'Fisher merging', new Float32Array(await obj.fisherMerging())));
  }
  return rows;
}
