/**
 * `dfmerge eval --model DIR --task a.jsonl [--task b.jsonl ...] [--scoring S] [--truncate] [--chat-template] [--json]`:
 * rank-classification accuracy, prompts and choices tokenized as lm-evaluation-harness does.
 */
import type { Command } from 'commander';
import { LlamaRuntime } from '../model/runtime.js';
import { loadTask, tokenizeTask, linesJoinedWithoutSpace } from '../eval/task.js';
import { evaluateTasks } from '../eval/accuracy.js';
import { addPromptFlags, parseScoring, promptOptionsFromFlags, SCORING_HELP, tokenizeOptions } from '../eval/prompt_options.js';
import { UsageError } from '../errors.js';
import { table } from '../util/format.js';
import { progressReporter } from '../util/progress.js';
import { collect, int, num } from './args.js';
import { checkModelFolder, checkTaskFile } from './inputs.js';
import { modelDir } from '../io/hf_cache.js';

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description('accuracy of a model on multiple-choice JSONL tasks (the choice with the highest score wins; mean token log-likelihood by default)')
    .requiredOption('--model <dir>', 'checkpoint folder (config.json, tokenizer.json, safetensors)')
    .option('--task <file>', 'JSONL task {"prompt","choices","answer"} per line; repeat for several tasks', collect, [])
    .option('--base <dir>', 'evaluate the scaled model base + scale·(model − base)')
    .option('--scale <lambda>', 'λ for --base (default 1)', (v) => num('--scale', v))
    .option('--limit <n>', 'only the first n examples of each task', (v) => int('--limit', v, 1))
    .option('--scoring <s>', SCORING_HELP, 'mean');
  addPromptFlags(cmd)
    .option('--json', 'print results as JSON')
    .addHelpText('after', '\nExamples:\n  dfmerge eval --model ./my-model --task boolq.jsonl --task piqa.jsonl\n  dfmerge eval --model ./my-model --task piqa.jsonl --scoring char-norm   # lm-eval acc_norm\n  dfmerge eval --model ./ft --base ./pre --scale 0.5 --task t.jsonl --json')
    .action(async (opts: { model: string; task: string[]; base?: string; scale?: number; limit?: number; json?: boolean;
      scoring: string; delimiter?: string; truncate?: boolean; chatTemplate?: boolean }) => {
      const scoring = parseScoring(opts.scoring);
      if (opts.task.length === 0) throw new UsageError('give at least one --task file');
      if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit > 0)) throw new UsageError('--limit must be a positive integer');
      if (opts.scale !== undefined && opts.base === undefined) throw new UsageError('--scale needs --base');
      if (opts.scale !== undefined && !Number.isFinite(opts.scale)) throw new UsageError('--scale must be a number (λ)');
      opts.model = modelDir(opts.model, '--model');
      if (opts.base !== undefined) opts.base = modelDir(opts.base, '--base');
      checkModelFolder(opts.model, '--model');
      if (opts.base !== undefined) checkModelFolder(opts.base, '--base');
      for (const f of opts.task) checkTaskFile(f);
      const t0 = performance.now();
      const rt = LlamaRuntime.fromCheckpoint(opts.model, { base: opts.base, scale: opts.scale });
      const tokenize = tokenizeOptions(promptOptionsFromFlags(opts), rt.tokenizer!);
      const tasks = opts.task.map((f) => {
        const t = loadTask(f);
        if (opts.limit !== undefined) t.examples = t.examples.slice(0, opts.limit);
        const joined = tokenize.delimiter === '' && !tokenize.chatTemplate ? linesJoinedWithoutSpace(t) : [];
        if (joined.length > 0) {
          process.stderr.write(`warning: ${f}: ${joined.length} of ${t.examples.length} examples join prompt and choice with no whitespace (first: line ${joined[0]}); ` +
            'with --delimiter "" they are scored as one run of text (the default " " puts a space between them as lm-eval\'s target_delimiter does)\n');
        }
        return tokenizeTask(t, rt.tokenizer!, rt.config.maxPositions, tokenize);
      });
      const progress = progressReporter('eval');
      const res = await evaluateTasks(rt, tasks, { scoring, onProgress: (task, done, total) => progress.update(done, total) });
      progress.end();
      const seconds = (performance.now() - t0) / 1000;
      if (opts.json) {
        process.stdout.write(JSON.stringify({ model: opts.model, ...res, seconds }, null, 2) + '\n');
        return;
      }
      const rows = [['task', 'examples', 'correct', 'accuracy'],
        ...res.tasks.map((r) => [r.task, String(r.examples), String(r.correct), (100 * r.accuracy).toFixed(2) + '%']),
        ['mean', '', '', (100 * res.meanAccuracy).toFixed(2) + '%']];
      process.stdout.write(table(rows, new Set([1, 2, 3])) + '\n');
      process.stderr.write(`${seconds.toFixed(1)} s\n`);
    });
}
