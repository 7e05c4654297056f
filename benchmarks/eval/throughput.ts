/**
 * Evaluation and Fisher throughput at a real model shape (docs/design.md §4):
 * a Llama-3.2-1B-shaped model (hidden 2048, 32 heads / 8 kv heads, head_dim 64,
 * intermediate 8192, vocabulary 128256, tied embeddings, llama3 rope scaling;
 * fewer layers, default 2) with the real Llama 3 tokenizer, random f32 weights.
 *
 *  - eval: `dfmerge eval --scoring sum --delimiter " "` (lm-eval's `acc`) on a
 *    JSONL task, against lm-evaluation-harness's HF backend on the same task file
 *    and model folder (benchmarks/eval/lm_eval_throughput.py), in the same run;
 *    the predictions of both are compared document by document.
 *  - Fisher: dfmerge's expected Fisher on the task's tokenized examples against
 *    a PyTorch per-example, per-choice backward loop on the same tokens
 *    (benchmarks/fisher/torch_fisher.py); the two Fishers are compared tensor by tensor.
 *
 * Tokens/s counts Σ over examples and choices of (prompt + choice) tokens, the
 * same on both sides; model loading is timed apart and excluded.
 *
 *   npm run bench:eval-throughput -- [--layers 2 --examples 4 --threads N --lm-eval-batch 1]
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { loadTask, tokenizeTask } from '../../src/eval/task.js';
import { evaluateTask } from '../../src/eval/accuracy.js';
import { computeFisher, exampleTokens } from '../../src/fisher/fisher.js';
import { loadAddon } from '../../src/native/addon.js';
import { Rng } from '../../src/util/rng.js';
import { numberFlag } from '../support/args.js';
import { ROOT, asJson, pythonWithTorch, writeRandomLlama } from '../support/random_llama.js';

const layers = numberFlag('layers', 2), nEx = numberFlag('examples', 4), threads = numberFlag('threads', 0);
const lmEvalBatch = numberFlag('lm-eval-batch', 1);

/** Llama-3.2-1B's config.json fields, but for the layer count. */
const LLAMA_32_1B = {
  hidden_size: 2048, intermediate_size: 8192, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64,
  vocab_size: 128256, tie_word_embeddings: true, rope_theta: 500000, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
  rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  bos_token_id: 128000, eos_token_id: 128001,
};

const WORDS = ('river mountain bright quietly answer garden window yellow seven history planet orange library ' +
  'whisper ancient market silver button thunder pencil island morning stranger kitchen bicycle forest ' +
  'engine candle winter harbor puzzle lantern meadow copper signal velvet').split(' ');

/** Questions of 20-40 words and 4 choices of 1-4 words, seeded. */
function writeTask(file: string, n: number): void {
  const rng = new Rng(7);
  const words = (k: number) => Array.from({ length: k }, () => WORDS[rng.int(WORDS.length)]!).join(' ');
  const lines = Array.from({ length: n }, () => JSON.stringify({
    prompt: `Question: ${words(20 + rng.int(21))}?\nAnswer:`,
    choices: Array.from({ length: 4 }, () => words(1 + rng.int(4))),
    answer: rng.int(4),
  }));
  writeFileSync(file, lines.join('\n') + '\n');
}

async function main() {
  const { addon } = loadAddon();
  if (threads > 0) addon.setThreads(threads);
  const nThreads = addon.buildInfo().threads;
  const dir = mkdtempSync(join(tmpdir(), 'dfm-bench-eval-'));
  const say = (s: string) => process.stdout.write(s + '\n');
  try {
    const model = join(dir, 'model');
    (await import('node:fs')).mkdirSync(model);
    const tokenizerDir = join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');
    writeRandomLlama(model, { hidden: 2048, intermediate: 8192, layers, heads: 32, kvHeads: 8, vocab: 128256 }, 1, undefined, 0,
      { config: LLAMA_32_1B, tokenizerDir });
    const taskFile = join(dir, 'task.jsonl');
    writeTask(taskFile, nEx);

    let t0 = performance.now();
    const rt = LlamaRuntime.fromCheckpoint(model);
    const task = tokenizeTask(loadTask(taskFile), rt.tokenizer!, rt.config.maxPositions, { delimiter: ' ' });
    const loadSeconds = (performance.now() - t0) / 1000;
    const tokens = task.examples.reduce((a, e) => a + exampleTokens(e), 0);
    say(`model: Llama-3.2-1B shape with ${layers} layers (hidden 2048, 32/8 heads, intermediate 8192, vocab 128256, tied): ${(rt.numParams / 1e6).toFixed(0)} M params, f32`);
    say(`data: ${nEx} examples × 4 choices, ${tokens} tokens (Σ prompt + choice, Llama 3 tokenizer); threads: ${nThreads}; ` +
      `load average ${loadavg()[0]!.toFixed(2)} on ${cpus().length} CPUs before the run`);

    await evaluateTask(rt, { ...task, examples: task.examples.slice(0, 2) }, { scoring: 'sum' });  // warm-up
    const cpu = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;
    t0 = performance.now();
    let c0 = process.cpuUsage();
    const ours = await evaluateTask(rt, task, { scoring: 'sum' });
    const evalSeconds = (performance.now() - t0) / 1000, evalCpu = cpu(process.cpuUsage(c0));
    say(`dfmerge eval:   ${evalSeconds.toFixed(2)} s wall (${(tokens / evalSeconds).toFixed(0)} tokens/s), ${evalCpu.toFixed(2)} s CPU; acc ${ours.accuracy.toFixed(3)}; load ${loadSeconds.toFixed(1)} s (excluded)`);

    const examples = task.examples.map((e) => ({ prompt: e.prompt, choices: e.choices, answer: e.answer, u: 0 }));
    t0 = performance.now();
    c0 = process.cpuUsage();
    const { fisher } = await computeFisher(rt, examples, { mode: 'expected', batch: examples.length });
    const fisherSeconds = (performance.now() - t0) / 1000, fisherCpu = cpu(process.cpuUsage(c0));
    say(`dfmerge Fisher: ${fisherSeconds.toFixed(2)} s wall (${(tokens / fisherSeconds).toFixed(0)} tokens/s), ${fisherCpu.toFixed(2)} s CPU (expected mode)`);

    const py = pythonWithTorch();
    if (!py) {
      say('lm-eval and PyTorch references skipped: no python with torch (set DFMERGE_PYTHON or create .venv)');
      return;
    }
    let hasLmEval = true;
    try { execFileSync(py, ['-c', 'import lm_eval'], { stdio: 'ignore' }); } catch { hasLmEval = false; }
    if (!hasLmEval) say('lm-eval reference skipped: its python has no lm_eval');
    else {
      const r = JSON.parse(execFileSync(py, [join(ROOT, 'benchmarks', 'eval', 'lm_eval_throughput.py'), model, taskFile,
        '--threads', String(nThreads), '--batch-size', String(lmEvalBatch)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 })
        .trim().split('\n').pop()!) as { eval_seconds: number; eval_cpu_seconds: number; load_seconds: number; acc: number; predictions: number[]; threads: number; batch_size: number; torch: string };
      const agree = r.predictions.filter((p, i) => p === ours.predictions[i]).length;
      say(`lm-eval eval:   ${r.eval_seconds.toFixed(2)} s wall (${(tokens / r.eval_seconds).toFixed(0)} tokens/s), ${r.eval_cpu_seconds.toFixed(2)} s CPU; acc ${r.acc.toFixed(3)}; ` +
        `HF backend, batch size ${r.batch_size}, torch ${r.torch}, ${r.threads} threads; load ${r.load_seconds.toFixed(1)} s (excluded)`);
      say(`predictions: ${agree}/${r.predictions.length} documents agree with dfmerge's`);
      say(`ratio eval: ${(r.eval_seconds / evalSeconds).toFixed(2)}x wall, ${(r.eval_cpu_seconds / evalCpu).toFixed(2)}x CPU (dfmerge tokens/s over lm-eval's; goal ≥ 3x)`);
    }

    const exFile = join(dir, 'examples.json');
    writeFileSync(exFile, JSON.stringify(examples.map(asJson)));
    const out = join(dir, 'torch_fisher.safetensors');
    const t = JSON.parse(execFileSync(py, [join(ROOT, 'benchmarks', 'fisher', 'torch_fisher.py'), model, exFile, out, '--threads', String(nThreads), '--skip-eval'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!) as { fisher_seconds: number; fisher_cpu_seconds: number; threads: number };
    say(`PyTorch Fisher: ${t.fisher_seconds.toFixed(2)} s wall (${(tokens / t.fisher_seconds).toFixed(0)} tokens/s), ${t.fisher_cpu_seconds.toFixed(2)} s CPU (per-example, per-choice backward, ${t.threads} threads)`);
    say(`ratio Fisher: ${(t.fisher_seconds / fisherSeconds).toFixed(2)}x wall, ${(t.fisher_cpu_seconds / fisherCpu).toFixed(2)}x CPU (dfmerge over PyTorch; goal ≥ 3x)`);
    const tf = SafetensorsFile.open(out);
    let worst = 0, worstName = '';
    for (const [name, v] of rt.tensorViews(fisher)) {
      if (!tf.has(name)) continue;  // tied: PyTorch has one tensor for embedding and head
      const ref = tf.toFloat32(name);
      let num = 0, den = 0;
      for (let i = 0; i < ref.length; i++) { num = Math.max(num, Math.abs(v[i]! - ref[i]!)); den = Math.max(den, Math.abs(ref[i]!)); }
      if (num / den > worst) { worst = num / den; worstName = name; }
    }
    tf.close();
    say(`Fisher agreement: worst per-tensor max-abs-error / max-abs-value = ${worst.toExponential(2)} (${worstName})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
