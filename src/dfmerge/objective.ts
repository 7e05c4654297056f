/**
 * One DF-Merge evaluation (docs/design.md §1), for a coefficient vector λ:
 *
 *   for each model i:  θ_i(λ_i) = θ_pre + λ_i τ_i                       (scaled model)
 *                      F_i = (1/N) Σ_n Σ_y p(y|x_n) (∇ℓ(y|x_n))² + ε    (Fisher on θ_i(λ_i))
 *                      S += F_i,  W += F_i ⊙ λ_i τ_i                     (two f32 accumulators)
 *   θ* = θ_pre + M · W ⊘ S                                               (Fisher-weighted merge)
 *   objective = mean over tasks of validation accuracy of θ*             (rank classification)
 *
 * With `fisher: false` (the --no-fisher ablation, C_i = I) θ* = θ_pre + Σ λ_i τ_i.
 *
 * Memory (docs/design.md §5): θ_pre and θ_i stay mmapped in their
 * stored dtype; the runtime forms θ_i(λ_i) inside its GEMMs; each example's
 * squared gradients are folded straight into S and W (native buffers, 8 bytes
 * per parameter; with (1/N) folded into each example's weight and ε added once
 * per model); θ_i's pages are dropped once its Fisher is in; θ* is formed in
 * place of S and evaluated from there. Peak: S + W + θ_pre + one θ_i.
 */
import { evaluateTasks, type TaskResult } from '../eval/accuracy.js';
import type { TokenizedTask } from '../eval/task.js';
import { FISHER_EPS, exampleTokens, type FisherMode } from '../fisher/fisher.js';
import { dfCombine, mergeTensor, type MergeTensorRequest, type TensorInput } from '../merge/kernels.js';
import { flatSource, flatView, newFloatBuffer, type TensorSource } from '../model/runtime.js';
import type { NativeFloatBuffer, NativeParamSpec } from '../native/addon.js';
import type { FisherGrid } from './fisher_grid.js';
import type { DfSetup } from './setup.js';

export interface ObjectiveOptions {
  fisher: boolean;
  fisherMode: FisherMode;
  /** Interpolate each F_i(λ_i) from a precomputed grid instead of computing it (--fisher-grid). */
  grid?: FisherGrid;
  /** Examples per native Fisher call (progress is reported between calls). */
  fisherBatch?: number;
}

export interface MergeTimings {
  fisherSeconds: number;
  mergeSeconds: number;
}

/** Progress inside one evaluation: Fisher examples of model i, then validation examples. */
export type EvaluationProgress = (phase: 'fisher' | 'validation', done: number, total: number, detail: string) => void;

export class DfMergeObjective {
  /** S = Σ F_i; after a merge, θ* (flat, f32). */
  private readonly s: NativeFloatBuffer;
  /** W = Σ F_i ⊙ λ_i τ_i (only with Fisher). */
  private readonly w: NativeFloatBuffer | undefined;
  onProgress: EvaluationProgress | undefined;

  constructor(private readonly setup: DfSetup, private readonly options: ObjectiveOptions) {
    const n = setup.rt.numParams;
    this.s = newFloatBuffer(n);
    this.w = options.fisher ? newFloatBuffer(n) : undefined;
  }

  /** Returns the pages of S and W to the kernel (both read zero afterwards; the next merge refills them). */
  release(): void {
    this.s.zero();
    this.w?.zero();
  }

  /** The flat buffer that holds the last merge (valid until the next call). */
  get merged(): NativeFloatBuffer {
    return this.s;
  }

  /** θ*(λ) into `merged`. */
  async merge(lambda: readonly number[]): Promise<{ merged: NativeFloatBuffer; timings: MergeTimings }> {
    const timings: MergeTimings = { fisherSeconds: 0, mergeSeconds: 0 };
    if (!this.options.fisher) {
      const t = performance.now();
      await this.taskArithmetic(lambda);
      timings.mergeSeconds = (performance.now() - t) / 1000;
      return { merged: this.s, timings };
    }
    await this.accumulate(lambda, timings);
    await this.combine(this.setup.models.length, timings);
    return { merged: this.s, timings };
  }

  /**
   * Fisher merging (Matena & Raffel) as the unified view has it: C_i = Fisher at
   * θ_i itself (λ_i = 1), θ* = θ_pre + Σ F_i τ_i ⊘ Σ F_i (the 1/M weights cancel).
   */
  async fisherMerging(): Promise<NativeFloatBuffer> {
    const timings: MergeTimings = { fisherSeconds: 0, mergeSeconds: 0 };
    await this.accumulate(this.setup.models.map(() => 1), timings, false);  // exact: F at θ_i itself
    await this.combine(1, timings);
    return this.s;
  }

  /** θ_pre + Σ_i w_i τ_i into `merged`, streamed through the merge engine from the mapped checkpoints. */
  async taskArithmetic(weights: readonly number[]): Promise<NativeFloatBuffer> {
    return this.classic((p, base, models, out) => ({ method: 'task_arithmetic', tensor: p.name, base, models, weights, out }));
  }

  /**
   * A classic merge into `merged`, tensor by tensor (TIES trims each tensor's task
   * vector separately, as mergekit does): `request` gets one tensor of θ_pre and
   * of every θ_i as mapped in their stored dtype, and the output slot.
   */
  async classic(request: (p: NativeParamSpec, base: TensorInput, models: TensorInput[],
    out: { kind: 'memory'; data: Float32Array; dtype: 'F32' }) => MergeTensorRequest): Promise<NativeFloatBuffer> {
    const { rt, baseSource, modelSources } = this.setup;
    for (const p of rt.params) {
      const out = { kind: 'memory' as const, data: flatView(this.s, p), dtype: 'F32' as const };
      await mergeTensor({ ...request(p, baseSource(p), modelSources.map((src) => src(p)), out), releaseInputs: true });
    }
    return this.s;
  }

  /** S = Σ F_i, W = Σ F_i ⊙ λ_i τ_i with F_i the Fisher of the scaled model θ_i(λ_i). */
  private async accumulate(lambda: readonly number[], timings: MergeTimings, useGrid = true): Promise<void> {
    const { rt, baseSource, models, fisherExamples, modelNames } = this.setup;
    const scaledSources = this.setup.scaledSources ?? this.setup.modelSources;
    const s = this.s;
    const w = this.w!;
    s.zero();
    w.zero();
    if (this.options.grid && useGrid) {
      const t = performance.now();
      await this.options.grid.accumulate(s, w, lambda);
      timings.mergeSeconds += (performance.now() - t) / 1000;
      return;
    }
    const batch = Math.max(1, this.options.fisherBatch ?? 2);
    const total = fisherExamples.reduce((a, e) => a + e.length, 0);
    let done = 0;
    for (let i = 0; i < models.length; i++) {
      const t = performance.now();
      rt.bind(baseSource, scaledSources[i]!, lambda[i]!);                      // θ_i(λ_i), formed in the GEMMs
      const examples = fisherExamples[i]!;
      const scale = 1 / examples.length;                                      // F_i = (1/N) Σ ... + ε
      for (let k = 0; k < examples.length; k += batch) {
        const chunk = examples.slice(k, k + batch);
        await rt.accumulateFisher(s, chunk, this.options.fisherMode, { w, scale });
        done += chunk.length;
        this.onProgress?.('fisher', done, total, `model ${modelNames[i]} (${chunk.reduce((a, e) => a + exampleTokens(e), 0)} tokens)`);
      }
      await rt.fisherEpsilon(s, w, FISHER_EPS);
      rt.bind(baseSource);  // drop the bindings to θ_i before its pages go
      this.setup.releaseModel(i);
      timings.fisherSeconds += (performance.now() - t) / 1000;
    }
  }

  /** θ* = θ_pre + m · W ⊘ S, written over S. */
  private async combine(m: number, timings: MergeTimings): Promise<void> {
    const t = performance.now();
    const { rt, baseSource } = this.setup;
    for (const p of rt.params) {
      const sv = flatView(this.s, p);
      await dfCombine({ tensor: p.name, base: baseSource(p), w: flatView(this.w!, p), s: sv, m, out: { kind: 'memory', data: sv, dtype: 'F32' }, releaseInputs: false });
    }
    timings.mergeSeconds += (performance.now() - t) / 1000;
  }

  /** Accuracy of the last merge (`merged`) on tasks. */
  evaluateMerged(tasks: readonly TokenizedTask[]): Promise<{ tasks: TaskResult[]; meanAccuracy: number }> {
    return this.evaluate(tasks, flatSource(this.s));
  }

  /** Accuracy of θ = a (or a + λ·(b − a)) on tasks: the runtime is re-bound. */
  evaluate(tasks: readonly TokenizedTask[], a: TensorSource, b?: TensorSource, lambda = 1):
  Promise<{ tasks: TaskResult[]; meanAccuracy: number }> {
    this.setup.rt.bind(a, b, lambda);
    const start = new Map<string, number>();
    let total = 0;
    for (const t of tasks) { start.set(t.name, total); total += t.examples.length; }
    return evaluateTasks(this.setup.rt, tasks, {
      ...(this.setup.scoring ? { scoring: this.setup.scoring } : {}),
      onProgress: (task, done) => this.onProgress?.('validation', (start.get(task) ?? 0) + done, total, task),
    });
  }
}
