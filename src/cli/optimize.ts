/** `dfmerge optimize`: DF-Merge, λ tuned by Bayesian optimisation over Fisher-weighted merges. */
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { UsageError } from '../errors.js';
import { optimize, OPTIMIZE_DEFAULTS, type OptimizeOptions } from '../dfmerge/optimize.js';
import type { JournalEvaluation } from '../dfmerge/journal.js';
import { markdownTable } from '../dfmerge/report.js';
import type { EvaluationProgress } from '../dfmerge/objective.js';
import { Progress } from '../util/progress.js';
import { parseDtype } from '../merge/config.js';
import { addon } from '../native/addon.js';
import { parseByteSize } from '../util/format.js';
import { atLeast, collect, int, num, threads } from './args.js';
import { modelDir } from '../io/hf_cache.js';
import { CHAT_TEMPLATE_HELP, DELIMITER_HELP, parseScoring, promptOptionsFromFlags, SCORING_HELP, TRUNCATE_HELP } from '../eval/prompt_options.js';
import { LM_EVAL, parseLmEvalTasks, resolvePython } from '../dfmerge/evaluator_lm_eval.js';
import { RESULT_MARKER, evaluateCandidateSpec, readCandidateSpec } from '../dfmerge/candidate.js';

interface Flags {
  base?: string;
  model: string[];
  task: string[];
  testTask: string[];
  fisherTask: string[];
  out?: string;
  journal?: string;
  resume?: boolean;
  force?: boolean;
  initPoints: string;
  iterations: string;
  acquisition: 'ei' | 'ucb';
  xi: string;
  kappa: string;
  kernel: 'ard' | 'isotropic';
  bounds: string;
  fisherSamples: string;
  fisherMode: 'expected' | 'sampled' | 'empirical';
  fisherGrid?: string;
  tunedBaselines?: boolean;
  fisherGridInterpolation: 'linear' | 'log';
  validationFraction: string;
  fisher: boolean;
  seed: string;
  evaluator?: string;
  evaluatorTimeout?: string;
  evaluationTimeout?: string;
  lmEvalTasks?: string;
  lmEvalInclude?: string;
  lmEvalMetric: string;
  lmEvalModelArgs?: string;
  lmEvalDevice?: string;
  lmEvalBatchSize?: string;
  lmEvalLimit?: string;
  lmEvalFewshot?: string;
  python?: string;
  parallel: string;
  executor?: 'local' | 'ray';
  rayAddress?: string;
  jobCpus?: string;
  jobGpus?: string;
  rayRuntimeEnv?: string;
  workerCommand?: string;
  workerThreads?: string;
  scratch?: string;
  dtype?: string;
  shardSize: string;
  threads?: string;
  baselines: boolean;
  json?: boolean;
  quiet?: boolean;
  delimiter?: string;
  truncate?: boolean;
  chatTemplate?: boolean;
  scoring: string;
}

/** A one-line progress display with the best objective so far. */
/** One bar per phase of an evaluation: Fisher examples done / total, then validation examples, with rate and ETA. */
function evaluationProgress(quiet: boolean): EvaluationProgress {
  let bar: Progress | undefined;
  let phase = '';
  let last = 0;
  return (p, done, total, detail) => {
    if (quiet) return;
    if (p !== phase || done < last) {
      bar?.finish();
      bar = new Progress({ label: p === 'fisher' ? '  Fisher    ' : '  validation', total });
      phase = p;
      last = 0;
    }
    bar!.tick(done - last, detail);
    last = done;
    if (done >= total) { bar!.finish(); bar = undefined; phase = ''; }
  };
}

function progressLine(quiet: boolean): (e: JournalEvaluation, best: JournalEvaluation | undefined, total: number) => void {
  const tty = process.stderr.isTTY === true;
  return (e, best, total) => {
    if (quiet) return;
    const filled = Math.round((24 * (e.index + 1)) / total);
    const lam = `[${e.lambda.map((x) => x.toFixed(2)).join(', ')}]`;
    const obj = e.failed ? 'failed' : `${(100 * e.objective!).toFixed(2)}%`;
    const text = `DF-Merge [${'#'.repeat(filled)}${'-'.repeat(24 - filled)}] ${e.index + 1}/${total} ${e.phase} λ=${lam} → ${obj}` +
      ` (fisher ${e.seconds.fisher.toFixed(1)}s, merge ${e.seconds.merge.toFixed(1)}s, eval ${e.seconds.eval.toFixed(1)}s)` +
      ` | best ${best ? (100 * best.objective!).toFixed(2) + '%' : '–'}`;
    process.stderr.write(tty ? `\r\x1b[K${text.slice(0, (process.stderr.columns ?? 160) - 1)}` : text + '\n');
    if (tty && e.index + 1 === total) process.stderr.write('\n');
  };
}

export function optionsFromFlags(f: Flags): OptimizeOptions {
  if (!f.base) throw new UsageError('give the pre-trained model with --base DIR');
  if (f.model.length < 2) throw new UsageError('give at least two fine-tuned models with --model DIR (repeat it)');
  if (!f.out) throw new UsageError('give the output folder with --out DIR');
  const noTasks = f.task.length === 0 && !f.fisher && f.evaluator !== undefined;  // the external evaluator brings its tasks
  if (f.task.length !== f.model.length && !noTasks) throw new UsageError(`${f.model.length} models but ${f.task.length} --task files: give each model's validation task, in the same order (only --no-fisher with an --evaluator may go without)`);
  if (f.evaluator !== LM_EVAL) {
    for (const [flag, v] of [['--lm-eval-tasks', f.lmEvalTasks], ['--lm-eval-include', f.lmEvalInclude], ['--lm-eval-model-args', f.lmEvalModelArgs], ['--lm-eval-limit', f.lmEvalLimit]] as const) {
      if (v !== undefined) throw new UsageError(`${flag} needs --evaluator lm-eval`);
    }
  } else if (f.lmEvalTasks === undefined) {
    throw new UsageError('--evaluator lm-eval needs --lm-eval-tasks: one entry per --model, in order, e.g. --lm-eval-tasks hellaswag,arc_easy (join several tasks of one model with +)');
  }
  let rayRuntimeEnv: Record<string, unknown> | undefined;
  if (f.rayRuntimeEnv !== undefined) {
    try { rayRuntimeEnv = JSON.parse(f.rayRuntimeEnv) as Record<string, unknown>; } catch { rayRuntimeEnv = undefined; }
    if (!rayRuntimeEnv || typeof rayRuntimeEnv !== 'object' || Array.isArray(rayRuntimeEnv)) throw new UsageError(`--ray-runtime-env must be a JSON object, e.g. '{"env_vars": {"DFMERGE_BUILD": "cuda"}}'; got ${f.rayRuntimeEnv}`);
  }
  for (const [flag, list] of [['--test-task', f.testTask], ['--fisher-task', f.fisherTask]] as const) {
    if (list.length > 0 && list.length !== f.model.length) throw new UsageError(`${flag} was given ${list.length} times for ${f.model.length} models: give one per model, in order, or none`);
  }
  const bounds = f.bounds.split(',').map((x) => num('--bounds', x));
  if (bounds.length !== 2) throw new UsageError('--bounds expects "lo,hi", e.g. 0,1');
  const shardSize = parseByteSize(f.shardSize);
  if (shardSize === undefined) throw new UsageError(`--shard-size: cannot read "${f.shardSize}" as a size`);
  return {
    base: modelDir(f.base, '--base'),
    models: f.model.map((m) => modelDir(m, '--model')),
    tasks: f.task.map((validation, i) => ({
      validation,
      ...(f.testTask[i] ? { test: f.testTask[i] } : {}),
      ...(f.fisherTask[i] ? { fisher: f.fisherTask[i] } : {}),
    })),
    out: f.out,
    ...(f.journal ? { journal: f.journal } : {}),
    resume: f.resume === true,
    force: f.force === true,
    initPoints: int('--init-points', f.initPoints, 1),
    iterations: int('--iterations', f.iterations, 0),
    acquisition: f.acquisition,
    xi: atLeast('--xi', f.xi, 0),
    kappa: atLeast('--kappa', f.kappa, 0),
    kernel: f.kernel,
    bounds: [bounds[0]!, bounds[1]!],
    fisherSamples: int('--fisher-samples', f.fisherSamples, 1),
    fisherMode: f.fisherMode,
    ...(f.fisherGrid !== undefined ? { fisherGrid: num('--fisher-grid', f.fisherGrid), fisherGridInterpolation: f.fisherGridInterpolation } : {}),
    validationFraction: num('--validation-fraction', f.validationFraction),
    noFisher: !f.fisher,
    seed: int('--seed', f.seed, 0),
    ...(f.evaluator !== undefined ? { evaluator: f.evaluator } : {}),
    ...(f.evaluatorTimeout !== undefined ? { evaluatorTimeout: atLeast('--evaluator-timeout', f.evaluatorTimeout, 0) } : {}),
    ...(f.evaluationTimeout !== undefined ? { evaluationTimeout: atLeast('--evaluation-timeout', f.evaluationTimeout, 0) } : {}),
    ...(f.evaluator === LM_EVAL ? {
      lmEval: {
        tasks: parseLmEvalTasks(f.lmEvalTasks!, f.model.length), python: resolvePython(f.python), metric: f.lmEvalMetric,
        ...(f.lmEvalInclude ? { includePath: resolve(f.lmEvalInclude) } : {}),
        ...(f.lmEvalModelArgs ? { modelArgs: f.lmEvalModelArgs } : {}),
        ...(f.lmEvalDevice ? { device: f.lmEvalDevice } : {}),
        ...(f.lmEvalBatchSize ? { batchSize: f.lmEvalBatchSize } : {}),
        ...(f.lmEvalLimit !== undefined ? { limit: int('--lm-eval-limit', f.lmEvalLimit, 1) } : {}),
        ...(f.lmEvalFewshot !== undefined ? { numFewshot: int('--lm-eval-fewshot', f.lmEvalFewshot, 0) } : {}),
      },
    } : {}),
    parallel: int('--parallel', f.parallel, 1),
    ...(f.executor ? { executor: f.executor } : {}),
    ...(f.rayAddress ? { rayAddress: f.rayAddress } : {}),
    ...(f.jobCpus !== undefined ? { jobCpus: atLeast('--job-cpus', f.jobCpus, 0) } : {}),
    ...(f.jobGpus !== undefined ? { jobGpus: atLeast('--job-gpus', f.jobGpus, 0) } : {}),
    ...(rayRuntimeEnv ? { rayRuntimeEnv } : {}),
    ...(f.workerCommand ? { workerCommand: f.workerCommand } : {}),
    ...(f.workerThreads !== undefined ? { workerThreads: int('--worker-threads', f.workerThreads, 1) } : {}),
    ...(f.scratch ? { scratch: f.scratch } : {}),
    ...(f.dtype ? { dtype: parseDtype(f.dtype) } : {}),
    shardSize,
    baselines: f.baselines,
    tunedBaselines: f.tunedBaselines === true,
    prompts: promptOptionsFromFlags(f),
    scoring: parseScoring(f.scoring),
  };
}

/** `dfmerge evaluate-candidate SPEC`: what an executor's job runs (one λ from a spec the coordinator wrote). */
function registerEvaluateCandidate(program: Command): void {
  program
    .command('evaluate-candidate')
    .description('evaluate one DF-Merge candidate from a spec written by `dfmerge optimize` (what its local and Ray jobs run): merge there, score, write the result next to the spec')
    .argument('<spec>', 'the candidate spec JSON (on the scratch path)')
    .action(async (specPath: string) => {
      const spec = readCandidateSpec(specPath);
      if (spec.threads !== undefined) addon().setThreads(spec.threads);
      const r = await evaluateCandidateSpec(specPath, (m) => process.stderr.write(m + '\n'));
      process.stdout.write(`${RESULT_MARKER}${JSON.stringify(r)}\n`);
    });
}

export function registerOptimize(program: Command): void {
  registerEvaluateCandidate(program);
  const d = OPTIMIZE_DEFAULTS;
  program
    .command('optimize')
    .description('DF-Merge: tune one coefficient λ_i per fine-tuned model by Bayesian optimisation of validation accuracy, merging with the Fisher information of each scaled model θ_pre + λ_i·τ_i; writes the best merge and a report')
    .option('--base <dir>', 'the pre-trained model θ_pre')
    .option('-m, --model <dir>', 'a fine-tuned model θ_i (repeat, at least two)', collect, [])
    .option('--task <file>', 'validation JSONL of each model\'s task, in model order (the objective)', collect, [])
    .option('--test-task <file>', 'test JSONL per model\'s task, reported but never optimised on', collect, [])
    .option('--fisher-task <file>', 'JSONL to draw Fisher examples from, per task (default: the validation file)', collect, [])
    .option('-o, --out <dir>', 'output folder for the best merge and the report')
    .option('--journal <file>', 'run journal (default: <out>.journal.jsonl)')
    .option('--resume', 'continue an interrupted run from its journal, repeating no finished evaluation')
    .option('--force', 'overwrite a non-empty output folder')
    .option('--init-points <n>', 'random initial evaluations', String(d.initPoints))
    .option('--iterations <n>', 'Bayesian optimisation iterations after them', String(d.iterations))
    .addOption(new Option('--acquisition <kind>', 'acquisition function').choices(['ei', 'ucb']).default(d.acquisition))
    .option('--xi <x>', 'EI exploration margin ξ', String(d.xi))
    .option('--kappa <x>', 'UCB exploration weight κ', String(d.kappa))
    .addOption(new Option('--kernel <kind>', 'GP length scales: one per model (ard) or shared (isotropic, the paper\'s)').choices(['ard', 'isotropic']).default(d.kernel))
    .option('--bounds <lo,hi>', 'search range of every λ_i', `${d.bounds[0]},${d.bounds[1]}`)
    .option('--fisher-samples <n>', 'Fisher examples per task (drawn once with the seed)', String(d.fisherSamples))
    .addOption(new Option('--fisher-mode <mode>', 'expected (true Fisher), sampled, or empirical (gold labels)').choices(['expected', 'sampled', 'empirical']).default(d.fisherMode))
    .option('--fisher-grid <K>', 'reuse Fisher across λ: compute each F_i at K evenly spaced λ once (stored beside the journal, M·K·4 bytes per parameter on disk) and interpolate; default: exact at every evaluation')
    .addOption(new Option('--fisher-grid-interpolation <kind>', 'how F_i(λ) is interpolated between grid points').choices(['linear', 'log']).default('linear'))
    .option('--validation-fraction <x>', 'fraction of each validation set used for the objective (seeded subset)', String(d.validationFraction))
    .option('--no-fisher', 'ablation: task arithmetic with one λ per model tuned by BO (no Fisher weighting)')
    .option('--seed <n>', 'seed of the optimiser, the Fisher sample and the validation subset', String(d.seed))
    .option('--evaluator <cmd>', 'external evaluator: "lm-eval" (lm-evaluation-harness, see --lm-eval-tasks), or a shell command with {dir} (also in $DFMERGE_CANDIDATE_DIR and $1) that prints {"task": score, ...} as JSON on stdout')
    .option('--lm-eval-tasks <list>', 'with --evaluator lm-eval: one entry per --model, in order, comma-separated; several tasks of one model joined with + ("hellaswag+piqa,arc_easy": model 1 scored on hellaswag and piqa, model 2 on arc_easy). A model\'s score is the mean of its tasks\' metric, the objective the mean over models')
    .option('--lm-eval-include <dir>', 'lm-eval --include_path: a folder of local task YAMLs (e.g. a JSONL multiple-choice task)')
    .option('--lm-eval-metric <name>', 'the metric read from each task\'s results (acc reads "acc,none")', 'acc')
    .option('--lm-eval-model-args <args>', 'appended to lm-eval\'s model_args after pretrained=DIR, e.g. dtype=bfloat16')
    .option('--lm-eval-device <dev>', 'lm-eval --device (e.g. cuda:0, cpu)')
    .option('--lm-eval-batch-size <n>', 'lm-eval --batch_size')
    .option('--lm-eval-limit <n>', 'lm-eval --limit: examples per task (faster, noisier objective)')
    .option('--lm-eval-fewshot <n>', 'lm-eval --num_fewshot')
    .option('--python <path>', 'the Python with lm_eval (default: $DFMERGE_PYTHON, else ./.venv/bin/python)')
    .option('--evaluation-timeout <s>', 'seconds before an evaluation is stopped and recorded as failed: the whole job with an executor, the external evaluator in-process (default: no limit)')
    .addOption(new Option('--evaluator-timeout <s>', 'old name of --evaluation-timeout').hideHelp())
    .option('--parallel <q>', 'evaluations in flight at once: batches of q proposed together (kriging believer); q > 1 runs them as jobs of --executor', '1')
    .addOption(new Option('--executor <kind>', 'who runs the evaluations: local (a pool of q child processes; the default when q > 1) or ray (jobs on a Ray cluster); with q = 1 and none named, in this process').choices(['local', 'ray']))
    .option('--ray-address <url>', 'the Ray dashboard of the cluster (Jobs REST API), e.g. http://HEAD:8265')
    .option('--job-cpus <n>', 'CPUs Ray reserves for each job (entrypoint_num_cpus); also the worker\'s native threads')
    .option('--job-gpus <n>', 'GPUs Ray reserves for each job (entrypoint_num_gpus)')
    .option('--ray-runtime-env <json>', 'Ray runtime_env of each job, e.g. \'{"env_vars": {"DFMERGE_BUILD": "cuda"}}\'')
    .option('--worker-command <cmd>', 'shell words that run dfmerge where the jobs run (default: this node and this dfmerge); the job runs "<cmd> evaluate-candidate SPEC"')
    .option('--worker-threads <n>', 'native threads of each job (default: --job-cpus, else cores / q for local jobs)')
    .option('--scratch <dir>', 'a folder the coordinator and every worker see (shared file system): each candidate\'s spec, merge and result go there (default: beside --out)')
    .option('--dtype <dtype>', 'dtype of the saved merge (default: as the base)')
    .option('--shard-size <size>', 'maximum shard size of the saved merge', '5GB')
    .option('-t, --threads <n>', 'native threads (default: all cores)')
    .option('--tuned-baselines', 'also give TIES and DARE this run\'s optimiser and budget over their own hyperparameters (λ per model, density): fair rows, 2× the evaluations')
    .option('--no-baselines', 'skip the comparison rows (base, fine-tuned, task arithmetic, TIES, Fisher merging) in the report')
    .option('--json', 'print the final report as JSON on stdout')
    .option('-q, --quiet', 'no progress output')
    .option('--scoring <s>', `${SCORING_HELP}; the objective's accuracy (the Fisher's ℓ stays the mean)`, 'mean')
    .option('--delimiter <text>', DELIMITER_HELP)
    .option('--truncate', TRUNCATE_HELP)
    .option('--chat-template', CHAT_TEMPLATE_HELP)
    .addHelpText('after', `
Each evaluation: F_i = Fisher of θ_pre + λ_i τ_i on N examples of task i; θ* = θ_pre + M·Σ F_i λ_i τ_i / Σ F_i;
objective = mean validation accuracy of θ* over the tasks. Every evaluation is appended to the journal as it
finishes; after an interruption, run the same command with --resume.

Parallel and cluster runs (docs/design.md §8): --parallel q proposes q λ at a time; each is a job
"dfmerge evaluate-candidate SPEC" that merges and evaluates on the worker from the paths in SPEC (written
under --scratch, which every worker must see, as it must see the models and tasks) and writes its result
there. The journal records each job when it starts and when it ends; --resume dispatches again what was in
flight and repeats no finished evaluation; a run is reproducible for a given --seed and --parallel.

Example:
  dfmerge optimize --base ./base -m ./math -m ./code --task math-val.jsonl --task code-val.jsonl \\
      --test-task math-test.jsonl --test-task code-test.jsonl -o ./merged --init-points 10 --iterations 50
  dfmerge optimize --base ./base -m ./math -m ./code --no-fisher --evaluator lm-eval \\
      --lm-eval-tasks gsm8k,humaneval --parallel 4 --executor ray --ray-address http://head:8265 \\
      --job-gpus 1 --scratch /shared/dfmerge -o ./merged`)
    .action(async (f: Flags) => {
      const options = optionsFromFlags(f);
      if (f.threads !== undefined) addon().setThreads(threads(f.threads));
      const quiet = f.quiet === true;
      const r = await optimize({
        ...options,
        onEvaluation: progressLine(quiet),
        onProgress: evaluationProgress(quiet),
        exitOnInterrupt: true,
        log: (msg) => { if (!quiet) process.stderr.write(msg + '\n'); },
      });
      if (f.json) {
        process.stdout.write(JSON.stringify(r.report, null, 2) + '\n');
        return;
      }
      const rep = r.report;
      process.stdout.write(`\nbest λ = [${rep.best.lambda.map((x) => x.toFixed(3)).join(', ')}], validation objective ${(100 * rep.best.objective).toFixed(2)}%\n\n`);
      process.stdout.write('validation accuracy (%)\n' + markdownTable(rep.tasks, rep.rows, 'validation') + '\n');
      if (rep.rows.some((x) => x.test)) process.stdout.write('\ntest accuracy (%)\n' + markdownTable(rep.tasks, rep.rows, 'test') + '\n');
      process.stdout.write(`\nmerged model: ${r.out}\nreport: ${r.out}/dfmerge-report.md, dfmerge-report.json, dfmerge-objective.svg\njournal: ${r.journal}\n`);
    });
}
