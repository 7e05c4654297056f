/**
 * PEFT LoRA adapters as models: a folder with adapter_config.json and
 * adapter_model.safetensors stands for θ_i = θ_pre + s·B·A (Hu et al. 2021),
 * s = α/r (α/√r with use_rslora; r and α per module from rank_pattern and
 * alpha_pattern), formed one tensor at a time when the merge plan reaches it,
 * never as a dense copy of the model. modules_to_save tensors replace the base's;
 * every other tensor is the base's own (zero-copy). The base is the merge's
 * base_model: the model the adapter was trained on.
 */
import { existsSync } from 'node:fs';
import { readJsonObjectFile } from '../io/read_file.js';
import { join, resolve } from 'node:path';
import { CheckpointError } from '../errors.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { refusePytorchFile } from '../io/pytorch_weights.js';
import type { TensorInput } from './kernels.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
const PREFIX = 'base_model.model.';

interface LoraModule {
  readonly a: string;
  readonly b: string;
  readonly rank: number;
  readonly scale: number;
  /** Embedding LoRA and fan_in_fan_out layers store the update transposed. */
  readonly transpose: boolean;
}

/** peft's pattern lookup: the first key k with module name matching (.*\.)?k$. */
function patternValue(patterns: ReadonlyMap<string, number>, module: string, fallback: number): number {
  for (const [k, v] of patterns) if (new RegExp(`(.*\\.)?(${k})$`).test(module)) return v;
  return fallback;
}

function numberMap(v: unknown, what: string, path: string): Map<string, number> {
  const out = new Map<string, number>();
  if (v === undefined || v === null) return out;
  if (typeof v !== 'object' || Array.isArray(v)) throw new CheckpointError(path, 'BadAdapter', `${what} must be a mapping of module patterns to numbers`);
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x !== 'number' || !(x > 0)) throw new CheckpointError(path, 'BadAdapter', `${what}.${k} must be a positive number`);
    out.set(k, x);
  }
  return out;
}

export class LoraAdapter {
  readonly path: string;
  readonly dir: string;
  readonly base: Checkpoint;
  private readonly file: SafetensorsFile;
  /** Base tensor name → its LoRA update. */
  private readonly modules = new Map<string, LoraModule>();
  /** Base tensor name → adapter tensor replacing it (modules_to_save). */
  private readonly replaced = new Map<string, string>();

  /** The safetensors files this adapter reads (its own and its base's), e.g. to check them unchanged. */
  get files(): readonly SafetensorsFile[] {
    return [this.file, ...this.base.files];
  }

  static isAdapter(dir: string): boolean {
    return existsSync(join(dir, ADAPTER_CONFIG));
  }

  static open(dir: string, base: Checkpoint | undefined): LoraAdapter {
    const path = resolve(dir);
    if (!base) throw new CheckpointError(path, 'AdapterNeedsBase', 'is a LoRA adapter: give the model it was trained on as base_model (--base)');
    return new LoraAdapter(path, base);
  }

  private constructor(dir: string, base: Checkpoint) {
    this.path = dir;
    this.dir = dir;
    this.base = base;
    const cfgPath = join(dir, ADAPTER_CONFIG);
    let cfg: Record<string, unknown>;
    try {
      cfg = readJsonObjectFile(cfgPath, 'adapter_config.json');  // a regular file only: a FIFO would block
    } catch (e) {
      throw new CheckpointError(cfgPath, 'BadAdapter', `cannot read the adapter config (${e instanceof Error ? e.message : String(e)})`);
    }
    const bad = (msg: string): never => { throw new CheckpointError(cfgPath, 'BadAdapter', msg); };
    if (cfg.peft_type !== undefined && cfg.peft_type !== 'LORA') bad(`peft_type ${JSON.stringify(cfg.peft_type)} is not supported (LoRA adapters only)`);
    if (cfg.use_dora === true) bad('DoRA adapters (use_dora) are not supported');
    if (cfg.lora_bias === true) bad('lora_bias adapters are not supported');
    if (cfg.layer_replication !== undefined && cfg.layer_replication !== null) bad('layer_replication is not supported');
    const r = typeof cfg.r === 'number' && cfg.r > 0 ? cfg.r : bad('r must be a positive number');
    const alpha = cfg.lora_alpha === undefined ? r : typeof cfg.lora_alpha === 'number' ? cfg.lora_alpha : bad('lora_alpha must be a number');
    const rslora = cfg.use_rslora === true;
    const fanInFanOut = cfg.fan_in_fan_out === true;
    const ranks = numberMap(cfg.rank_pattern, 'rank_pattern', cfgPath);
    const alphas = numberMap(cfg.alpha_pattern, 'alpha_pattern', cfgPath);
    const targets = cfg.target_modules;
    const targeted = (module: string): boolean => {
      if (targets === undefined || targets === null) return true;
      if (typeof targets === 'string') return new RegExp(`^(?:${targets})$`).test(module);
      if (Array.isArray(targets)) return targets.some((t) => t === 'all-linear' || module === t || module.endsWith(`.${String(t)}`));
      return bad('target_modules must be a list or a regular expression');
    };
    const weights = join(dir, ADAPTER_WEIGHTS);
    if (!existsSync(weights)) {
      if (existsSync(join(dir, 'adapter_model.bin'))) refusePytorchFile(join(dir, 'adapter_model.bin'));
      throw new CheckpointError(dir, 'BadAdapter', `has ${ADAPTER_CONFIG} but no ${ADAPTER_WEIGHTS}`);
    }
    this.file = SafetensorsFile.open(weights);
    try {
      const found = new Map<string, { a?: string; b?: string; embedding: boolean }>();
      for (const t of this.file.tensors) {
        const key = t.name.startsWith(PREFIX) ? t.name.slice(PREFIX.length) : t.name;
        const m = /^(.*)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?$/.exec(key);
        if (m) {
          const e = found.get(m[1]!) ?? { embedding: m[2]!.startsWith('lora_embedding') };
          if (m[2]!.endsWith('A')) e.a = t.name;
          else e.b = t.name;
          found.set(m[1]!, e);
        } else if (base.has(key)) {
          this.replaced.set(key, t.name);
        } else {
          throw new CheckpointError(weights, 'BadAdapter', `tensor "${t.name}" is neither a LoRA factor nor a tensor of the base model ${base.path}`);
        }
      }
      for (const [module, e] of found) {
        if (!e.a || !e.b) throw new CheckpointError(weights, 'BadAdapter', `module ${module} has only one of its LoRA factors`);
        if (!targeted(module)) throw new CheckpointError(weights, 'BadAdapter', `module ${module} has LoRA factors but is not in target_modules`);
        const target = `${module}.weight`;
        if (!base.has(target)) throw new CheckpointError(weights, 'BadAdapter', `module ${module}: the base model ${base.path} has no tensor "${target}"`);
        const shape = base.locate(target).info.shape;
        const sa = this.file.info(e.a).shape;
        const sb = this.file.info(e.b).shape;
        const rank = patternValue(ranks, module, r);
        const a = patternValue(alphas, module, alpha);
        const transpose = e.embedding || fanInFanOut;
        // W [out, in] += s · B [out, r] · A [r, in]; embeddings (and fan_in_fan_out) store W [in, out] += s (B A)ᵀ
        const [rows, cols] = transpose ? [shape[1], shape[0]] : [shape[0], shape[1]];
        const ok = shape.length === 2 && sa.length === 2 && sb.length === 2 && sa[0] === rank && sb[1] === rank && sb[0] === rows && sa[1] === cols;
        if (!ok) {
          throw new CheckpointError(weights, 'BadAdapter', `module ${module}: A [${sa.join(', ')}] and B [${sb.join(', ')}] do not make a rank-${rank} update of [${shape.join(', ')}]`);
        }
        this.modules.set(target, { a: e.a, b: e.b, rank, scale: rslora ? a / Math.sqrt(rank) : a / rank, transpose });
      }
    } catch (e) {
      this.file.close();
      throw e;
    }
  }

  get names(): readonly string[] {
    return this.base.names;
  }

  has(name: string): boolean {
    return this.base.has(name);
  }

  locate(name: string): { info: { readonly dtype: string; readonly shape: readonly number[] } } {
    const rep = this.replaced.get(name);
    return { info: rep ? this.file.info(rep) : this.base.locate(name).info };
  }

  /** θ_i's tensor: the base's, the adapter's replacement, or base + s·B·A (f32, formed now). */
  tensor(name: string): TensorInput {
    const rep = this.replaced.get(name);
    const lora = this.modules.get(name);
    const src = rep ? { file: this.file, name: rep } : { file: this.base.locate(name).file, name };
    const info = src.file.info(src.name);
    if (!lora) return { data: src.file.bytes(src.name), dtype: info.dtype as TensorInput['dtype'] };
    const w = src.file.toFloat32(src.name);
    const a = this.file.toFloat32(lora.a);
    const b = this.file.toFloat32(lora.b);
    const shape = info.shape;
    const r = lora.rank;
    // B·A, with B [rows, r] and A [r, cols]; stored at [i, j] or, transposed, at [j, i]
    const rows = b.length / r;
    const cols = a.length / r;
    const acc = new Float64Array(cols);
    for (let i = 0; i < rows; i += 1) {
      acc.fill(0);
      for (let q = 0; q < r; q += 1) {
        const bq = b[i * r + q]!;
        if (bq === 0) continue;
        const off = q * cols;
        for (let j = 0; j < cols; j += 1) acc[j] += bq * a[off + j]!;
      }
      if (lora.transpose) {
        for (let j = 0; j < cols; j += 1) w[j * shape[1]! + i] += lora.scale * acc[j]!;
      } else {
        const off = i * cols;
        for (let j = 0; j < cols; j += 1) w[off + j] += lora.scale * acc[j]!;
      }
    }
    return { data: w, dtype: 'F32' };
  }

  close(): void {
    this.file.close();
  }
}
