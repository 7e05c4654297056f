/**
 * Fisher reused across λ (`--fisher-grid K`, docs/design.md §6).
 * F_i(λ) depends on λ_i alone, so it is computed once per model at K fixed
 * values g_1 < … < g_K spanning the bounds, stored as safetensors files beside
 * the journal (reused by a resumed run), and each evaluation interpolates
 * elementwise between the two grid points around λ_i:
 *
 *   t = (λ_i − g_k) / (g_{k+1} − g_k)
 *   F_i(λ_i) ≈ (1 − t)·F_i(g_k) + t·F_i(g_{k+1})           (linear)
 *   F_i(λ_i) ≈ F_i(g_k)^(1−t) · F_i(g_{k+1})^t             (log)
 *
 * and folds it into S and W with the merge engine's accumulate kernel, tensor by
 * tensor, so an evaluation costs one streamed merge plus validation.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { SafetensorsWriter } from '../io/writer.js';
import { FISHER_EPS, type FisherExample, type FisherMode } from '../fisher/fisher.js';
import { accumulateFisher as foldIntoAccumulators } from '../merge/kernels.js';
import { flatView, newFloatBuffer } from '../model/runtime.js';
import { addon, type NativeFloatBuffer } from '../native/addon.js';
import type { DfSetup } from './setup.js';

export type GridInterpolation = 'linear' | 'log';
export const GRID_INTERPOLATIONS: readonly GridInterpolation[] = ['linear', 'log'];

/** K evenly spaced values spanning [lo, hi] (K ≥ 2). */
export function gridPoints(k: number, bounds: readonly [number, number]): number[] {
  if (!Number.isInteger(k) || k < 2) throw new UsageError(`--fisher-grid needs K ≥ 2 grid points, got ${k}`);
  const [lo, hi] = bounds;
  return Array.from({ length: k }, (_, i) => lo + ((hi - lo) * i) / (k - 1));
}

/** The two grid points around λ and the interpolation weight t of the upper one. */
export function bracket(points: readonly number[], lambda: number): { k: number; t: number } {
  const last = points.length - 1;
  if (lambda <= points[0]!) return { k: 0, t: 0 };
  if (lambda >= points[last]!) return { k: last - 1, t: 1 };
  let k = 0;
  while (points[k + 1]! < lambda) k++;
  return { k, t: (lambda - points[k]!) / (points[k + 1]! - points[k]!) };
}

export interface FisherGridOptions {
  /** Folder for the grid files (created; files are reused when present). */
  dir: string;
  points: readonly number[];
  interpolation: GridInterpolation;
  fisherMode: FisherMode;
  /** Examples per native Fisher call. */
  batch?: number;
  onProgress?: (done: number, total: number, detail: string) => void;
}

const gridFile = (dir: string, model: number, k: number) => join(dir, `model${model}-point${k}.safetensors`);

export class FisherGrid {
  private constructor(private readonly setup: DfSetup, private readonly o: FisherGridOptions, private readonly files: Checkpoint[][]) {}

  /**
   * Computes (or reuses) F_i(g_k) for every model i and grid point k. A file is
   * reused only when its metadata names the same λ, mode and examples; others
   * are recomputed. Files are complete or absent (written under a temporary name).
   */
  static async open(setup: DfSetup, o: FisherGridOptions): Promise<FisherGrid> {
    mkdirSync(o.dir, { recursive: true });
    for (const f of readdirSync(o.dir)) if (f.startsWith('.') && f.includes('.partial-')) rmSync(join(o.dir, f), { force: true });
    const { rt, baseSource, modelSources, fisherExamples } = setup;
    const total = setup.models.length * o.points.length;
    let done = 0;
    let acc: NativeFloatBuffer | undefined;
    const files: Checkpoint[][] = [];
    for (let i = 0; i < setup.models.length; i++) {
      const row: Checkpoint[] = [];
      for (let k = 0; k < o.points.length; k++) {
        const path = gridFile(o.dir, i, k);
        const meta = gridMetadata(o.points[k]!, o.fisherMode, fisherExamples[i]!);
        if (!reusable(path, meta)) {
          acc ??= newFloatBuffer(rt.numParams);
          acc.zero();
          rt.bind(baseSource, modelSources[i]!, o.points[k]!);
          const ex = fisherExamples[i]!;
          const batch = Math.max(1, o.batch ?? 2);
          for (let n = 0; n < ex.length; n += batch) {
            await rt.accumulateFisher(acc, ex.slice(n, n + batch), o.fisherMode, { scale: 1 / ex.length });
          }
          await rt.fisherEpsilon(acc, null, FISHER_EPS);
          writeGridFile(path, setup, acc, meta);
          rt.bind(baseSource);
          setup.releaseModel(i);
        }
        row.push(Checkpoint.open(path));
        done++;
        o.onProgress?.(done, total, `model ${setup.modelNames[i]}, λ = ${o.points[k]!.toFixed(3)}`);
      }
      files.push(row);
    }
    acc?.zero();  // its pages back to the kernel now (the buffer itself goes with the next GC)
    return new FisherGrid(setup, o, files);
  }

  /** S += F_i(λ_i), W += F_i(λ_i) ⊙ λ_i τ_i for every model, F_i(λ_i) interpolated from the grid. */
  async accumulate(s: NativeFloatBuffer, w: NativeFloatBuffer, lambda: readonly number[]): Promise<void> {
    const { rt, baseSource, modelSources } = this.setup;
    const chunk = 1 << 22;
    const scratch = new Float32Array(chunk);
    for (let i = 0; i < modelSources.length; i++) {
      const { k, t } = bracket(this.o.points, lambda[i]!);
      const lo = this.files[i]![k]!, hi = this.files[i]![k + 1]!;
      for (const p of rt.params) {
        const f0 = lo.locate(p.name).file.view(p.name) as Float32Array;
        const f1 = hi.locate(p.name).file.view(p.name) as Float32Array;
        const sv = flatView(s, p), wv = flatView(w, p);
        const model = modelSources[i]!(p), base = baseSource(p);
        const es = model.dtype === 'F32' ? 4 : 2;
        for (let j = 0; j < p.numel; j += chunk) {
          const n = Math.min(chunk, p.numel - j);
          const f = scratch.subarray(0, n);
          addon().fisherInterpolate(f, f0.subarray(j, j + n), f1.subarray(j, j + n), t, this.o.interpolation === 'log');
          await foldIntoAccumulators({
            s: sv.subarray(j, j + n), w: wv.subarray(j, j + n), fisher: { data: f, dtype: 'F32' },
            model: { data: sliceBytes(model.data, j * es, n * es), dtype: model.dtype },
            base: { data: sliceBytes(base.data, j * (base.dtype === 'F32' ? 4 : 2), n * (base.dtype === 'F32' ? 4 : 2)), dtype: base.dtype },
            lambda: lambda[i]!, tensor: p.name, releaseInputs: false,
          });
        }
        lo.locate(p.name).file.release(p.name);
        hi.locate(p.name).file.release(p.name);
      }
      this.setup.releaseModel(i);  // one expert resident at a time, as in the exact path
    }
    // S and W of M models: the ε of each interpolated F is already in the grid files.
  }

  close(): void {
    for (const row of this.files) for (const ck of row) ck.close();
  }
}

function sliceBytes(data: ArrayBufferView | ArrayBuffer, offset: number, length: number): Uint8Array {
  return data instanceof ArrayBuffer ? new Uint8Array(data, offset, length) : new Uint8Array(data.buffer, data.byteOffset + offset, length);
}

/** What a grid file was computed from (checked before it is reused). */
function gridMetadata(lambda: number, mode: FisherMode, examples: readonly FisherExample[]): Map<string, string> {
  let h = 2166136261;
  for (const e of examples) {
    for (const x of [...e.prompt, -1, ...e.choices.flatMap((c) => [...c, -2]), e.answer, Math.round(e.u * 1e9)]) {
      h = Math.imul(h ^ (x & 0xffffffff), 16777619) >>> 0;
    }
  }
  return new Map([['dfmerge_fisher_lambda', String(lambda)], ['dfmerge_fisher_mode', mode], ['dfmerge_fisher_examples', `${examples.length}:${h.toString(16)}`]]);
}

function reusable(path: string, meta: ReadonlyMap<string, string>): boolean {
  if (!existsSync(path)) return false;
  try {
    const ck = Checkpoint.open(path);
    try {
      const m = ck.files[0]!.metadata;
      return [...meta].every(([k, v]) => m[k] === v);
    } finally {
      ck.close();
    }
  } catch {
    return false;  // unreadable: recompute
  }
}

function writeGridFile(path: string, setup: DfSetup, acc: NativeFloatBuffer, meta: ReadonlyMap<string, string>): void {
  const { rt } = setup;
  const w = new SafetensorsWriter(path, rt.params.map((p) => ({ name: p.name, dtype: 'F32', shape: p.shape })), { format: 'pt', ...Object.fromEntries(meta) });
  try {
    for (const p of rt.params) w.write(p.name, flatView(acc, p));
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}
