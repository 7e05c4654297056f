/** `dfmerge fisher`: the diagonal Fisher of a (scaled) model on a task, as a safetensors file. */
import type { Command } from 'commander';
import { LlamaRuntime } from '../model/runtime.js';
import { loadTask, tokenizeTask } from '../eval/task.js';
import { computeFisher, drawFisherExamples, writeFisher, FISHER_MODES, type FisherMode } from '../fisher/fisher.js';
import { UsageError } from '../errors.js';
import { progressReporter } from '../util/progress.js';
import { assertOutputFileNotInput } from '../io/paths.js';
import { int, num } from './args.js';
import { checkModelFolder, checkTaskFile } from './inputs.js';
import { addPromptFlags, promptOptionsFromFlags, tokenizeOptions } from '../eval/prompt_options.js';
import { modelDir } from '../io/hf_cache.js';

export function registerFisher(program: Command): void {
  const cmd = program
    .command('fisher')
    .description('diagonal Fisher F = (1/N) Σ_n Σ_y p(y|x_n)·(∇ℓ(y|x_n))² + 1e-12 of a model on N task examples')
    .requiredOption('--model <dir>', 'checkpoint folder (config.json, tokenizer.json, safetensors)')
    .requiredOption('--task <file>', 'JSONL task {"prompt","choices","answer"} per line')
    .requiredOption('--out <file>', 'output .safetensors (F32 tensors, HF names); never one of the inputs')
    .option('--force', 'replace --out if it exists')
    .option('--base <dir>', 'compute at the scaled model base + scale·(model − base)')
    .option('--scale <lambda>', 'λ for --base (default 1)', (v) => num('--scale', v))
    .option('--samples <n>', 'number of examples N, drawn with --seed', (v) => int('--samples', v, 1), 30)
    .option('--mode <mode>', `expected (Σ_y p·g², default) | sampled (one y ~ p) | empirical (gold y)`, 'expected')
    .option('--seed <n>', 'seed for drawing examples (and y in sampled mode)', (v) => int('--seed', v, 0), 0);
  // the prompts as `dfmerge eval` and `optimize` build them (ℓ is always the mean token log-likelihood here, docs/design.md §1)
  addPromptFlags(cmd)
    .addHelpText('after', '\nExample:\n  dfmerge fisher --model ./ft --base ./pre --scale 0.7 --task t.jsonl --samples 30 --mode expected --seed 0 --out fisher.safetensors')
    .action(async (opts: { model: string; task: string; out: string; force?: boolean; base?: string; scale?: number; samples: number; mode: string; seed: number;
      delimiter?: string; truncate?: boolean; chatTemplate?: boolean }) => {
      if (!FISHER_MODES.includes(opts.mode as FisherMode)) throw new UsageError(`--mode must be one of ${FISHER_MODES.join(', ')}, got ${opts.mode}`);
      if (opts.scale !== undefined && opts.base === undefined) throw new UsageError('--scale needs --base');
      if (opts.scale !== undefined && !Number.isFinite(opts.scale)) throw new UsageError('--scale must be a number (λ)');
      if (!Number.isInteger(opts.samples) || opts.samples <= 0) throw new UsageError('--samples must be a positive integer');
      if (!Number.isInteger(opts.seed)) throw new UsageError('--seed must be an integer');
      opts.model = modelDir(opts.model, '--model');
      if (opts.base !== undefined) opts.base = modelDir(opts.base, '--base');
      assertOutputFileNotInput(opts.out, [opts.model, ...(opts.base !== undefined ? [opts.base] : []), opts.task], opts.force === true);
      checkModelFolder(opts.model, '--model');
      if (opts.base !== undefined) checkModelFolder(opts.base, '--base');
      checkTaskFile(opts.task);
      const rt = LlamaRuntime.fromCheckpoint(opts.model, { base: opts.base, scale: opts.scale });
      const tokenize = tokenizeOptions(promptOptionsFromFlags(opts), rt.tokenizer!);
      const task = tokenizeTask(loadTask(opts.task), rt.tokenizer!, rt.config.maxPositions, tokenize);
      const examples = drawFisherExamples(task.examples, opts.samples, opts.seed);
      const progress = progressReporter('fisher examples');
      const { fisher, stats } = await computeFisher(rt, examples, {
        mode: opts.mode as FisherMode, batch: 1, onProgress: (done, total) => progress.update(done, total),
      });
      progress.end();
      writeFisher(rt, fisher, opts.out, {
        dfmerge_fisher_mode: opts.mode, dfmerge_fisher_samples: String(examples.length), dfmerge_fisher_seed: String(opts.seed),
        dfmerge_task: task.name, dfmerge_delimiter: JSON.stringify(tokenize.delimiter ?? ''),
        ...(tokenize.chatTemplate ? { dfmerge_chat_template: 'true' } : {}), ...(tokenize.truncate ? { dfmerge_truncate: 'true' } : {}), ...(opts.base ? { dfmerge_scale: String(opts.scale ?? 1) } : {}),
      });
      process.stderr.write(`fisher: ${examples.length} examples, ${stats.tokens} tokens in ${stats.seconds.toFixed(2)} s ` +
        `(${(stats.tokens / stats.seconds).toFixed(0)} tokens/s) -> ${opts.out}\n`);
    });
}
