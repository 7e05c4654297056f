/**
 * One DF-Merge evaluation (DESIGN.md §1), for a coefficient vector λ:
 *
 *   for each model i:  θ_i(λ_i) = θ_pre + λ_i τ_i                       (scaled model)
 *                      F_i = (1/N) Σ_n Σ_y p(y|x_n) (∇ℓ(y|x_n))² + ε    (Fisher on θ_i(λ_i))
 *                      S += F_i,  W += F_i ⊙ λ_i τ_i                     (two f32 accumulators)
 *   θ* = θ_pre + M · W ⊘ S                                               (Fisher-weighted merge)
 *   objective = mean over tasks of validation accuracy of θ*             (rank classification)
 *
 * With `fisher: false` (the --no-fisher ablation, C_i = I) θ* = θ_pre + Σ λ_i τ_i.
 * Everything stays in memory: no merged model is written to disk.
 */
import { evaluateTasks, type TaskResult } from '../eval/accuracy.js';
import type { TokenizedTask } from '../eval/task.js';
import { accumulateFisher as foldFisherExamples, FISHER_EPS, type FisherMode } from '../fisher/fisher.js';
import { finalizeFisher } from '../model/runtime.js';
import { accumulateFisher as foldIntoAccumulators, dfCombine, mergeTensor, type MergeTensorRequest } from '../merge/kernels.js';
import type { DfSetup } from './setup.js';

export interface ObjectiveOptions {
  fisher: boolean;
  fisherMode: FisherMode;
}

export interface MergeTimings {
  fisherSeconds: number;
  mergeSeconds: number;
}

const f32 = (data: Float32Array) => ({ data, dtype: 'F32' as const });

export class DfMergeObjective {
  private readonly s: Float32Array;
  private readonly w: Float32Array;
  private readonly scratch: Float32Array;
  private readonly merged: Float32Array;

  constructor(private readonly setup: DfSetup, private readonly options: ObjectiveOptions) {
    const n = setup.base.length;
    this.s = new Float32Array(n);
    this.w = new Float32Array(n);
    this.scratch = new Float32Array(n);
    this.merged = new Float32Array(n);
  }

  /** θ_pre + Σ_i w_i τ_i into `out` (task arithmetic; also the scaled model θ_i(λ_i) for one model). */
  async taskArithmetic(models: readonly Float32Array[], weights: readonly number[], out: Float32Array): Promise<void> {
    await mergeTensor({ method: 'task_arithmetic', tensor: 'flat', base: f32(this.setup.base), models: models.map(f32), weights, out: { kind: 'memory', data: out, dtype: 'F32' }, releaseInputs: false });
  }

  /** The merged parameters θ*(λ), flat (valid until the next call). */
  async merge(lambda: readonly number[]): Promise<{ merged: Float32Array; timings: MergeTimings }> {
    const timings: MergeTimings = { fisherSeconds: 0, mergeSeconds: 0 };
    if (!this.options.fisher) {
      const t = performance.now();
      await this.taskArithmetic(this.setup.models, lambda, this.merged);
      timings.mergeSeconds = (performance.now() - t) / 1000;
      return { merged: this.merged, timings };
    }
    await this.accumulate(lambda, timings);
    await this.combine(this.setup.models.length, timings);
    return { merged: this.merged, timings };
  }

  /**
   * Fisher merging (Matena & Raffel) as the unified view has it: C_i = Fisher at
   * θ_i itself (λ_i = 1), θ* = θ_pre + Σ F_i τ_i ⊘ Σ F_i (the 1/M weights cancel).
   */
  async fisherMerging(): Promise<Float32Array> {
    const timings: MergeTimings = { fisherSeconds: 0, mergeSeconds: 0 };
    await this.accumulate(this.setup.models.map(() => 1), timings);
    await this.combine(1, timings);
    return this.merged;
  }

  /** S = Σ F_i, W = Σ F_i ⊙ λ_i τ_i with F_i the Fisher of the scaled model θ_i(λ_i). */
  private async accumulate(lambda: readonly number[], timings: MergeTimings): Promise<void> {
    const { base, models, rt, fisherExamples } = this.setup;
    this.s.fill(0);
    this.w.fill(0);
    for (let i = 0; i < models.length; i++) {
      let t = performance.now();
      await this.taskArithmetic([models[i]!], [lambda[i]!], this.scratch);   // θ_i(λ_i)
      rt.setWeights(rt.tensorViews(this.scratch));
      this.scratch.fill(0);                                                  // now the Fisher accumulator
      await foldFisherExamples(rt, this.scratch, fisherExamples[i]!, { mode: this.options.fisherMode });
      finalizeFisher(this.scratch, fisherExamples[i]!.length, FISHER_EPS);   // F_i
      timings.fisherSeconds += (performance.now() - t) / 1000;
      t = performance.now();
      await foldIntoAccumulators({ s: this.s, w: this.w, fisher: f32(this.scratch), model: f32(models[i]!), base: f32(base), lambda: lambda[i]!, releaseInputs: false });
      timings.mergeSeconds += (performance.now() - t) / 1000;
    }
  }

  /** θ* = θ_pre + m · W ⊘ S into the merged buffer. */
  private async combine(m: number, timings: MergeTimings): Promise<void> {
    const t = performance.now();
    await dfCombine({ tensor: 'flat', base: f32(this.setup.base), w: this.w, s: this.s, m, out: { kind: 'memory', data: this.merged, dtype: 'F32' }, releaseInputs: false });
    timings.mergeSeconds += (performance.now() - t) / 1000;
  }

  /**
   * A classic merge over the flat layout, tensor by tensor (TIES trims each
   * tensor's task vector separately, as mergekit does): `request` gets views of
   * one tensor of θ_pre and every θ_i and the output view.
   */
  async perTensor(request: (name: string, base: Float32Array, models: Float32Array[], out: Float32Array) => MergeTensorRequest, out: Float32Array): Promise<Float32Array> {
    for (const p of this.setup.rt.params) {
      const view = (a: Float32Array) => a.subarray(p.offset, p.offset + p.numel);
      await mergeTensor({ ...request(p.name, view(this.setup.base), this.setup.models.map(view), view(out)), releaseInputs: false });
    }
    return out;
  }

  /** Accuracy of flat parameters on tasks (the runtime's weights are replaced). */
  async evaluate(params: Float32Array, tasks: readonly TokenizedTask[]): Promise<{ tasks: TaskResult[]; meanAccuracy: number }> {
    this.setup.rt.setWeights(this.setup.rt.tensorViews(params));
    return evaluateTasks(this.setup.rt, tasks);
  }
}
