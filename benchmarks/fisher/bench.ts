/**
 * Fisher benchmark (DESIGN.md §4): tokens per second of dfmerge's native Fisher
 * (per-example, per-choice backward passes, expected mode) against a PyTorch
 * loop doing the same backward passes on the same model and tokenized examples
 * (benchmarks/fisher/torch_fisher.py, run when /work/main/.venv/bin/python or
 * $DFMERGE_PYTHON has torch), plus forward-only scoring throughput; the ratio
 * and the agreement of the two Fishers (max-abs-error / max-abs-value per
 * tensor) are measured in the same run.
 *
 *   node dist/benchmarks/fisher/bench.js [--hidden 512 --layers 4 --vocab 8000 --examples 30 --threads N]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointWriter } from '../../src/io/writer.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { computeFisher, exampleTokens, type FisherExample } from '../../src/fisher/fisher.js';
import { loadAddon } from '../../src/native/addon.js';
import { Rng } from '../../src/util/rng.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function arg(name: string, def: number): number {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const hidden = arg('hidden', 512), layers = arg('layers', 4), vocab = arg('vocab', 8000), nEx = arg('examples', 30);
const heads = arg('heads', 8), kvHeads = arg('kv-heads', 4), inter = arg('intermediate', Math.round((hidden * 8) / 3 / 64) * 64);
const threads = arg('threads', 0);

function pythonWithTorch(): string | undefined {
  for (const p of [process.env.DFMERGE_PYTHON, '/work/main/.venv/bin/python'].filter(Boolean) as string[]) {
    try {
      execFileSync(p, ['-c', 'import torch, transformers, safetensors'], { stdio: 'ignore' });
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

async function main() {
  const { addon } = loadAddon();
  if (threads > 0) addon.setThreads(threads);
  const nThreads = addon.buildInfo().threads;
  const dir = mkdtempSync(join(tmpdir(), 'dfm-bench-fisher-'));
  try {
    // A random Llama (GQA, untied) written as an HF folder.
    const config = {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: hidden, intermediate_size: inter,
      num_attention_heads: heads, num_key_value_heads: kvHeads, num_hidden_layers: layers, vocab_size: vocab,
      max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
      hidden_act: 'silu', attention_bias: false, torch_dtype: 'float32', bos_token_id: 1, eos_token_id: 2,
    };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
    copyFileSync(join(ROOT, 'test', 'fixtures', 'llama', 'gqa', 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const rng = new Rng(1);
    // Parameter list from a weightless runtime (the native layout defines the names).
    const { parseModelConfig } = await import('../../src/model/config.js');
    const cfg = parseModelConfig(config);
    const probe = LlamaRuntime.fromWeights(cfg, (name, shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
    const w = new CheckpointWriter(dir, probe.params.map((p) => ({ name: p.name, dtype: 'F32', shape: p.shape })));
    for (const p of probe.params) {
      const t = new Float32Array(p.numel);
      if (p.name.endsWith('norm.weight')) t.fill(1);
      else { const s = 2 / Math.sqrt(p.shape[p.shape.length - 1]!); for (let i = 0; i < t.length; i++) t[i] = (rng.next() - 0.5) * s; }
      w.write(p.name, t);
    }
    w.finish();
    // Tokenized examples: prompt 24..48 tokens (BOS first), 2..4 choices of 1..8 tokens.
    const examples: FisherExample[] = [];
    for (let n = 0; n < nEx; n++) {
      const P = 24 + rng.int(25);
      const prompt = Int32Array.from({ length: P }, (_, i) => (i === 0 ? 1 : 3 + rng.int(vocab - 3)));
      const K = 2 + rng.int(3);
      const choices = Array.from({ length: K }, () => Int32Array.from({ length: 1 + rng.int(8) }, () => 3 + rng.int(vocab - 3)));
      examples.push({ prompt, choices, answer: rng.int(K), u: 0 });
    }
    writeFileSync(join(dir, 'examples.json'), JSON.stringify(examples.map((e) => ({
      prompt: [...e.prompt], choices: e.choices.map((c) => [...c]), answer: e.answer }))));
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
