/**
 * The comparison the report shows: the base model, each fine-tuned model, and the
 * classic merges next to DF-Merge, all evaluated on the same tasks.
 * Linear is the plain average. Task arithmetic, TIES and DARE get one shared λ
 * chosen on validation from a grid (as their papers tune it); Fisher merging uses
 * the Fisher of each θ_i itself.
 */
import type { TokenizedTask } from '../eval/task.js';
import { flatSource, type TensorSource } from '../model/runtime.js';
import type { DfMergeObjective } from './objective.js';
import type { ReportRow } from './report.js';
import type { DfSetup } from './setup.js';

export const LAMBDA_GRID = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
export const TIES_DENSITY = 0.2;
export const DARE_DENSITY = 0.5;
export const DARE_SEED = 0;

type Scores = Record<string, number>;

async function scores(obj: DfMergeObjective, tasks: readonly TokenizedTask[], a: TensorSource, b?: TensorSource, lambda?: number): Promise<Scores> {
  const r = await obj.evaluate(tasks, a, b, lambda);
  return Object.fromEntries(r.tasks.map((t) => [t.task, t.accuracy]));
}

const avg = (s: Scores) => Object.values(s).reduce((a, b) => a + b, 0) / Math.max(1, Object.keys(s).length);

/** A report row: accuracy of θ = a (or a + λ·(b − a)) on every validation (and test) task. */
export async function row(obj: DfMergeObjective, setup: DfSetup, name: string, a: TensorSource, b?: TensorSource, lambda?: number): Promise<ReportRow> {
  return {
    name,
    validation: await scores(obj, setup.validation, a, b, lambda),
    ...(setup.test ? { test: await scores(obj, setup.test, a, b, lambda) } : {}),
  };
}

/**
 * The merge family θ_pre + λ·(θ_m − θ_pre) of one merge θ_m held in the
 * objective's buffer: picks the grid λ with the best mean validation accuracy.
 */
async function tuned(obj: DfMergeObjective, setup: DfSetup, name: string): Promise<ReportRow> {
  const merged = flatSource(obj.merged);
  let best = { lambda: LAMBDA_GRID[0]!, score: -1 };
  for (const lambda of LAMBDA_GRID) {
    const s = avg(await scores(obj, setup.validation, setup.baseSource, merged, lambda));
    if (s > best.score) best = { lambda, score: s };
  }
  return row(obj, setup, `${name} (λ=${best.lambda})`, setup.baseSource, merged, best.lambda);
}

/**
 * Every comparison row. Each merge is streamed through the merge engine from the
 * mapped checkpoints into the objective's one native buffer and evaluated from
 * there (the buffer is overwritten: merge DF-Merge's best λ afterwards).
 */
export async function baselineRows(obj: DfMergeObjective, setup: DfSetup, log: (msg: string) => void = () => {}): Promise<ReportRow[]> {
  const rows: ReportRow[] = [];
  const ones = setup.models.map(() => 1);
  log('evaluating the base model');
  rows.push(await row(obj, setup, 'base (pre-trained)', setup.baseSource));
  for (let i = 0; i < setup.models.length; i++) {
    log(`evaluating fine-tuned model ${setup.modelNames[i]}`);
    rows.push(await row(obj, setup, `fine-tuned: ${setup.modelNames[i]}`, setup.modelSources[i]!));
  }
  log('linear (average of the fine-tuned models)');
  await obj.classic((p, _base, models, out) => ({ method: 'linear', tensor: p.name, models, weights: ones, normalize: true, out }));
  rows.push(await row(obj, setup, 'linear (average)', flatSource(obj.merged)));
  log('task arithmetic: tuning λ on validation');
  await obj.taskArithmetic(ones);  // θ_pre + Σ τ_i; the family θ_pre + λ Σ τ_i
  rows.push(await tuned(obj, setup, 'task arithmetic'));
  log('TIES: tuning λ on validation');
  await obj.classic((p, base, models, out) => ({ method: 'ties', tensor: p.name, base, models, weights: ones, density: TIES_DENSITY, normalize: true, out }));
  rows.push(await tuned(obj, setup, `TIES (density ${TIES_DENSITY})`));
  log('DARE: tuning λ on validation');
  // θ_pre + Σ τ̃_i; the family θ_pre + λ Σ τ̃_i
  await obj.classic((p, base, models, out) => ({ method: 'dare_linear', tensor: p.name, base, models, weights: ones, density: DARE_DENSITY, seed: DARE_SEED, out }));
  rows.push(await tuned(obj, setup, `DARE (drop ${1 - DARE_DENSITY})`));
  if (setup.fisherExamples.every((e) => e.length > 0)) {
    log('Fisher merging');
    await obj.fisherMerging();
    rows.push(await row(obj, setup, 'Fisher merging', flatSource(obj.merged)));
  }
  return rows;
}
