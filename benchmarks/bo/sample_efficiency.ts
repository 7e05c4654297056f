// Sample efficiency of the Bayesian optimiser (docs/design.md §4, "Bayesian optimiser"):
// best value found after 20 and 60 evaluations (10 random + 50 iterations), averaged
// over seeds, on Branin and Hartmann-6, for
//   ours        BayesianOptimizer defaults: ARD Matérn 5/2, σ² fitted, MAP length scales,
//               log-EI maximised over Sobol' candidates + L-BFGS refinement;
//   ours-integrated  the same, with EI averaged over 8 slice-sampled hyperparameter sets;
//   ours-mle    the same, with plain maximum-likelihood length scales (no prior);
//   ours-paper  the same code in the paper's configuration: isotropic Matérn 5/2, σ² fixed
//               at 1, maximum likelihood, sklearn's length-scale bounds [1e-5, 1e5];
//   paper       the paper's optimiser itself (bayesian-optimization's loop on scikit-learn,
//               benchmarks/bo/paper_baseline.py), run with .venv/bin/python when available.
// All use EI with ξ = 0.01 and the same 10 + 50 budget.
//
// Usage (after `tsc -p tsconfig.json`):
//   node dist/benchmarks/bo/sample_efficiency.js [--seeds 1-10] [--functions branin,hartmann6]
//        [--methods ours,ours-paper,...] [--python .venv/bin/python | --no-python] [--jobs 2]
//        [--json out.json]

import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BayesianOptimizer, type BayesianOptimizerOptions } from '../../src/bo/optimizer.js';
import { branin, hartmann6, type TestFunction } from '../../src/bo/testfunctions.js';

const N_INIT = 10;
const N_ITER = 50;
const CHECKPOINTS = [20, 60];

interface Method {
  name: string;
  options: Omit<BayesianOptimizerOptions, 'bounds' | 'seed'>;
}

const METHODS: Method[] = [
  { name: 'ours', options: { acquisition: 'ei', xi: 0.01, nInitial: N_INIT } },
  { name: 'ours-integrated', options: { acquisition: 'ei', xi: 0.01, nInitial: N_INIT, hyperparameterSamples: 8 } },
  { name: 'ours-mle', options: { acquisition: 'ei', xi: 0.01, nInitial: N_INIT, gp: { lengthScalePrior: null } } },
  {
    name: 'ours-paper',
    options: {
      acquisition: 'ei',
      xi: 0.01,
      nInitial: N_INIT,
      kernel: 'isotropic',
      gp: {
        fitSignalVariance: false,
        lengthScalePrior: null,
        lengthScaleBounds: [1e-5, 1e5],
        initialLengthScale: 1,
        restarts: 5,
      },
    },
  },
];

/** Best-so-far trace of one run. */
function runOurs(tf: TestFunction, method: Method, seed: number): number[] {
  const bo = new BayesianOptimizer({ bounds: tf.bounds, seed, ...method.options });
  const trace: number[] = [];
  let best = -Infinity;
  for (let i = 0; i < N_INIT + N_ITER; i++) {
    const x = bo.suggest();
    const y = tf.f(x);
    bo.observe(x, y);
    best = Math.max(best, y);
    trace.push(best);
  }
  return trace;
}

function runPython(python: string, script: string, fn: string, seeds: number[], jobs: number): Promise<number[][]> {
  return new Promise((resolve, reject) => {
    const args = [script, '--function', fn, '--seeds', seeds.join(','), '--init', String(N_INIT), '--iter', String(N_ITER), '--jobs', String(jobs)];
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${python} ${script} exited with ${code}:\n${err.slice(-2000)}`));
      const parsed = JSON.parse(out) as { runs: { seed: number; best: number[] }[] };
      resolve(seeds.map((s) => parsed.runs.find((r) => r.seed === s)!.best));
    });
  });
}

function parseSeeds(spec: string): number[] {
  const seeds: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^(\d+)-(\d+)$/.exec(part);
    if (m) for (let s = Number(m[1]); s <= Number(m[2]); s++) seeds.push(s);
    else if (part) seeds.push(Number(part));
  }
  if (seeds.length === 0 || seeds.some((s) => !Number.isSafeInteger(s))) throw new Error(`bad --seeds '${spec}'`);
  return seeds;
}

/** A run counts as having found the optimum's basin when its regret is below this. */
const NEAR = 0.05;

interface Summary {
  method: string;
  fn: string;
  at: number;
  meanBest: number;
  meanRegret: number;
  stderrRegret: number;
  medianRegret: number;
  /** Runs with regret < NEAR. */
  near: number;
  runs: number;
  regrets: number[];
}

function summarise(method: string, tf: TestFunction, traces: number[][]): Summary[] {
  return CHECKPOINTS.map((at) => {
    const regrets = traces.map((t) => tf.optimumValue - t[at - 1]);
    const best = traces.map((t) => t[at - 1]);
    const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
    const m = mean(regrets);
    const sd = Math.sqrt(regrets.reduce((a, r) => a + (r - m) ** 2, 0) / Math.max(1, regrets.length - 1));
    const sorted = [...regrets].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    const median = sorted.length % 2 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
    return {
      method,
      fn: tf.name,
      at,
      meanBest: mean(best),
      meanRegret: m,
      stderrRegret: sd / Math.sqrt(regrets.length),
      medianRegret: median,
      near: regrets.filter((r) => r < NEAR).length,
      runs: regrets.length,
      regrets,
    };
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const seeds = parseSeeds(arg('--seeds') ?? '1-10');
  const fnNames = (arg('--functions') ?? 'branin,hartmann6').split(',');
  const all: Record<string, TestFunction> = { branin, hartmann6 };
  const fns = fnNames.map((n) => {
    if (!all[n]) throw new Error(`unknown function '${n}' (branin, hartmann6)`);
    return all[n];
  });
  const python = argv.includes('--no-python') ? null : (arg('--python') ?? `${root}.venv/bin/python`);
  const script = `${root}benchmarks/bo/paper_baseline.py`;
  const jobs = Number(arg('--jobs') ?? '1');
  const jsonOut = arg('--json');
  const methodNames = (arg('--methods') ?? METHODS.map((m) => m.name).join(',')).split(',');
  const methods = methodNames.map((n) => {
    const m = METHODS.find((x) => x.name === n);
    if (!m) throw new Error(`unknown method '${n}' (${METHODS.map((x) => x.name).join(', ')})`);
    return m;
  });

  const summaries: Summary[] = [];
  const notes: string[] = [];
  for (const tf of fns) {
    // The Python baseline runs in a child process while our methods run here.
    let pyPromise: Promise<number[][]> | null = null;
    if (python && existsSync(python)) pyPromise = runPython(python, script, tf.name, seeds, jobs);
    else if (python) notes.push(`paper baseline skipped: ${python} not found`);
    for (const method of methods) {
      const t0 = performance.now();
      const traces = seeds.map((s) => runOurs(tf, method, s));
      const secs = (performance.now() - t0) / 1000;
      console.error(`${tf.name} ${method.name}: ${seeds.length} runs in ${secs.toFixed(1)} s`);
      summaries.push(...summarise(method.name, tf, traces));
    }
    if (pyPromise) {
      try {
        const t0 = performance.now();
        const traces = await pyPromise;
        console.error(`${tf.name} paper (python): done ${((performance.now() - t0) / 1000).toFixed(1)} s after ours`);
        summaries.push(...summarise('paper', tf, traces));
      } catch (e) {
        notes.push(`paper baseline failed on ${tf.name}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }

  const fmt = (v: number): string => (Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(4) : v.toExponential(2));
  console.log(`Seeds ${seeds[0]}..${seeds[seeds.length - 1]} (${seeds.length}), ${N_INIT} random + ${N_ITER} iterations, EI ξ = 0.01.`);
  console.log('Simple regret = optimum − best value found (lower is better); ± standard error over seeds.\n');
  console.log(`| function | evals | method | mean best | mean regret ± s.e. | median regret | runs with regret < ${NEAR} | paper mean regret ÷ this |`);
  console.log('|---|---|---|---|---|---|---|---|');
  for (const tf of fns) {
    for (const at of CHECKPOINTS) {
      const rows = summaries.filter((s) => s.fn === tf.name && s.at === at);
      const paper = rows.find((r) => r.method === 'paper');
      for (const r of rows) {
        const ratio = paper ? `${(paper.meanRegret / r.meanRegret).toFixed(2)}×` : 'n/a';
        console.log(
          `| ${tf.name} | ${at} | ${r.method} | ${fmt(r.meanBest)} | ${fmt(r.meanRegret)} ± ${fmt(r.stderrRegret)} | ${fmt(r.medianRegret)} | ${r.near}/${r.runs} | ${ratio} |`,
        );
      }
    }
  }
  for (const n of notes) console.log(`\nNote: ${n}`);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ seeds, nInit: N_INIT, nIter: N_ITER, summaries, notes }, null, 1));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
