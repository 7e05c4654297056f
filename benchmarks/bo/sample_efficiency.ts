// Sample efficiency of the Bayesian optimiser (docs/design.md §Bayesian optimisation):
// simple regret after 10, 20, 30 and 60 evaluations (10 random + 50 iterations), mean ±
// standard error over seeds, on six standard functions of 2–8 dimensions and on their
// step-valued versions (src/bo/testfunctions.ts), for
//   ours         BayesianOptimizer with its defaults (plus variants, for the levers);
//   optuna-gp    optuna's GPSampler(n_startup_trials=10), the peer users reach for;
//   optuna-tpe   optuna's TPESampler(n_startup_trials=10), for context;
//   random       optuna's RandomSampler, for context;
//   paper        the paper's optimiser (bayesian-optimization's loop on scikit-learn,
//                benchmarks/bo/paper_baseline.py).
// The Python peers (benchmarks/bo/peers.py, paper_baseline.py) run as child processes
// in the same invocation, on the same function definitions (benchmarks/bo/functions.py;
// test/bo/testfunctions_python.test.ts checks they agree). Ratios are peer regret ÷ ours
// per function; group summaries are geometric means of those ratios over functions.
//
// Usage (after `tsc -p tsconfig.json`):
//   node dist/benchmarks/bo/sample_efficiency.js [--seeds 1-10] [--functions branin,hartmann6-step,...]
//        [--groups continuous,step] [--methods ours,ours-xyz | --methods none] [--peers optuna-gp,optuna-tpe,random,paper | --peers none]
//        [--python .venv/bin/python] [--jobs 2] [--json out.json] [--from earlier.json,...] [--print-only]
// --from reuses the rows of earlier --json files with the same seeds (to try variants of ours
// without re-running the peers, or to run functions in parallel processes and print one
// table); every reused row is named in a note under the table. An entry PEER=FILE reads
// one peer script's raw output (one function). --print-only runs nothing:
// rows missing from the --from files print as n/a.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BayesianOptimizer, type BayesianOptimizerOptions } from '../../src/bo/optimizer.js';
import { stepped, testFunctions, type TestFunction } from '../../src/bo/testfunctions.js';
import { flagValue, parseSeeds } from '../support/args.js';

const N_INIT = 10;
const N_ITER = 50;
const CHECKPOINTS = [10, 20, 30, 60];

interface Method {
  name: string;
  /** Options on top of BayesianOptimizer's defaults, for a problem of `dim` dimensions. */
  options: (dim: number) => Omit<BayesianOptimizerOptions, 'bounds' | 'seed'>;
}

const NOISE = { fitNoise: true, noiseBounds: [1e-6, 1e-1] as const, noisePrior: { mean: Math.log(1e-3), std: 2 } };

/** Our optimiser: its defaults, and variants that switch one lever (see benchmarks/bo/README.md). */
const METHODS: Method[] = [
  { name: 'ours', options: () => ({}) },
  { name: 'ours-noise', options: () => ({ gp: NOISE }) },
  { name: 'ours-mle', options: () => ({ gp: { lengthScalePrior: null } }) },
  // Hvarfner, Hellsten & Nardi 2024: log ℓ ~ N(√2 + log(d)/2, 3).
  { name: 'ours-dimprior', options: (d) => ({ gp: { lengthScalePrior: { mean: Math.SQRT2 + 0.5 * Math.log(d), std: Math.sqrt(3) } } }) },
  { name: 'ours-starts', options: () => ({ bestStarts: 3, nLocal: 10 }) },
  // The defaults before the local phase became one (the lever's measurement).
  { name: 'ours-global', options: () => ({ localPhase: null }) },
  { name: 'ours-nodup', options: () => ({ minDistance: 5e-3 }) },
  { name: 'ours-xi0', options: () => ({ xi: 0 }) },
  { name: 'ours-quant', options: () => ({ quantisedNoise: true }) },
  { name: 'ours-quantfit', options: () => ({ quantisedNoise: true, gp: NOISE }) },
];

interface Peer {
  name: string;
  script: string;
  args: string[];
}

const PEERS: Peer[] = [
  { name: 'optuna-gp', script: 'peers.py', args: ['--sampler', 'gp'] },
  { name: 'optuna-tpe', script: 'peers.py', args: ['--sampler', 'tpe'] },
  { name: 'random', script: 'peers.py', args: ['--sampler', 'random'] },
  { name: 'paper', script: 'paper_baseline.py', args: [] },
];

/** Best-so-far trace of one run, and the seconds it took. */
function runOurs(tf: TestFunction, method: Method, seed: number): { best: number[]; seconds: number } {
  const t0 = performance.now();
  const bo = new BayesianOptimizer({ bounds: tf.bounds, seed, nInitial: N_INIT, ...method.options(tf.dim) });
  const best: number[] = [];
  for (let i = 0; i < N_INIT + N_ITER; i++) {
    const x = bo.suggest();
    const y = tf.f(x);
    bo.observe(x, y);
    best.push(Math.max(y, best.length > 0 ? best[best.length - 1] : -Infinity));
  }
  return { best, seconds: (performance.now() - t0) / 1000 };
}

interface Traces {
  best: number[][];
  seconds: number[];
}

/**
 * Runs a Python peer; its stdout and stderr go to files, not pipes, so the child never
 * blocks on a full pipe while this process is busy running ours.
 */
function runPython(python: string, script: string, args: string[], fn: string, seeds: number[], tmp: string): Promise<Traces> {
  return new Promise((resolve, reject) => {
    const all = [script, ...args, '--function', fn, '--seeds', seeds.join(','), '--init', String(N_INIT), '--iter', String(N_ITER)];
    const env = { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };
    const base = join(tmp, `${basename(script, '.py')}-${args.join('')}-${fn}`);
    const outFd = openSync(`${base}.out`, 'w');
    const errFd = openSync(`${base}.err`, 'w');
    const child = spawn(python, all, { stdio: ['ignore', outFd, errFd], env });
    closeSync(outFd);
    closeSync(errFd);
    child.on('error', reject);
    child.on('close', (code) => {
      const err = readFileSync(`${base}.err`, 'utf8');
      if (code !== 0) return reject(new Error(`${python} ${all.join(' ')} exited with ${code}:\n${err.slice(-2000)}`));
      const parsed = JSON.parse(readFileSync(`${base}.out`, 'utf8')) as { runs: { seed: number; best: number[]; seconds?: number }[] };
      const runs = seeds.map((s) => parsed.runs.find((r) => r.seed === s)!);
      resolve({ best: runs.map((r) => r.best), seconds: runs.map((r) => r.seconds ?? NaN) });
    });
  });
}

/** Runs thunks with at most `limit` in flight. */
async function pool<T>(thunks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(thunks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < thunks.length) {
      const i = next++;
      results[i] = await thunks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, thunks.length)) }, worker));
  return results;
}

interface Cell {
  /** Mean and standard error of the normalised regret (regret ÷ (optimum − reference)). */
  mean: number;
  se: number;
  regrets: number[];
}

interface Result {
  method: string;
  fn: string;
  group: 'continuous' | 'step';
  cells: Cell[]; // one per checkpoint
  seconds: number[];
}

function summarise(method: string, tf: TestFunction, group: Result['group'], t: Traces): Result {
  const scale = tf.optimumValue - tf.reference;
  const cells = CHECKPOINTS.map((at) => {
    const regrets = t.best.map((b) => (tf.optimumValue - b[at - 1]) / scale);
    const m = regrets.reduce((a, b) => a + b, 0) / regrets.length;
    const sd = Math.sqrt(regrets.reduce((a, r) => a + (r - m) ** 2, 0) / Math.max(1, regrets.length - 1));
    return { mean: m, se: sd / Math.sqrt(regrets.length), regrets };
  });
  return { method, fn: tf.name, group, cells, seconds: t.seconds };
}

/**
 * Regret floor for ratios, in normalised units: differences below it are not worth
 * anything (an accuracy on 10⁴ examples) and it keeps a ratio finite when a method finds
 * the optimum to machine precision.
 */
const RATIO_FLOOR = 1e-4;
const ratio = (peer: number, ours: number): number => Math.max(peer, RATIO_FLOOR) / Math.max(ours, RATIO_FLOOR);
const geomean = (v: number[]): number => Math.exp(v.reduce((a, b) => a + Math.log(b), 0) / v.length);

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string): string | undefined => flagValue(name, argv);
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const seeds = parseSeeds(arg('--seeds') ?? '1-10');
  const groups = (arg('--groups') ?? 'continuous,step').split(',') as Result['group'][];
  for (const g of groups) if (g !== 'continuous' && g !== 'step') throw new Error(`unknown group '${g}' (continuous, step)`);
  const known = new Map<string, { tf: TestFunction; group: Result['group'] }>();
  for (const tf of testFunctions) {
    known.set(tf.name, { tf, group: 'continuous' });
    const s = stepped(tf);
    known.set(s.name, { tf: s, group: 'step' });
  }
  const fnSpec = arg('--functions');
  const fns = fnSpec
    ? fnSpec.split(',').map((n) => {
      const f = known.get(n);
      if (!f) throw new Error(`unknown function '${n}' (${[...known.keys()].join(', ')})`);
      return f;
    })
    : [...known.values()].filter((f) => groups.includes(f.group));
  const methodSpec = arg('--methods') ?? 'ours';
  const methodNames = methodSpec === 'none' ? [] : methodSpec.split(',');
  const methods = methodNames.map((n) => {
    const m = METHODS.find((x) => x.name === n);
    if (!m) throw new Error(`unknown method '${n}' (${METHODS.map((x) => x.name).join(', ')})`);
    return m;
  });
  const peerSpec = arg('--peers') ?? PEERS.map((p) => p.name).join(',');
  const peers = peerSpec === 'none' ? [] : peerSpec.split(',').map((n) => {
    const p = PEERS.find((x) => x.name === n);
    if (!p) throw new Error(`unknown peer '${n}' (${PEERS.map((x) => x.name).join(', ')}, or none)`);
    return p;
  });
  const python = arg('--python') ?? `${root}.venv/bin/python`;
  const jobs = Number(arg('--jobs') ?? '1');
  const jsonOut = arg('--json');
  const from = arg('--from')?.split(',') ?? [];
  const notes: string[] = [];

  const results: Result[] = [];
  // Peers: one child process per (peer, function), at most `jobs` at a time, while ours runs here.
  let peerDone: Promise<unknown> = Promise.resolve();
  const tmp = mkdtempSync(join(tmpdir(), 'dfmerge-bench-bo-'));
  // Results of earlier invocations (same seeds): those (method, function) pairs are not re-run.
  const have = (method: string, fn: string): boolean => results.some((r) => r.method === method && r.fn === fn);
  for (const entry of from) {
    const raw = /^([a-z-]+)=(.+)$/.exec(entry);
    if (raw) {
      // PEER=FILE: the JSON a peer script printed for one function (e.g. kept from a run that did not finish)
      const out = JSON.parse(readFileSync(raw[2], 'utf8')) as { function: string; runs: { seed: number; best: number[]; seconds?: number }[] };
      const f = fns.find((x) => x.tf.name === out.function);
      const runs = seeds.map((s) => out.runs.find((r) => r.seed === s));
      if (runs.some((r) => !r)) throw new Error(`${raw[2]} does not have every seed of ${seeds.join(',')}`);
      if (f && !have(raw[1], f.tf.name)) {
        results.push(summarise(raw[1], f.tf, f.group, { best: runs.map((r) => r!.best), seconds: runs.map((r) => r!.seconds ?? NaN) }));
        notes.push(`${raw[1]} on ${out.function} read from ${raw[2]} (that peer script's output from an earlier run, same seeds)`);
      }
      continue;
    }
    const file = entry;
    const earlier = JSON.parse(readFileSync(file, 'utf8')) as { results: Result[]; seeds: number[] };
    if (JSON.stringify(earlier.seeds) !== JSON.stringify(seeds)) throw new Error(`${file} has seeds ${earlier.seeds.join(',')}, not ${seeds.join(',')}`);
    const names = new Set<string>();
    for (const r of earlier.results) {
      const wanted = methods.some((m) => m.name === r.method) || peers.some((p) => p.name === r.method);
      if (wanted && fns.some((f) => f.tf.name === r.fn) && !results.some((x) => x.method === r.method && x.fn === r.fn)) {
        results.push(r);
        names.add(r.method);
      }
    }
    notes.push(`rows of ${[...names].join(', ') || 'nothing'} read from ${file} (an earlier run of this script with the same seeds), not re-run`);
  }
  const printOnly = argv.includes('--print-only');
  const peerTodo = printOnly ? [] : peers.flatMap((p) => fns.filter((f) => !have(p.name, f.tf.name)).map((f) => ({ p, f })));
  if (peerTodo.length > 0 && !existsSync(python)) {
    notes.push(`peers skipped: ${python} not found`);
  } else if (peerTodo.length > 0) {
    const thunks = peerTodo.map(({ p, f: { tf, group } }) => async () => {
      const t0 = performance.now();
      try {
        const t = await runPython(python, `${root}benchmarks/bo/${p.script}`, p.args, tf.name, seeds, tmp);
        results.push(summarise(p.name, tf, group, t));
        console.error(`${tf.name} ${p.name}: ${seeds.length} runs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      } catch (e) {
        notes.push(`${p.name} failed on ${tf.name}: ${(e as Error).message.split('\n').slice(0, 3).join(' ')}`);
      }
    });
    peerDone = pool(thunks, jobs);
  }
  for (const { tf, group } of fns) {
    for (const method of methods) {
      if (have(method.name, tf.name) || printOnly) continue;
      const runs: { best: number[]; seconds: number }[] = [];
      for (const s of seeds) {
        runs.push(runOurs(tf, method, s));
        await new Promise((r) => setImmediate(r)); // let finished peers be collected and the next ones start
      }
      const t: Traces = { best: runs.map((r) => r.best), seconds: runs.map((r) => r.seconds) };
      const r = summarise(method.name, tf, group, t);
      results.push(r);
      const regrets = CHECKPOINTS.map((at, k) => `@${at} ${r.cells[k].mean.toExponential(2)}`).join(' ');
      console.error(`${tf.name} ${method.name}: ${seeds.length} runs in ${t.seconds.reduce((a, b) => a + b, 0).toFixed(1)} s; mean regret ${regrets}`);
    }
  }
  await peerDone;
  rmSync(tmp, { recursive: true, force: true });

  if (methods.length === 0) {
    // --methods none: only peer rows, for a later --from
    for (const n of notes) console.log(`Note: ${n}`);
    if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ seeds, nInit: N_INIT, nIter: N_ITER, checkpoints: CHECKPOINTS, results, notes }, null, 1));
    return;
  }
  const fmt = (v: number): string => (v === 0 ? '0' : Math.abs(v) >= 0.01 ? v.toFixed(3) : v.toExponential(1));
  const ref = methods[0].name;
  const others = [...methods.slice(1).map((m) => m.name), ...peers.map((p) => p.name)];
  const find = (method: string, fn: string): Result | undefined => results.find((r) => r.method === method && r.fn === fn);
  console.log(`Seeds ${seeds.join(',')} (${seeds.length}); ${N_INIT} random + ${N_ITER} iterations.`);
  console.log('Regret = (optimum − best value found) ÷ (optimum − median of f over the box); step functions: 1 − best step value.');
  console.log(`Each cell: mean ± standard error over seeds; (×r) = that method's mean regret ÷ ${ref}'s (> 1: ${ref} is better; regrets floored at ${RATIO_FLOOR} for ratios).\n`);
  console.log(`| function | evals | ${ref} | ${others.join(' | ')} |`);
  console.log(`|---|---|---|${others.map(() => '---|').join('')}`);
  for (const { tf } of fns) {
    const mine = find(ref, tf.name);
    if (!mine) throw new Error(`no ${ref} rows for ${tf.name} (--print-only needs them in the --from files)`);
    CHECKPOINTS.forEach((at, k) => {
      const cells = others.map((o) => {
        const r = find(o, tf.name);
        if (!r) return 'n/a';
        return `${fmt(r.cells[k].mean)} ± ${fmt(r.cells[k].se)} (×${ratio(r.cells[k].mean, mine.cells[k].mean).toFixed(2)})`;
      });
      console.log(`| ${tf.name} | ${at} | ${fmt(mine.cells[k].mean)} ± ${fmt(mine.cells[k].se)} | ${cells.join(' | ')} |`);
    });
  }

  // Summary: geometric mean over functions of (other's regret ÷ ours), per group and overall.
  const groupNames = [...new Set(fns.map((f) => f.group))];
  const cols = [...groupNames, 'all'];
  console.log(`\nGeometric mean over functions of (method's mean regret ÷ ${ref}'s); > 1: ${ref} is better.\n`);
  console.log(`| method | ${cols.flatMap((g) => CHECKPOINTS.map((at) => `${g} @${at}`)).join(' | ')} |`);
  console.log(`|---|${cols.flatMap(() => CHECKPOINTS.map(() => '---|')).join('')}`);
  const mineFor = (fn: string): Result => find(ref, fn)!;
  for (const o of others) {
    const cellsOut: string[] = [];
    for (const g of cols) {
      for (let k = 0; k < CHECKPOINTS.length; k++) {
        const inGroup = fns.filter((f) => g === 'all' || f.group === g);
        const rs = inGroup.map((f) => find(o, f.tf.name)).filter((r): r is Result => !!r);
        const partial = rs.length < inGroup.length ? ` (${rs.length} of ${inGroup.length})` : '';
        cellsOut.push(rs.length === 0 ? 'n/a' : `${geomean(rs.map((r) => ratio(r.cells[k].mean, mineFor(r.fn).cells[k].mean))).toFixed(2)}×${partial}`);
      }
    }
    console.log(`| ${o} | ${cellsOut.join(' | ')} |`);
  }

  // Time per run.
  console.log('\nMean seconds per 60-evaluation run (machine shared; peers ran concurrently with ours):\n');
  console.log(`| method | ${groupNames.join(' | ')} |`);
  console.log(`|---|${groupNames.map(() => '---|').join('')}`);
  for (const m of [ref, ...others]) {
    const cells = groupNames.map((g) => {
      const secs = results.filter((r) => r.method === m && r.group === g).flatMap((r) => r.seconds).filter(Number.isFinite);
      return secs.length ? (secs.reduce((a, b) => a + b, 0) / secs.length).toFixed(1) : 'n/a';
    });
    console.log(`| ${m} | ${cells.join(' | ')} |`);
  }
  for (const n of notes) console.log(`\nNote: ${n}`);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ seeds, nInit: N_INIT, nIter: N_ITER, checkpoints: CHECKPOINTS, results, notes }, null, 1));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
