/**
 * The comparison the report shows: the base model, each fine-tuned model, and the
 * classic merges next to DF-Merge, all evaluated on the same tasks.
 * Linear is the plain average. Task arithmetic, TIES and DARE get one shared λ
 * chosen on validation from a grid (as their papers tune it); Fisher merging uses
 * the Fisher of each θ_i itself. With a budget (tunedBaselineRows), TIES and DARE
 * also get DF-Merge's optimiser and number of evaluations over their own
 * hyperparameters (λ per model and the density), so that the table compares
 * methods, not search budgets (task arithmetic with λ per model by BO is the
 * --no-fisher ablation).
 */
import { BayesianOptimizer, type BayesianOptimizerOptions } from '../bo/optimizer.js';
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

/** The optimiser settings and budget DF-Merge had (same bounds per λ, same initial points and iterations). */
export interface BaselineBudget {
  bo: Omit<BayesianOptimizerOptions, 'bounds'>;
  bounds: readonly [number, number];
  evaluations: number;
}

/** Densities searched for TIES and DARE. */
export const DENSITY_BOUNDS: readonly [number, number] = [0.05, 1];

/**
 * TIES and DARE with λ_i per model and the density tuned on validation by the
 * same Bayesian optimiser and budget as DF-Merge: θ_pre + Σ_i λ_i τ̃_i (the
 * trimmed / dropped task vectors, not normalised, so λ carries the scale).
 */
export async function tunedBaselineRows(obj: DfMergeObjective, setup: DfSetup, budget: BaselineBudget, log: (msg: string) => void = () => {}): Promise<ReportRow[]> {
  const M = setup.models.length;
  const rows: ReportRow[] = [];
  const families: { name: string; method: 'ties' | 'dare_linear' }[] = [
    { name: 'TIES', method: 'ties' }, { name: 'DARE', method: 'dare_linear' },
  ];
  for (const f of families) {
    log(`${f.name}: λ per model and density by Bayesian optimisation (${budget.evaluations} evaluations, as DF-Merge)`);
    const bo = new BayesianOptimizer({ ...budget.bo, bounds: [...Array.from({ length: M }, () => budget.bounds), DENSITY_BOUNDS] });
    const build = (x: readonly number[]) => obj.classic((p, base, models, out) => f.method === 'ties'
      ? { method: 'ties', tensor: p.name, base, models, weights: x.slice(0, M), density: x[M]!, normalize: false, out }
      : { method: 'dare_linear', tensor: p.name, base, models, weights: x.slice(0, M), density: x[M]!, seed: DARE_SEED, out });
    let best = { x: [] as number[], score: -Infinity };
    for (let e = 0; e < budget.evaluations; e++) {
      const x = bo.suggest();
      await build(x);
      const s = avg(await scores(obj, setup.validation, flatSource(obj.merged)));
      bo.observe(x, s);
      if (s > best.score) best = { x, score: s };
    }
    await build(best.x);
    const label = `${f.name} (λ per model and density ${best.x[M]!.toFixed(2)} by BO, ${budget.evaluations} evaluations)`;
    rows.push(await row(obj, setup, label, flatSource(obj.merged)));
  }
  return rows;
}
