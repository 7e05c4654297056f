/**
 * DF-Merge at a real model size, in bounded memory (docs/design.md §5):
 * one or more full evaluations (Fisher of every scaled model folded into S and W,
 * the Fisher-weighted merge, validation) of M BF16 experts of a Llama-3.2-1B-
 * shaped model, run in a child process whose peak resident memory (VmHWM, which
 * counts the mapped checkpoint pages it touched) is printed per parameter next to
 * the target of 12 bytes per parameter + 1 GiB.
 *
 *   node dist/benchmarks/dfmerge/memory.js [--layers 16 --models 4 --fisher 2 --validation 8 --evaluations 1]
 *       [--hidden 2048 --intermediate 8192 --heads 32 --kv-heads 8 --vocab 128256 --untied] [--dir D] [--keep]
 *       [--torch [--torch-max-gb 20]]   (the same iteration in PyTorch, in the same run)
 *       [--grid K]                      (then --fisher-grid K: the grid built, and one evaluation from it)
 *
 * The checkpoints (about 2.5 GB each at the full shape) go to --dir (default
 * benchmarks/.data/dfmerge-memory-<shape>) and are reused by the next run; --keep
 * leaves them there (default: removed at the end).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DfMergeObjective } from '../../src/dfmerge/objective.js';
import { FisherGrid, gridPoints } from '../../src/dfmerge/fisher_grid.js';
import { releaseCheckpoint, type DfSetup } from '../../src/dfmerge/setup.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { LlamaRuntime, checkpointSource } from '../../src/model/runtime.js';
import { loadAddon } from '../../src/native/addon.js';
import { Rng } from '../../src/util/rng.js';
import { ROOT, asJson, pythonWithTorch, randomExamples } from '../support/random_llama.js';
import { LLAMA_3_2_1B, paramsOf, writeBigLlama, type BigLlamaShape } from '../support/bf16_llama.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
function sarg(name: string): string | undefined {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

interface ChildResult {
  params: number;
  vmHwm: number;
  evaluations: { fisher: number; merge: number; eval: number; total: number; accuracy: number[] }[];
  /** With --grid K: seconds to build the grid, and one evaluation from it. */
  grid?: { build: number; evaluation: { merge: number; eval: number; total: number; accuracy: number[] } };
  fisherTokens: number;
  threads: number;
}

function status(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

type Spec = { dir: string; shape: BigLlamaShape; models: number; fisher: number; validation: number; evaluations: number; threads: number; grid: number };

/** The seeded Fisher and validation examples (the same in the child and for PyTorch). */
function examplesOf(spec: Spec) {
  const rng = new Rng(11);
  const fisherExamples = Array.from({ length: spec.models }, () => randomExamples(rng, spec.fisher, spec.shape.vocab));
  const validation = Array.from({ length: spec.models }, (_, k) => ({ name: `task${k}`, file: `task${k}`, examples: randomExamples(rng, spec.validation, spec.shape.vocab).map((e) => ({ ...e, line: 0 })) }));
  return { fisherExamples, validation };
}

/** The λ of evaluation e. */
const lambdaOf = (spec: Spec, e: number) => Array.from({ length: spec.models }, (_, k) => 0.3 + 0.5 * ((k + e) % spec.models) / Math.max(1, spec.models - 1));

/** The measured part, in its own process (a fresh VmHWM). */
async function child(spec: Spec): Promise<void> {
  const { addon } = loadAddon();
  if (spec.threads > 0) addon.setThreads(spec.threads);
  const { config } = paramsOf(spec.shape);
  const rt = LlamaRuntime.fromConfig(config);
  const base = Checkpoint.open(join(spec.dir, 'base'));
  const models = Array.from({ length: spec.models }, (_, k) => Checkpoint.open(join(spec.dir, `expert${k}`)));
  const { fisherExamples, validation } = examplesOf(spec);
  const setup: DfSetup = {
    config, tokenizer: undefined, rt, base, models, baseSource: checkpointSource(base, rt.params),
    modelSources: models.map((ck) => checkpointSource(ck, rt.params)), modelNames: models.map((_, k) => `expert${k}`),
    validation, test: undefined, fisherExamples, close: () => { base.close(); for (const m of models) m.close(); },
    releaseModel: (i) => releaseCheckpoint(models[i]!),
  };
  const obj = new DfMergeObjective(setup, { fisher: true, fisherMode: 'expected' });
  let last = 0;
  obj.onProgress = (phase, done, total, detail) => {
    const now = performance.now();
    if (now - last > 10000 || done === total) {
      last = now;
      process.stderr.write(`  ${phase} ${done}/${total} ${detail} (RSS ${(status('VmRSS') / 2 ** 30).toFixed(2)} GiB)\n`);
    }
  };
  const evaluations: ChildResult['evaluations'] = [];
  for (let e = 0; e < spec.evaluations; e++) {
    const lambda = lambdaOf(spec, e);
    const t0 = performance.now();
    const { timings } = await obj.merge(lambda);
    const t1 = performance.now();
    const r = await obj.evaluateMerged(validation);
    const evalSeconds = (performance.now() - t1) / 1000;
    evaluations.push({ fisher: timings.fisherSeconds, merge: timings.mergeSeconds, eval: evalSeconds, total: (performance.now() - t0) / 1000, accuracy: r.tasks.map((t) => t.accuracy) });
  }
  let grid: ChildResult['grid'];
  if (spec.grid > 0) {
    obj.release();  // the exact objective's S and W are not needed any more
    const tb = performance.now();
    const g = await FisherGrid.open(setup, { dir: join(spec.dir, 'grid'), points: gridPoints(spec.grid, [0, 1]), interpolation: 'linear', fisherMode: 'expected' });
    const build = (performance.now() - tb) / 1000;
    const gobj = new DfMergeObjective(setup, { fisher: true, fisherMode: 'expected', grid: g });
    const t0 = performance.now();
    const { timings } = await gobj.merge(lambdaOf(spec, 0));
    const t1 = performance.now();
    const r = await gobj.evaluateMerged(validation);
    grid = { build, evaluation: { merge: timings.mergeSeconds, eval: (performance.now() - t1) / 1000, total: (performance.now() - t0) / 1000, accuracy: r.tasks.map((t) => t.accuracy) } };
    g.close();
  }
  let fisherTokens = 0;
  for (const ex of fisherExamples) for (const e of ex) for (const c of e.choices) fisherTokens += e.prompt.length + c.length;
  setup.close();
  const out: ChildResult = { params: rt.numParams, vmHwm: status('VmHWM'), evaluations, fisherTokens, threads: addon.buildInfo().threads, ...(grid ? { grid } : {}) };
  process.stdout.write(JSON.stringify(out) + '\n');
}

async function main(): Promise<void> {
  const shape: BigLlamaShape = {
    hidden: arg('hidden', LLAMA_3_2_1B.hidden), intermediate: arg('intermediate', LLAMA_3_2_1B.intermediate), layers: arg('layers', LLAMA_3_2_1B.layers),
    heads: arg('heads', LLAMA_3_2_1B.heads), kvHeads: arg('kv-heads', LLAMA_3_2_1B.kvHeads), vocab: arg('vocab', LLAMA_3_2_1B.vocab),
    tied: !process.argv.includes('--untied'),
  };
  const m = arg('models', 4);
  const tag = `${shape.hidden}x${shape.layers}-v${shape.vocab}${shape.tied ? '' : '-untied'}`;
  const dir = sarg('dir') ?? join(ROOT, 'benchmarks', '.data', `dfmerge-memory-${tag}`);
  const say = (s: string) => process.stdout.write(s + '\n');
  const t0 = performance.now();
  for (const [name, k] of [['base', -1], ...Array.from({ length: m }, (_, i) => [`expert${i}`, i] as const)] as const) {
    if (existsSync(join(dir, name, 'model.safetensors.index.json')) || existsSync(join(dir, name, 'model.safetensors'))) continue;
    process.stderr.write(`writing ${join(dir, name)}\n`);
    writeBigLlama(join(dir, name), shape, k);
  }
  const gen = (performance.now() - t0) / 1000;
  const spec: Spec = { dir, shape, models: m, fisher: arg('fisher', 2), validation: arg('validation', 8), evaluations: arg('evaluations', 1), threads: arg('threads', 0), grid: arg('grid', 0) };
  const specFile = join(dir, 'spec.json');
  writeFileSync(specFile, JSON.stringify(spec));
  try {
    const r = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', specFile],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 }).trim().split('\n').pop()!) as ChildResult;
    const gib = 2 ** 30;
    const target = 12 * r.params + gib;
    say(`model: Llama hidden ${shape.hidden}, ${shape.layers} layers, vocab ${shape.vocab}${shape.tied ? ' (tied)' : ''}: ${(r.params / 1e9).toFixed(3)} B params, BF16 checkpoints; ${m} experts; ${spec.fisher} Fisher and ${spec.validation} validation examples per task; ${r.threads} threads${gen > 1 ? ` (checkpoints written in ${gen.toFixed(0)} s)` : ''}`);
    for (const [i, e] of r.evaluations.entries()) {
      say(`evaluation ${i + 1}: ${e.total.toFixed(1)} s = Fisher ${e.fisher.toFixed(1)} s (${(r.fisherTokens / e.fisher).toFixed(1)} tokens/s) + merge ${e.merge.toFixed(1)} s + validation ${e.eval.toFixed(1)} s`);
    }
    if (r.grid) {
      const g = r.grid.evaluation;
      say(`--fisher-grid ${spec.grid}: grid built in ${r.grid.build.toFixed(1)} s (${spec.grid * m} Fisher passes); one evaluation from it ${g.total.toFixed(1)} s = merge ${g.merge.toFixed(1)} s + validation ${g.eval.toFixed(1)} s (accuracy ${g.accuracy.map((a) => a.toFixed(2)).join(', ')} vs exact ${r.evaluations[0]!.accuracy.map((a) => a.toFixed(2)).join(', ')})`);
    }
    say(`peak RSS (VmHWM, mapped checkpoint pages included): ${(r.vmHwm / gib).toFixed(2)} GiB = ${(r.vmHwm / r.params).toFixed(2)} bytes/param; target 12 bytes/param + 1 GiB = ${(target / gib).toFixed(2)} GiB: ${r.vmHwm <= target ? 'met' : 'NOT met'} (${(r.vmHwm / target).toFixed(2)} of it)`);
    say(`for comparison, the (7 + M) f32 copies this replaced: ${(((7 + m) * 4 * r.params) / gib).toFixed(1)} GiB`);
    if (process.argv.includes('--torch')) {
      // The same iteration in PyTorch (benchmarks/dfmerge/torch_iteration.py), address space capped so that
      // running out of memory is reported, not left to the OOM killer.
      const py = pythonWithTorch();
      if (!py) {
        say('PyTorch reference skipped: no python with torch (set DFMERGE_PYTHON or create .venv)');
      } else {
        const cap = arg('torch-max-gb', 20);
        const { fisherExamples, validation } = examplesOf(spec);
        const runFile = join(dir, 'torch-run.json');
        writeFileSync(runFile, JSON.stringify({ base: join(dir, 'base'), models: Array.from({ length: m }, (_, k) => join(dir, `expert${k}`)), lambda: lambdaOf(spec, 0),
          fisher: fisherExamples.map((f) => f.map(asJson)), validation: validation.map((v) => v.examples.map(asJson)) }));
        const t = JSON.parse(execFileSync(py, [join(ROOT, 'benchmarks', 'dfmerge', 'torch_iteration.py'), runFile, join(dir, 'torch-merged.safetensors'), '--threads', String(r.threads), '--max-memory-gb', String(cap)],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!) as { oom?: boolean; error?: string; total_seconds?: number; peak_rss_bytes: number };
        rmSync(runFile, { force: true });
        rmSync(join(dir, 'torch-merged.safetensors'), { force: true });
        if (t.oom) say(`PyTorch, same iteration: out of memory under a ${cap} GiB address-space cap (peak RSS ${(t.peak_rss_bytes / gib).toFixed(2)} GiB): ${t.error}`);
        else {
          const ratio = r.evaluations[0] ? `; dfmerge ${(t.total_seconds! / r.evaluations[0].total).toFixed(2)}x faster` : '';
          say(`PyTorch, same iteration: ${t.total_seconds!.toFixed(1)} s, peak RSS ${(t.peak_rss_bytes / gib).toFixed(2)} GiB = ${(t.peak_rss_bytes / r.params).toFixed(2)} bytes/param${ratio}`);
        }
      }
    }
  } finally {
    rmSync(specFile, { force: true });
    if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child(JSON.parse(readFileSync(process.argv[3]!, 'utf8')) as Parameters<typeof child>[0]);
else await main();
