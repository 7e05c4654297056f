/** `dfmerge merge`: the classic methods, from flags or a mergekit-style YAML file. */
import { Command, Option } from 'commander';
import { modelDir } from '../io/hf_cache.js';
import { UsageError } from '../errors.js';
import { descriptorOf, loadConfigFile, parseDtype, parseMethod, validateConfig, type MergeConfig, type ModelEntry, type ParamValue } from '../merge/config.js';
import { METHOD_REGISTRY } from '../merge/methods/index.js';
import { runMerge } from '../merge/run.js';
import { extractLora } from '../merge/extract_lora.js';
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
  const takesWeight = descriptorOf({ method, models: [], parameters: {}, seed: 0 }).perModel.weight !== undefined;
  if (!takesWeight && f.weight.length > 0) throw new UsageError(`--weight: method ${method} takes no per-model weight`);
  const models: ModelEntry[] = f.model.map((path, i) => {
    // flags: a model without --weight gets 1 (YAML configs must give it, as in mergekit)
    const w = f.weight.length === 0 ? (takesWeight ? '1' : undefined) : f.weight[f.weight.length === 1 ? 0 : i]!;
    const parameters: Record<string, ParamValue> = w === undefined ? {} : { weight: num('--weight', w) };
    return {
      path: modelDir(path, '--model'),
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
    ...(f.base !== undefined ? { base: modelDir(f.base, '--base') } : {}),
    models,
    parameters,
    ...(f.dtype !== undefined ? { dtype: parseDtype(f.dtype) } : {}),
    seed: int('--seed', f.seed, 0),
  });
}

/** One block per method: its formula and its parameters with defaults. */
function methodHelp(): string {
  const lines: string[] = [];
  for (const m of METHOD_REGISTRY.values()) {
    lines.push(`  ${m.name.padEnd(16)} ${m.formula}`);
    const ps = [...Object.entries(m.global).map(([k, p]) => [k, p] as const), ...Object.entries(m.perModel).map(([k, p]) => [`${k} (per model)`, p] as const)];
    for (const [k, p] of ps) lines.push(`  ${''.padEnd(16)}   ${k}: ${p.help}${p.required ? ' [required]' : p.default !== undefined ? ` [default ${String(p.default)}]` : ''}`);
    if (m.base === 'required') lines.push(`  ${''.padEnd(16)}   needs --base`);
  }
  return lines.join('\n');
}

/** Flags that a -c config replaces: refused with it rather than silently ignored. */
const CONFIG_FLAGS: readonly [keyof MergeFlags, string][] = [
  ['base', '--base'], ['method', '--method'], ['density', '--density'], ['drop', '--drop'], ['normalize', '--normalize/--no-normalize'],
  ['fisherFloor', '--fisher-floor'], ['normalizeFisher', '--normalize-fisher'], ['dtype', '--dtype'],
];

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('merge checkpoints (linear, task arithmetic, TIES, DARE, DELLA, breadcrumbs, SCE, SLERP, NuSLERP, multi-SLERP, Karcher, model stock, nearswap, passthrough, Fisher), streaming tensor by tensor')
    .option('-c, --config <file>', 'mergekit YAML config (merge_method, base_model, models or slices, parameters, dtype, out_dtype, tokenizer_source)')
    .option('--base <dir>', 'the pre-trained model the fine-tuned models started from (task vectors are model − base)')
    .option('-m, --model <dir>', 'a fine-tuned model folder (repeat for each model)', collect, [])
    .option('--method <name>', `merge method: ${[...METHOD_REGISTRY.keys()].join(', ')} (dashes work for underscores)`)
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
Each method, as θ = merged weights, θ_b = base, θ_k = model k, τ_k = θ_k − θ_b
(parameters as in mergekit; give them in a -c config, per model or at the top level):
${methodHelp()}

Examples:
  dfmerge merge --method task_arithmetic --base ./base -m ./math -m ./code -w 0.5 -o ./merged
  dfmerge merge --method ties --base ./base -m ./a -m ./b --density 0.3 --dtype bfloat16 -o ./merged
  dfmerge merge -c merge.yaml -o ./merged --force`)
    .action(async (flags: MergeFlags) => {
      if (!flags.out) throw new UsageError('give the output folder with --out DIR');
      if (flags.config) {
        const given = CONFIG_FLAGS.filter(([k]) => flags[k] !== undefined).map(([, f]) => f);
        if (flags.weight.length > 0) given.push('-w/--weight');
        if (flags.fisher.length > 0) given.push('--fisher');
        if (flags.model.length > 0) throw new UsageError('give the models either in --config or with --model, not both');
        if (given.length > 0) throw new UsageError(`${given.join(', ')}: with -c the config file decides; set ${given.length > 1 ? 'these' : 'this'} in ${flags.config} instead`);
      }
      const config = flags.config ? loadConfigFile(flags.config) : configFromFlags(flags);
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

interface ExtractFlags {
  base?: string;
  model?: string;
  rank: string;
  target: string[];
  out?: string;
  force?: boolean;
  quiet?: boolean;
}

export function registerExtractLora(program: Command): void {
  program
    .command('extract-lora')
    .description('a rank-r LoRA adapter (peft layout) from a fine-tuned model and its base, by truncated SVD of each task vector')
    .option('--base <dir>', 'the pre-trained model')
    .option('-m, --model <dir>', 'the fine-tuned model')
    .option('-r, --rank <r>', 'LoRA rank', '16')
    .option('--target <name>', 'module leaf name to extract, e.g. q_proj (repeat; default: every 2-D weight but embeddings and lm_head)', collect, [])
    .option('-o, --out <dir>', 'output folder (adapter_config.json, adapter_model.safetensors)')
    .option('--force', 'overwrite a non-empty output folder')
    .option('-q, --quiet', 'no summary')
    .addHelpText('after', `
τ = θ − θ_b ≈ U_r S_r V_rᵀ per tensor; B = U_r √S_r, A = √S_r V_rᵀ, lora_alpha = r (scale 1).
The adapter loads with peft (PeftModel.from_pretrained) and merges back with dfmerge merge.

Example:
  dfmerge extract-lora --base ./base -m ./math --rank 32 -o ./math-lora`)
    .action((f: ExtractFlags) => {
      if (!f.base || !f.model || !f.out) throw new UsageError('give --base DIR, --model DIR and --out DIR');
      const r = extractLora({ base: f.base, model: f.model, out: f.out, rank: num('--rank', f.rank), ...(f.target.length ? { targets: f.target } : {}), force: f.force === true });
      if (!f.quiet) {
        process.stderr.write(`wrote ${r.modules} LoRA module(s) to ${f.out}: relative error ‖τ − BA‖²/‖τ‖² = ${r.relativeError.toExponential(3)}` +
          (r.untouched.length ? `; ${r.untouched.length} other tensor(s) differ from the base and are not in the adapter (${r.untouched.slice(0, 3).join(', ')}${r.untouched.length > 3 ? ', …' : ''})` : '') + '\n');
      }
    });
}
