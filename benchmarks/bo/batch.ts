// Batch BO against sequential at equal evaluation counts (docs/design.md §8): the rule
// `optimize --parallel q` uses, synchronous batches of q points from suggestBatch(q)
// (kriging believer) observed in index order once the batch is done, for q = 2, 4, 8
// against q = 1 (suggest()), 10 random initial points then 50 BO evaluations. Prints the
// normalised simple regret after 20, 30 and 60 evaluations (mean over seeds), its ratio
// to sequential (> 1: the batch rule needs more evaluations for the same regret), and the
// number of rounds (batches), the wall-clock of a run whose evaluations dominate.
//
// Usage (after `tsc -p tsconfig.json`):
//   node dist/benchmarks/bo/batch.js [--seeds 1-5] [--functions branin,hartmann3,hartmann6] [--q 2,4,8]

import { BayesianOptimizer } from '../../src/bo/optimizer.js';
import { testFunctions, stepped, type TestFunction } from '../../src/bo/testfunctions.js';
import { flagValue, parseSeeds } from '../support/args.js';

const N_INIT = 10;
const N_ITER = 50;
const CHECKPOINTS = [20, 30, 60];
const RATIO_FLOOR = 1e-4;

/** Best-so-far after each evaluation of one run with batches of q, as optimize runs them. */
function runBatched(tf: TestFunction, q: number, seed: number): number[] {
  const bo = new BayesianOptimizer({ bounds: tf.bounds, seed, nInitial: N_INIT });
  const total = N_INIT + N_ITER;
  const ys: number[] = [];
  for (let start = 0; start < total; start += q) {
    const xs = q === 1 ? [bo.suggest()] : bo.suggestBatch(Math.min(q, total - start));
    const batch = xs.map((x) => tf.f(x));
    xs.forEach((x, k) => bo.observe(x, batch[k]!));
    ys.push(...batch);
  }
  const best: number[] = [];
  for (const y of ys) best.push(Math.max(y, best.length > 0 ? best[best.length - 1]! : -Infinity));
  return best;
}

function main(): void {
  const seeds = parseSeeds(flagValue('--seeds') ?? '1-5');
  const names = (flagValue('--functions') ?? 'branin,hartmann3,hartmann6').split(',');
  const qs = (flagValue('--q') ?? '2,4,8').split(',').map(Number);
  const all = [...testFunctions, ...testFunctions.map(stepped)];
  const fns = names.map((n) => all.find((f) => f.name === n) ?? (() => { throw new Error(`unknown function ${n}`); })());
  process.stdout.write(`batch BO vs sequential: ${N_INIT} random + ${N_ITER} BO evaluations, seeds ${seeds.join(',')}; normalised simple regret (mean), ratio to q = 1\n\n`);
  process.stdout.write(`| function | q | rounds | ${CHECKPOINTS.map((c) => `regret@${c}`).join(' | ')} | ${CHECKPOINTS.map((c) => `ratio@${c}`).join(' | ')} | seconds |\n`);
  process.stdout.write(`|---|---|---|${CHECKPOINTS.map(() => '---').join('|')}|${CHECKPOINTS.map(() => '---').join('|')}|---|\n`);
  const ratios = new Map<number, number[][]>();
  for (const tf of fns) {
    const scale = tf.optimumValue - tf.reference;
    const regretAt = (q: number) => {
      const t0 = performance.now();
      const runs = seeds.map((s) => runBatched(tf, q, s));
      const mean = CHECKPOINTS.map((c) => runs.reduce((a, b) => a + (tf.optimumValue - b[c - 1]!) / scale, 0) / runs.length);
      return { mean, seconds: (performance.now() - t0) / 1000 };
    };
    const seq = regretAt(1);
    const row = (q: number, r: { mean: number[]; seconds: number }, rat: number[]) =>
      `| ${tf.name} | ${q} | ${Math.ceil((N_INIT + N_ITER) / q)} | ${r.mean.map((m) => m.toExponential(2)).join(' | ')} | ${rat.map((x) => x.toFixed(2)).join(' | ')} | ${r.seconds.toFixed(1)} |\n`;
    process.stdout.write(row(1, seq, CHECKPOINTS.map(() => 1)));
    for (const q of qs) {
      const r = regretAt(q);
      const rat = r.mean.map((m, k) => Math.max(m, RATIO_FLOOR) / Math.max(seq.mean[k]!, RATIO_FLOOR));
      if (!ratios.has(q)) ratios.set(q, []);
      ratios.get(q)!.push(rat);
      process.stdout.write(row(q, r, rat));
    }
  }
  process.stdout.write('\ngeometric mean over functions of the regret ratio to q = 1:\n');
  for (const [q, rs] of ratios) {
    const g = CHECKPOINTS.map((_, k) => Math.exp(rs.reduce((a, r) => a + Math.log(r[k]!), 0) / rs.length));
    process.stdout.write(`  q = ${q}: ${CHECKPOINTS.map((c, k) => `@${c} ${g[k]!.toFixed(2)}`).join(', ')}\n`);
  }
}

main();
