// Our optimiser against optuna's GPSampler on the real DF-Merge objective: the demo zoo
// (fast configuration: a tiny Llama base, four experts, 100 validation examples per
// task) with the --no-fisher variant (θ = θ_pre + Σ λ_i τ_i, λ ∈ [0, 1]⁴), objective =
// mean validation accuracy over the four tasks (a step function with steps of 1/400).
//   ours        optimize() from the public API (src/index.ts), noFisher, the paper's
//               10 random + N iterations, its default optimiser;
//   optuna-gp   GPSampler(n_startup_trials=10) in benchmarks/bo/peers.py --external,
//               each trial's λ evaluated here on the same objective (DfMergeObjective,
//               the code optimize() evaluates with).
// Prints the best validation accuracy after 10, 20, 30 and 60 evaluations (mean ±
// standard error over seeds).
//
// Usage (after `tsc -p tsconfig.json`; needs .venv with optuna):
//   node dist/benchmarks/bo/zoo_objective.js [--seeds 1-5] [--evals 60] [--zoo benchmarks/.data/zoo-fast]
//        [--python .venv/bin/python] [--json out.json] [--xi X (ours' EI margin; default DF-Merge's)] [--ours-only]
//   node dist/benchmarks/bo/zoo_objective.js --from a.json,b.json,...   (one table from runs saved with --json,
//        e.g. one process per seed)

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { optimize, buildZoo } from '../../src/index.js';
import { resolveZoo } from '../../src/zoo/zoo.js';
import { DfMergeObjective } from '../../src/dfmerge/objective.js';
import { loadSetup } from '../../src/dfmerge/setup.js';
import { ZOO_PROMPTS } from '../../src/zoo/tasks.js';
import { flagValue, parseSeeds } from '../support/args.js';

const N_INIT = 10;

const bestSoFar = (ys: number[]): number[] => {
  const out: number[] = [];
  for (const y of ys) out.push(Math.max(y, out.length ? out[out.length - 1] : -Infinity));
  return out;
};

/** One optuna study whose trials are evaluated by `evaluate`; returns the objective values in trial order. */
function runOptuna(python: string, script: string, dim: number, seed: number, evals: number, evaluate: (x: number[]) => Promise<number>): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script, '--sampler', 'gp', '--external', String(dim), '--seed', String(seed), '--init', String(N_INIT), '--iter', String(evals - N_INIT)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
    });
    const ys: number[] = [];
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const lines = createInterface({ input: child.stdout });
    let chain = Promise.resolve();
    lines.on('line', (line) => {
      chain = chain.then(async () => {
        const msg = JSON.parse(line) as { x?: number[]; done?: boolean };
        if (msg.done) return;
        const y = await evaluate(msg.x!);
        ys.push(y);
        child.stdin.write(JSON.stringify({ y }) + '\n');
      }).catch(reject);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      chain.then(() => (code === 0 ? resolve(ys) : reject(new Error(`${script} exited with ${code}: ${err.slice(-2000)}`))), reject);
    });
  });
}

function printTable(seeds: number[], evals: number, taskNames: string[], dim: number, traces: Map<string, number[][]>, seconds: Map<string, number[]>): void {
  const checkpoints = [10, 20, 30, 60].filter((c) => c <= evals);
  for (const [k, v] of [...traces]) if (v.length === 0) traces.delete(k);
  const both = traces.has('ours') && traces.has('optuna-gp');
  const stats = (v: number[]): string => {
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = Math.sqrt(v.reduce((a, x) => a + (x - m) ** 2, 0) / Math.max(1, v.length - 1));
    return `${(100 * m).toFixed(2)} ± ${(100 * sd / Math.sqrt(v.length)).toFixed(2)}`;
  };
  console.log(`Demo zoo (fast), --no-fisher objective: mean validation accuracy over ${taskNames.length} tasks (${taskNames.join(', ')}), λ ∈ [0, 1]^${dim}.`);
  console.log(`Seeds ${seeds.join(',')}; ${N_INIT} random + ${evals - N_INIT} iterations. Best validation accuracy (%) found, mean ± s.e. over seeds:\n`);
  console.log(`| evals | ${[...traces.keys()].join(' | ')} |${both ? ' optuna-gp − ours |' : ''}`);
  console.log(`|---|${[...traces.keys()].map(() => '---|').join('')}${both ? '---|' : ''}`);
  for (const at of checkpoints) {
    const cols = [...traces.values()].map((t) => stats(t.map((b) => b[at - 1])));
    const diff = both ? ` ${stats(traces.get('optuna-gp')!.map((t, i) => t[at - 1] - traces.get('ours')![i][at - 1]))} |` : '';
    console.log(`| ${at} | ${cols.join(' | ')} |${diff}`);
  }
  console.log('\nPer-seed best after the last evaluation (%):');
  for (const [name, t] of traces) console.log(`  ${name.padEnd(10)} ${t.map((b) => (100 * b.at(-1)!).toFixed(2)).join(' ')}`);
  console.log(`\nSeconds per run: ${[...seconds].filter(([n]) => traces.has(n)).map(([n, s]) => `${n} ${(s.reduce((a, b) => a + b, 0) / s.length).toFixed(0)}`).join(', ')}`);
}

/** One table from several --json files (same evaluation count, disjoint seeds). */
function printFrom(files: string[]): void {
  const traces = new Map<string, number[][]>();
  const seconds = new Map<string, number[]>();
  const seeds: number[] = [];
  let evals = 0;
  for (const f of files) {
    const j = JSON.parse(readFileSync(f, 'utf8')) as { seeds: number[]; evals: number; tasks: string[]; dim: number; traces: Record<string, number[][]>; seconds: Record<string, number[]> };
    if (evals && j.evals !== evals) throw new Error(`${f} has ${j.evals} evaluations per run, the others ${evals}`);
    evals = j.evals;
    seeds.push(...j.seeds);
    for (const [k, v] of Object.entries(j.traces)) traces.set(k, [...(traces.get(k) ?? []), ...v]);
    for (const [k, v] of Object.entries(j.seconds)) seconds.set(k, [...(seconds.get(k) ?? []), ...v]);
  }
  const first = JSON.parse(readFileSync(files[0], 'utf8')) as { tasks: string[]; dim: number };
  printTable(seeds, evals, first.tasks, first.dim, traces, seconds);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string): string | undefined => flagValue(name, argv);
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const from = arg('--from');
  if (from) return printFrom(from.split(','));
  const seeds = parseSeeds(arg('--seeds') ?? '1-5');
  const evals = Number(arg('--evals') ?? '60');
  if (!(Number.isInteger(evals) && evals > N_INIT)) throw new Error(`--evals must be an integer > ${N_INIT}`);
  const zooDir = arg('--zoo') ?? join(root, 'benchmarks', '.data', 'zoo-fast');
  const python = arg('--python') ?? join(root, '.venv', 'bin', 'python');
  const jsonOut = arg('--json');
  const xi = arg('--xi') !== undefined ? Number(arg('--xi')) : undefined;
  const oursOnly = argv.includes('--ours-only');

  const zoo = await buildZoo({ out: zooDir, seed: 0, fast: true, onProgress: (l) => console.error(l) });
  const z = resolveZoo(zoo.dir, zoo.manifest);
  const taskNames = Object.keys(z.tasks);
  const models = taskNames.map((t) => z.experts[t]!);
  const tasks = taskNames.map((t) => ({ validation: z.tasks[t]!.validation, test: z.tasks[t]!.test }));
  const work = mkdtempSync(join(tmpdir(), 'dfmerge-bo-zoo-'));

  // The objective optuna's trials are scored with: the one optimize() builds for noFisher.
  const setup = loadSetup({ base: z.base, models, tasks, fisherSamples: 1, validationFraction: 1, seed: 0, needFisher: false, prompts: ZOO_PROMPTS });
  const objective = new DfMergeObjective(setup, { fisher: false, fisherMode: 'expected' });
  const evaluate = async (lambda: number[]): Promise<number> => {
    await objective.merge(lambda);
    return (await objective.evaluateMerged(setup.validation)).meanAccuracy;
  };

  const traces = new Map<string, number[][]>([['ours', []], ['optuna-gp', []]]);
  const seconds = new Map<string, number[]>([['ours', []], ['optuna-gp', []]]);
  try {
    for (const seed of seeds) {
      let t0 = performance.now();
      const r = await optimize({
        base: z.base, models, tasks, out: join(work, `ours-${seed}`), initPoints: N_INIT, iterations: evals - N_INIT,
        noFisher: true, baselines: false, seed, force: true, prompts: ZOO_PROMPTS, ...(xi !== undefined ? { xi } : {}),
      });
      traces.get('ours')!.push(bestSoFar(r.history.map((e) => e.objective ?? -Infinity)));
      seconds.get('ours')!.push((performance.now() - t0) / 1000);
      if (oursOnly) {
        console.error(`seed ${seed}: ours best ${traces.get('ours')!.at(-1)!.at(-1)!.toFixed(4)}`);
        continue;
      }
      t0 = performance.now();
      const ys = await runOptuna(python, join(root, 'benchmarks', 'bo', 'peers.py'), models.length, seed, evals, evaluate);
      traces.get('optuna-gp')!.push(bestSoFar(ys));
      seconds.get('optuna-gp')!.push((performance.now() - t0) / 1000);
      console.error(`seed ${seed}: ours best ${traces.get('ours')!.at(-1)!.at(-1)!.toFixed(4)}, optuna-gp best ${traces.get('optuna-gp')!.at(-1)!.at(-1)!.toFixed(4)}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }

  printTable(seeds, evals, taskNames, models.length, traces, seconds);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ seeds, evals, tasks: taskNames, dim: models.length, traces: Object.fromEntries(traces), seconds: Object.fromEntries(seconds) }, null, 1));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
