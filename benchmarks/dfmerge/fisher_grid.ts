/**
 * Exact Fisher versus `--fisher-grid K` on the demo zoo (docs/design.md §6).
 *
 * Part A, at R seeded random λ: validation accuracy of the merge with the exact
 * F_i(λ_i) and with F_i interpolated from K grid points (K = 3, 5; linear and
 * log), the gap in points, and seconds per evaluation.
 * Part B, whole DF-Merge runs (init + iterations) per seed: test accuracy of the
 * best merge and total time, exact against each grid.
 *
 *   node dist/benchmarks/dfmerge/fisher_grid.js [--zoo ./dfmerge-zoo] [--fast] [--points 12]
 *       [--seeds 0,1,2] [--init 10 --iterations 50] [--grids 3,5] [--interp linear,log]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FisherGrid, gridPoints, type GridInterpolation } from '../../src/dfmerge/fisher_grid.js';
import { DfMergeObjective } from '../../src/dfmerge/objective.js';
import { optimize } from '../../src/dfmerge/optimize.js';
import { loadSetup } from '../../src/dfmerge/setup.js';
import { ZOO_PROMPTS } from '../../src/zoo/tasks.js';
import { Rng } from '../../src/util/rng.js';
import { buildZoo, resolveZoo } from '../../src/zoo/zoo.js';

function sarg(name: string, def: string): string {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? process.argv[i + 1]! : def;
}
const list = (s: string) => s.split(',').filter(Boolean);
const say = (s: string) => process.stdout.write(s + '\n');
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const se = (xs: number[]) => xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1) / xs.length);

const fast = process.argv.includes('--fast');
const zoo = await buildZoo({ out: sarg('zoo', fast ? './dfmerge-zoo-fast' : './dfmerge-zoo'), seed: 0, fast, onProgress: (l) => process.stderr.write(l + '\n') });
const z = resolveZoo(zoo.dir, zoo.manifest);
const names = Object.keys(z.tasks);
const grids = list(sarg('grids', '3,5')).map(Number);
const interps = list(sarg('interp', 'linear,log')) as GridInterpolation[];
const fisherSamples = 30, validationFraction = 0.5;
const work = mkdtempSync(join(tmpdir(), 'dfm-grid-bench-'));
const tasks = names.map((t) => ({ validation: z.tasks[t]!.validation, test: z.tasks[t]!.test }));

try {
  // ---- Part A: the same λ, exact vs interpolated
  const R = Number(sarg('points', '12'));
  const setup = loadSetup({ base: z.base, models: names.map((t) => z.experts[t]!), tasks, fisherSamples, validationFraction, seed: 0, needFisher: true, prompts: ZOO_PROMPTS });
  const rng = new Rng(42);
  const lambdas = Array.from({ length: R }, () => names.map(() => rng.next()));
  const acc = async (obj: DfMergeObjective, lambda: number[]) => {
    await obj.merge(lambda);
    return (await obj.evaluateMerged(setup.validation)).meanAccuracy * 100;
  };
  const exact = new DfMergeObjective(setup, { fisher: true, fisherMode: 'expected' });
  let t = performance.now();
  const exactAcc: number[] = [];
  for (const l of lambdas) exactAcc.push(await acc(exact, l));
  const exactSec = (performance.now() - t) / 1000 / R;
  say(`zoo ${zoo.dir}: ${names.length} experts (${names.join(', ')}), ${fisherSamples} Fisher examples, validation fraction ${validationFraction}`);
  say(`Part A: ${R} random λ (seed 42), mean validation accuracy of the exact merge ${mean(exactAcc).toFixed(2)}%, ${exactSec.toFixed(2)} s per evaluation`);
  say('| grid | interpolation | mean |Δ| (points) | max |Δ| | mean Δ (grid − exact) | s per evaluation | grid build s |');
  say('|---:|---|---:|---:|---:|---:|---:|');
  for (const k of grids) {
    for (const interp of interps) {
      t = performance.now();
      const grid = await FisherGrid.open(setup, { dir: join(work, `a-${k}-${interp}`), points: gridPoints(k, [0, 1]), interpolation: interp, fisherMode: 'expected' });
      const build = (performance.now() - t) / 1000;
      const obj = new DfMergeObjective(setup, { fisher: true, fisherMode: 'expected', grid });
      t = performance.now();
      const d: number[] = [];
      for (const [i, l] of lambdas.entries()) d.push((await acc(obj, l)) - exactAcc[i]!);
      const sec = (performance.now() - t) / 1000 / R;
      grid.close();
      say(`| ${k} | ${interp} | ${mean(d.map(Math.abs)).toFixed(2)} | ${Math.max(...d.map(Math.abs)).toFixed(2)} | ${mean(d).toFixed(2)} | ${sec.toFixed(2)} | ${build.toFixed(1)} |`);
    }
  }
  setup.close();

  // ---- Part B: whole runs
  const seeds = list(sarg('seeds', '0,1,2')).map(Number);
  const init = Number(sarg('init', '10')), iterations = Number(sarg('iterations', '50'));
  const configs: { name: string; grid?: number; interp?: GridInterpolation }[] = [{ name: 'exact' }, ...grids.map((k) => ({ name: `grid K=${k} (${interps[0]})`, grid: k, interp: interps[0]! }))];
  say('');
  say(`Part B: DF-Merge runs of ${init} + ${iterations} evaluations, seeds ${seeds.join(', ')}: mean test accuracy of the best merge (± s.e. over seeds) and total seconds`);
  say('| Fisher | test accuracy % | best validation % | seconds per run |');
  say('|---|---:|---:|---:|');
  for (const c of configs) {
    const testAcc: number[] = [], valAcc: number[] = [], secs: number[] = [];
    for (const seed of seeds) {
      const out = join(work, `b-${c.name.replace(/\W+/g, '_')}-${seed}`);
      t = performance.now();
      const r = await optimize({
        base: z.base, models: names.map((n) => z.experts[n]!), tasks, out, initPoints: init, iterations, fisherSamples, validationFraction, seed,
        baselines: false, force: true, prompts: ZOO_PROMPTS, ...(c.grid ? { fisherGrid: c.grid, fisherGridInterpolation: c.interp! } : {}),
      });
      secs.push((performance.now() - t) / 1000);
      const row = r.report.rows.find((x) => x.name === 'DF-Merge')!;
      testAcc.push(mean(Object.values(row.test!)) * 100);
      valAcc.push(r.best.objective! * 100);
      rmSync(out, { recursive: true, force: true });
    }
    say(`| ${c.name} | ${mean(testAcc).toFixed(2)} ± ${se(testAcc).toFixed(2)} | ${mean(valAcc).toFixed(2)} | ${mean(secs).toFixed(0)} |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
