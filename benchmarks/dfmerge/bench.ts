/**
 * DF-Merge iteration benchmark: one iteration (Fisher of every scaled model,
 * Fisher-weighted merge, validation accuracy) split into its parts, for dfmerge
 * and for a PyTorch implementation of the same iteration on the same random
 * models and tokenized data; ratio from the same run, and the merged weights of
 * both compared for the same λ.
 *
 *   node dist/benchmarks/dfmerge/bench.js [--hidden 256 --layers 4 --vocab 8000 --models 2 --fisher 30 --validation 100 --threads N]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DfMergeObjective } from '../../src/dfmerge/objective.js';
import { releaseCheckpoint, type DfSetup } from '../../src/dfmerge/setup.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { checkpointSource } from '../../src/model/runtime.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { loadAddon } from '../../src/native/addon.js';
import { Rng } from '../../src/util/rng.js';
import { ROOT, asJson, pythonWithTorch, randomExamples, writeRandomLlama } from '../support/random_llama.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const hidden = arg('hidden', 256), layers = arg('layers', 4), vocab = arg('vocab', 8000), m = arg('models', 2);
const nFisher = arg('fisher', 30), nVal = arg('validation', 100), threads = arg('threads', 0);
const shape = { hidden, layers, vocab, heads: Math.max(1, hidden / 64), kvHeads: Math.max(1, hidden / 128), intermediate: Math.round((hidden * 8) / 3 / 64) * 64 };

const { addon } = loadAddon();
if (threads > 0) addon.setThreads(threads);
const dir = mkdtempSync(join(tmpdir(), 'dfm-bench-dfmerge-'));
try {
  mkdirSync(join(dir, 'base'));
  const rt = writeRandomLlama(join(dir, 'base'), shape, 1);
  const modelDirs = Array.from({ length: m }, (_, k) => join(dir, `model${k}`));
  modelDirs.forEach((d, k) => { mkdirSync(d); writeRandomLlama(d, shape, 100 + k, rt, 0.02); });
  const rng = new Rng(7);
  const fisher = modelDirs.map(() => randomExamples(rng, nFisher, vocab));
  const validation = modelDirs.map((_, k) => ({ name: `task${k}`, file: `task${k}`, examples: randomExamples(rng, nVal, vocab).map((e) => ({ ...e, line: 0 })) }));
  const lambda = modelDirs.map((_, k) => 0.3 + 0.4 * (k / Math.max(1, m - 1)));
  const baseCk = Checkpoint.open(join(dir, 'base'));
  const modelCks = modelDirs.map((d) => Checkpoint.open(d));
  const setup: DfSetup = {
    config: rt.config, tokenizer: rt.tokenizer!, rt, base: baseCk, models: modelCks,
    baseSource: checkpointSource(baseCk, rt.params), modelSources: modelCks.map((ck) => checkpointSource(ck, rt.params)),
    modelNames: modelDirs, validation, test: undefined, fisherExamples: fisher,
    close: () => { baseCk.close(); for (const ck of modelCks) ck.close(); },
    releaseModel: (i) => releaseCheckpoint(modelCks[i]!),
  };
  const obj = new DfMergeObjective(setup, { fisher: true, fisherMode: 'expected' });
  await obj.merge(lambda); // warm-up
  const t0 = performance.now();
  const { merged, timings } = await obj.merge(lambda);
  const t1 = performance.now();
  const res = await obj.evaluateMerged(validation);
  const evalSeconds = (performance.now() - t1) / 1000;
  const total = (performance.now() - t0) / 1000;
  const ours = merged;
  const say = (s: string) => process.stdout.write(s + '\n');
  say(`model: Llama hidden ${hidden}, ${layers} layers, vocab ${vocab}: ${(rt.numParams / 1e6).toFixed(2)} M params; ${m} models; ${nFisher} Fisher examples and ${nVal} validation examples per task; threads ${addon.buildInfo().threads}`);
  say(`dfmerge  iteration: ${total.toFixed(2)} s = fisher ${timings.fisherSeconds.toFixed(2)} + merge ${timings.mergeSeconds.toFixed(3)} + eval ${evalSeconds.toFixed(2)} (accuracy ${res.tasks.map((t) => t.accuracy.toFixed(2)).join(', ')})`);
  const py = pythonWithTorch();
  if (!py) {
    say('PyTorch reference skipped: no python with torch (set DFMERGE_PYTHON or create .venv)');
  } else {
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ base: join(dir, 'base'), models: modelDirs, lambda, fisher: fisher.map((f) => f.map(asJson)), validation: validation.map((v) => v.examples.map(asJson)) }));
    const out = join(dir, 'torch_merged.safetensors');
    const t = JSON.parse(execFileSync(py, [join(ROOT, 'benchmarks', 'dfmerge', 'torch_iteration.py'), join(dir, 'run.json'), out, '--threads', String(addon.buildInfo().threads)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!) as
      { fisher_seconds: number; merge_seconds: number; eval_seconds: number; total_seconds: number; accuracy: number[]; threads: number };
    say(`PyTorch  iteration: ${t.total_seconds.toFixed(2)} s = fisher ${t.fisher_seconds.toFixed(2)} + merge ${t.merge_seconds.toFixed(3)} + eval ${t.eval_seconds.toFixed(2)} (accuracy ${t.accuracy.map((a) => a.toFixed(2)).join(', ')}; ${t.threads} threads)`);
    say(`speed-up: ${(t.total_seconds / total).toFixed(2)}x per iteration (fisher ${(t.fisher_seconds / timings.fisherSeconds).toFixed(2)}x, eval ${(t.eval_seconds / evalSeconds).toFixed(2)}x)`);
    const f = SafetensorsFile.open(out);
    let worst = 0, scale = 0;
    for (const p of rt.params) {
      const theirs = f.toFloat32(p.name);
      const mine = ours.view(p.offset, p.numel);
      for (let i = 0; i < p.numel; i++) {
        worst = Math.max(worst, Math.abs(theirs[i]! - mine[i]!));
        scale = Math.max(scale, Math.abs(theirs[i]!));
      }
    }
    f.close();
    say(`same λ, same merged weights: max |Δ| = ${worst.toExponential(2)} (max |θ*| = ${scale.toFixed(3)}, relative ${(worst / scale).toExponential(2)})`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
