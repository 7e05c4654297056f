/** `dfmerge merge`: the classic methods, from flags or a mergekit-style YAML file. */
import { Command, Option } from 'commander';
import { UsageError } from '../errors.js';
import { loadConfigFile, parseDtype, parseMethod, validateConfig, METHODS, type MergeConfig, type ModelEntry, type ParamValue } from '../merge/config.js';
import { runMerge } from '../merge/run.js';
import { formatBytes, parseByteSize } from '../util/format.js';
import { collect, int, num, threads as threadsArg } from './args.js';

interface MergeFlags {
  config?: string;
  base?: string;
  model: string[];
  method?: string;
  weight: string[];
  density?: string;
  drop?: string;
  normalize?: boolean;
  fisher: string[];
  fisherFloor?: string;
  normalizeFisher?: boolean;
  dtype?: string;
  shardSize: string;
  threads?: string;
  device: 'cpu' | 'cuda';
  seed: string;
  out?: string;
  force?: boolean;
  quiet?: boolean;
}

/** Builds a MergeConfig from flags (when no --config file is given). */
export function configFromFlags(f: MergeFlags): MergeConfig {
  if (f.model.length === 0) throw new UsageError('give the models to merge with --model DIR (repeat it), or a --config file');
  if (f.weight.length > 1 && f.weight.length !== f.model.length) {
    throw new UsageError(`--weight was given ${f.weight.length} times for ${f.model.length} models: give one weight per model (in order) or one for all`);
  }
  if (f.fisher.length > 0 && f.fisher.length !== f.model.length) {
    throw new UsageError(`--fisher was given ${f.fisher.length} times for ${f.model.length} models: give one Fisher file per model, in order`);
  }
  if (f.density !== undefined && f.drop !== undefined) throw new UsageError('give either --density (fraction kept) or --drop (fraction dropped), not both');
  const method = parseMethod(f.method ?? 'linear');
  const models: ModelEntry[] = f.model.map((path, i) => {
    const w = f.weight.length === 0 ? undefined : f.weight[f.weight.length === 1 ? 0 : i]!;
    const parameters: Record<string, ParamValue> = w === undefined ? {} : { weight: num('--weight', w) };
    return {
      path,
      parameters,
      ...(f.fisher[i] !== undefined ? { fisher: f.fisher[i] } : {}),
    };
  });
  const parameters: Record<string, ParamValue> = {};
  if (f.density !== undefined) parameters.density = num('--density', f.density);
  if (f.drop !== undefined) parameters.density = 1 - num('--drop', f.drop);
  if (f.normalize !== undefined) parameters.normalize = f.normalize;
  if (f.fisherFloor !== undefined) parameters.fisher_floor = num('--fisher-floor', f.fisherFloor);
  if (f.normalizeFisher !== undefined) parameters.normalize_fisher = f.normalizeFisher;
  return validateConfig({
    method,
    ...(f.base !== undefined ? { base: f.base } : {}),
    models,
    parameters,
    ...(f.dtype !== undefined ? { dtype: parseDtype(f.dtype) } : {}),
    seed: int('--seed', f.seed, 0),
  });
}

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('merge checkpoints with linear, task arithmetic, TIES, DARE or Fisher merging, streaming tensor by tensor')
    .option('-c, --config <file>', 'mergekit-style YAML config (merge_method, base_model, models, parameters, dtype)')
    .option('--base <dir>', 'the pre-trained model the fine-tuned models started from (task vectors are model − base)')
    .option('-m, --model <dir>', 'a fine-tuned model folder (repeat for each model)', collect, [])
    .addOption(new Option('--method <name>', 'merge method').choices([...METHODS, 'dare']))
    .option('-w, --weight <x>', 'per-model weight / λ (repeat once per model, in order, or once for all)', collect, [])
    .option('--density <x>', 'TIES/DARE: fraction of each task vector kept (0..1)')
    .option('--drop <p>', 'DARE: drop probability p (= 1 − density)')
    .option('--normalize', 'divide by the sum of weights (linear, TIES default)')
    .option('--no-normalize', 'do not divide by the sum of weights')
    .option('-f, --fisher <file>', 'Fisher merging: a Fisher .safetensors per model, in model order (from `dfmerge fisher`)', collect, [])
    .option('--fisher-floor <x>', 'Fisher merging: lower bound applied to every Fisher value (default 1e-6)')
    .option('--normalize-fisher', 'Fisher merging: scale each model\'s Fisher to unit L2 norm first')
    .option('--dtype <dtype>', 'output dtype for float tensors: bfloat16, float16, float32 (default: as the base)')
    .option('--shard-size <size>', 'maximum output shard size, e.g. 5GB, 500MB', '5GB')
    .option('-t, --threads <n>', 'native threads (default: all cores)')
    .addOption(new Option('--device <device>', 'where the kernels run').choices(['cpu', 'cuda']).default('cpu'))
    .option('--seed <n>', 'seed for DARE\'s random drops', '0')
    .option('-o, --out <dir>', 'output folder (config.json and tokenizer files are copied from the base)')
    .option('--force', 'overwrite a non-empty output folder')
    .option('-q, --quiet', 'no progress output')
    .addHelpText('after', `
Each method, as θ = merged weights, θ_b = base, θ_k = model k, τ_k = θ_k − θ_b:
  linear           θ = Σ w_k θ_k / Σ w_k
  task_arithmetic  θ = θ_b + Σ w_k τ_k
  ties             trim each τ_k to its top --density by magnitude, elect signs, disjoint mean
  dare_linear      drop each τ_k entry with probability --drop, rescale by 1/(1−p), then task arithmetic
  dare_ties        DARE drops, then TIES sign election
  fisher           θ = Σ w_k F_k θ_k / Σ w_k F_k (Matena & Raffel), F_k from --fisher files

Examples:
  dfmerge merge --method task_arithmetic --base ./base -m ./math -m ./code -w 0.5 -o ./merged
  dfmerge merge --method ties --base ./base -m ./a -m ./b --density 0.3 --dtype bfloat16 -o ./merged
  dfmerge merge -c merge.yaml -o ./merged --force`)
    .action(async (flags: MergeFlags) => {
      if (!flags.out) throw new UsageError('give the output folder with --out DIR');
      const config = flags.config ? loadConfigFile(flags.config) : configFromFlags(flags);
      if (flags.config && flags.model.length > 0) throw new UsageError('give the models either in --config or with --model, not both');
      const shardSize = parseByteSize(flags.shardSize);
      if (shardSize === undefined) throw new UsageError(`--shard-size: cannot read "${flags.shardSize}" as a size (e.g. 5GB, 500MB)`);
      const threads = flags.threads === undefined ? undefined : threadsArg(flags.threads);
      const result = await runMerge(config, {
        out: flags.out, force: flags.force === true, shardSize, device: flags.device, quiet: flags.quiet === true,
        ...(threads !== undefined ? { threads } : {}),
      });
      if (!flags.quiet) {
        process.stderr.write(`wrote ${result.files.length} file(s) to ${result.out}: ${formatBytes(result.outputBytes)} in ${result.seconds.toFixed(1)} s ` +
          `(${formatBytes((result.inputBytes + result.outputBytes) / Math.max(result.seconds, 1e-9))}/s read+written)\n`);
      }
    });
}
