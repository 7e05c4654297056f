/**
 * Fisher benchmark (docs/design.md §4): tokens per second of dfmerge's native Fisher
 * (per-example, per-choice backward passes, expected mode) against a PyTorch
 * loop doing the same backward passes on the same model and tokenized examples
 * (benchmarks/fisher/torch_fisher.py, run when the repo's .venv/bin/python or
 * $DFMERGE_PYTHON has torch), plus forward-only scoring throughput; the ratio
 * and the agreement of the two Fishers (max-abs-error / max-abs-value per
 * tensor) are measured in the same run.
 *
 *   node dist/benchmarks/fisher/bench.js [--hidden 512 --layers 4 --vocab 8000 --examples 30 --threads N]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { computeFisher, exampleTokens } from '../../src/fisher/fisher.js';
import { loadAddon } from '../../src/native/addon.js';
import { Rng } from '../../src/util/rng.js';
import { ROOT, asJson, pythonWithTorch, randomExamples, writeRandomLlama } from '../support/random_llama.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const hidden = arg('hidden', 512), layers = arg('layers', 4), vocab = arg('vocab', 8000), nEx = arg('examples', 30);
const heads = arg('heads', 8), kvHeads = arg('kv-heads', 4), inter = arg('intermediate', Math.round((hidden * 8) / 3 / 64) * 64);
const threads = arg('threads', 0);

async function main() {
  const { addon } = loadAddon();
  if (threads > 0) addon.setThreads(threads);
  const nThreads = addon.buildInfo().threads;
  const dir = mkdtempSync(join(tmpdir(), 'dfm-bench-fisher-'));
  try {
    // A random Llama (GQA, untied) written as an HF folder, and random tokenized examples.
    writeRandomLlama(dir, { hidden, intermediate: inter, layers, heads, kvHeads, vocab }, 1);
    const examples = randomExamples(new Rng(1), nEx, vocab);
    writeFileSync(join(dir, 'examples.json'), JSON.stringify(examples.map(asJson)));
    const tokens = examples.reduce((a, e) => a + exampleTokens(e), 0);

    const rt = LlamaRuntime.fromCheckpoint(dir);
    await rt.score(examples.slice(0, 2));  // warm-up
    const cpu = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;
    let t0 = performance.now(), c0 = process.cpuUsage();
    await rt.score(examples);
    const evalSeconds = (performance.now() - t0) / 1000, evalCpu = cpu(process.cpuUsage(c0));
    t0 = performance.now(); c0 = process.cpuUsage();
    const { fisher } = await computeFisher(rt, examples, { mode: 'expected', batch: examples.length });
    const fisherSeconds = (performance.now() - t0) / 1000, fisherCpu = cpu(process.cpuUsage(c0));

    const lines: string[] = [];
    const say = (s: string) => { lines.push(s); process.stdout.write(s + '\n'); };
    say(`model: Llama hidden ${hidden}, intermediate ${inter}, ${layers} layers, ${heads} heads / ${kvHeads} kv heads, vocab ${vocab}: ${(rt.numParams / 1e6).toFixed(1)} M params (f32)`);
    say(`data: ${nEx} examples, ${tokens} tokens (Σ over choices of prompt + choice); matmul: ${addon.matmulBackend()}, threads: ${nThreads}`);
    const load = (await import('node:os')).loadavg()[0]!.toFixed(2);
    say(`load average before the run: ${load} on ${(await import('node:os')).cpus().length} CPUs (other processes skew wall times; CPU times are also given)`);
    say(`dfmerge  fisher (expected): ${fisherSeconds.toFixed(2)} s wall, ${(tokens / fisherSeconds).toFixed(0)} tokens/s; ${fisherCpu.toFixed(2)} s CPU, ${(tokens / fisherCpu).toFixed(0)} tokens/CPU-s`);
    say(`dfmerge  eval (forward only): ${evalSeconds.toFixed(2)} s wall, ${(tokens / evalSeconds).toFixed(0)} tokens/s; ${evalCpu.toFixed(2)} s CPU, ${(tokens / evalCpu).toFixed(0)} tokens/CPU-s`);

    const py = pythonWithTorch();
    if (!py) {
      say('PyTorch reference skipped: no python with torch (set DFMERGE_PYTHON)');
      return;
    }
    const out = join(dir, 'torch_fisher.safetensors');
    const res = JSON.parse(execFileSync(py, [join(ROOT, 'benchmarks', 'fisher', 'torch_fisher.py'), dir, join(dir, 'examples.json'), out,
      '--threads', String(nThreads)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!) as
      { tokens: number; fisher_seconds: number; eval_seconds: number; fisher_cpu_seconds: number; eval_cpu_seconds: number; threads: number; torch: string };
    say(`pytorch  fisher (expected): ${res.fisher_seconds.toFixed(2)} s wall, ${(tokens / res.fisher_seconds).toFixed(0)} tokens/s; ${res.fisher_cpu_seconds.toFixed(2)} s CPU (torch ${res.torch}, ${res.threads} threads)`);
    say(`pytorch  eval (forward only): ${res.eval_seconds.toFixed(2)} s wall, ${(tokens / res.eval_seconds).toFixed(0)} tokens/s; ${res.eval_cpu_seconds.toFixed(2)} s CPU`);
    say(`ratio    fisher: ${(res.fisher_seconds / fisherSeconds).toFixed(2)}x wall, ${(res.fisher_cpu_seconds / fisherCpu).toFixed(2)}x CPU; ` +
      `eval: ${(res.eval_seconds / evalSeconds).toFixed(2)}x wall, ${(res.eval_cpu_seconds / evalCpu).toFixed(2)}x CPU (dfmerge over pytorch, tokens/s)`);
    const tf = SafetensorsFile.open(out);
    let worst = 0, worstName = '';
    for (const [name, v] of rt.tensorViews(fisher)) {
      const ref = tf.toFloat32(name);
      let num = 0, den = 0;
      for (let i = 0; i < ref.length; i++) { num = Math.max(num, Math.abs(v[i]! - ref[i]!)); den = Math.max(den, Math.abs(ref[i]!)); }
      if (num / den > worst) { worst = num / den; worstName = name; }
    }
    tf.close();
    say(`agreement: worst per-tensor max-abs-error / max-abs-value = ${worst.toExponential(2)} (${worstName})${worst <= 1e-4 ? ' (within 1e-4)' : ' (NOT within 1e-4)'}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
