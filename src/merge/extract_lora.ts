/**
 * `dfmerge extract-lora`: from a fine-tuned model and its base, a rank-r LoRA
 * adapter (peft layout) by truncated SVD of each task vector τ = θ − θ_b of the
 * targeted matrices: τ ≈ U_r S_r V_rᵀ, B = U_r √S_r, A = √S_r V_rᵀ, α = r (s = 1).
 * Tensors are read and decomposed one at a time; other tensors that differ from
 * the base cannot be expressed as LoRA factors and are counted in the report.
 */
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { isComputeDtype } from '../io/dtypes.js';
import { CheckpointWriter, writeFileAtomic } from '../io/writer.js';
import { checkSameArchitecture } from './plan.js';
import { truncatedSvd } from './svd.js';

export interface ExtractLoraOptions {
  readonly base: string;
  readonly model: string;
  readonly out: string;
  readonly rank: number;
  /** Module leaf names to extract (default: every 2-D float tensor ending in .weight except embeddings and lm_head). */
  readonly targets?: readonly string[];
  readonly force?: boolean;
}

export interface ExtractLoraResult {
  readonly modules: number;
  /** Tensors that differ from the base but are not LoRA targets (their change is lost). */
  readonly untouched: readonly string[];
  /** Σ‖τ − B A‖² / Σ‖τ‖² over the targeted tensors. */
  readonly relativeError: number;
}

const EXCLUDED = /embed|lm_head|wte|wpe/;

export function extractLora(o: ExtractLoraOptions): ExtractLoraResult {
  if (!Number.isInteger(o.rank) || o.rank < 1) throw new UsageError(`--rank must be a positive integer, got ${o.rank}`);
  const out = resolve(o.out);
  if (existsSync(out) && readdirSync(out).length > 0 && !o.force) throw new UsageError(`output folder ${out} is not empty; pass --force to overwrite it`);
  const base = Checkpoint.open(o.base);
  const model = Checkpoint.open(o.model);
  try {
    checkSameArchitecture(base, model);
    const leaf = (name: string) => name.slice(0, -'.weight'.length).split('.').pop()!;
    const picked = base.names.filter((n) => {
      const info = base.locate(n).info;
      if (!n.endsWith('.weight') || info.shape.length !== 2 || !isComputeDtype(info.dtype)) return false;
      return o.targets ? o.targets.includes(leaf(n)) : !EXCLUDED.test(n);
    });
    if (picked.length === 0) throw new UsageError(`no tensor of ${base.path} matches the targets ${o.targets?.join(', ') ?? '(2-D weights)'}`);
    const factors: { name: string; a: Float32Array; b: Float32Array; rank: number; shape: [number, number] }[] = [];
    let err = 0;
    let total = 0;
    for (const n of picked) {
      const [m, k] = base.locate(n).info.shape as [number, number];
      const tb = base.locate(n).file.toFloat32(n);
      const tm = model.locate(n).file.toFloat32(n);
      const tau = new Float32Array(tb.length);
      for (let i = 0; i < tau.length; i += 1) tau[i] = tm[i]! - tb[i]!;
      const svd = truncatedSvd(tau, m, k, o.rank);
      const r = svd.rank;
      const b = new Float32Array(m * r);
      const a = new Float32Array(r * k);
      for (let j = 0; j < r; j += 1) {
        const root = Math.sqrt(svd.s[j]!);
        for (let i = 0; i < m; i += 1) b[i * r + j] = svd.u[i * r + j]! * root;
        for (let l = 0; l < k; l += 1) a[j * k + l] = svd.vt[j * k + l]! * root;
      }
      let nt = 0;
      for (const x of tau) nt += x * x;
      let ns = 0;
      for (const x of svd.s) ns += x * x;
      total += nt;
      err += Math.max(0, nt - ns);
      factors.push({ name: n, a, b, rank: r, shape: [m, k] });
    }
    const untouched = base.names.filter((n) => {
      if (picked.includes(n)) return false;
      const x = base.locate(n).file.bytes(n);
      const y = model.locate(n).file.bytes(n);
      return x.length !== y.length || x.some((v, i) => v !== y[i]);
    });
    mkdirSync(out, { recursive: true });
    const key = (n: string, f: 'lora_A' | 'lora_B') => `base_model.model.${n.slice(0, -'.weight'.length)}.${f}.weight`;
    const specs = factors.flatMap((f) => [
      { name: key(f.name, 'lora_A'), dtype: 'F32', shape: [f.rank, f.shape[1]] },
      { name: key(f.name, 'lora_B'), dtype: 'F32', shape: [f.shape[0], f.rank] },
    ]);
    const writer = new CheckpointWriter(out, specs, { metadata: { format: 'pt', extracted_by: 'dfmerge' }, shardSize: Number.MAX_SAFE_INTEGER });
    for (const f of factors) {
      writer.write(key(f.name, 'lora_A'), f.a);
      writer.write(key(f.name, 'lora_B'), f.b);
    }
    const files = writer.finish();
    // peft reads adapter_model.safetensors
    const written = join(out, files[0]!);
    const target = join(out, 'adapter_model.safetensors');
    if (written !== target) renameSync(written, target);
    const ranks = new Map<string, number>();
    for (const f of factors) if (f.rank !== o.rank) ranks.set(f.name.slice(0, -'.weight'.length), f.rank);
    writeFileAtomic(join(out, 'adapter_config.json'), JSON.stringify({
      peft_type: 'LORA', task_type: null, base_model_name_or_path: resolve(o.base), r: o.rank, lora_alpha: o.rank,
      target_modules: [...new Set(factors.map((f) => leaf(f.name)))], rank_pattern: Object.fromEntries(ranks),
      alpha_pattern: Object.fromEntries([...ranks].map(([k, r]) => [k, r])), lora_dropout: 0, bias: 'none', fan_in_fan_out: false,
      use_rslora: false, use_dora: false, modules_to_save: null, inference_mode: true, init_lora_weights: true,
    }, null, 2) + '\n');
    return { modules: factors.length, untouched, relativeError: total > 0 ? err / total : 0 };
  } finally {
    base.close();
    model.close();
  }
}

