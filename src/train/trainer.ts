/**
 * Batched training of a LlamaRuntime with AdamW, warm-up + cosine schedule and
 * global-norm clipping, on top of the runtime's native backward pass.
 *
 * The unit of data is a TrainSequence {prompt, target}: the loss of one sequence
 * is −ℓ(target | prompt), the mean negative log-probability of the target tokens
 * given the prompt (LlamaRuntime.gradient). Two uses:
 *  - next-token (pre-)training of a token sequence s: prompt = s[0..1) (BOS),
 *    target = s[1..): every token after BOS is predicted (nextTokenSequence);
 *  - supervised multiple-choice fine-tuning: prompt = the example's prompt,
 *    target = its gold choice, so the model learns p(answer | prompt) and nothing
 *    about the prompt's own distribution (choiceSequence). Rank classification
 *    scores exactly this quantity, so training and evaluation agree.
 * One step: loss = (1/B) Σ_b −ℓ_b over a batch of B sequences, gradient summed
 * in batch order (deterministic), clipped to a global norm, one AdamW update.
 *
 * Batches are drawn by a seeded shuffle, epoch after epoch. The batch's
 * per-sequence gradients are computed by `replicas` copies of the model, each
 * on one thread, concurrently on the libuv pool (tiny models do not speed up
 * with threads inside one sequence); each gradient is a pure function of the
 * weights and the sequence, and they are summed in batch order, so the result
 * does not depend on the number of replicas. (The runtime reuses the cached
 * activations of a shared token prefix from the previous call, and a forward
 * resumed from a cache is not bit-identical to a full one; so each sequence's
 * gradient is taken with the cache dropped, by re-setting the smallest
 * parameter tensor, which keeps the result independent of call history.)
 */
import { availableParallelism } from 'node:os';
import { UsageError } from '../errors.js';
import { LlamaRuntime } from '../model/runtime.js';
import { addon } from '../native/addon.js';
import { Rng } from '../util/rng.js';
import { AdamW } from './adamw.js';
import { learningRate, validateSchedule, type LrSchedule } from './schedule.js';

export interface TrainSequence {
  prompt: Int32Array;
  target: Int32Array;
}

/** Next-token training of a whole sequence: predict s[1..) from s[0] onwards. */
export function nextTokenSequence(tokens: Int32Array): TrainSequence {
  if (tokens.length < 2) throw new UsageError('a training sequence needs at least 2 tokens');
  return { prompt: tokens.subarray(0, 1), target: tokens.subarray(1) };
}

/** Supervised multiple-choice fine-tuning: predict the gold choice's tokens from the prompt. */
export function choiceSequence(e: { prompt: Int32Array; choices: readonly Int32Array[]; answer: number }): TrainSequence {
  const gold = e.choices[e.answer];
  if (gold === undefined) throw new UsageError(`answer ${e.answer} is out of range for ${e.choices.length} choices`);
  return { prompt: e.prompt, target: gold };
}

export interface TrainOptions {
  steps: number;
  batchSize: number;
  /** Peak learning rate. */
  lr: number;
  /** Warm-up steps (default 10% of steps). */
  warmup?: number;
  /** Final learning rate / peak (default 0.1). */
  minLrRatio?: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Global gradient-norm clip (default 1; 0 disables). */
  clip?: number;
  /** Seed of the batch order. */
  seed: number;
  /** Model copies computing gradients concurrently (default: the CPU count, at most 4). */
  replicas?: number;
  /** Called after every step. */
  onStep?: (s: StepLog) => void;
}

export interface StepLog {
  step: number;
  steps: number;
  /** Mean loss of the step's batch (before the update). */
  loss: number;
  lr: number;
  /** Gradient norm before clipping. */
  gradNorm: number;
  seconds: number;
}

export interface TrainResult {
  steps: number;
  sequences: number;
  seconds: number;
  /** Mean batch loss of every step. */
  losses: number[];
  /** Mean of the last 10% of the step losses. */
  finalLoss: number;
}

/** Reads a runtime's weights into one flat array (its param layout). */
export function flatWeights(rt: LlamaRuntime): Float32Array {
  const theta = new Float32Array(rt.numParams);
  for (const p of rt.params) theta.set(rt.getWeight(p.name), p.offset);
  return theta;
}

/** Trains rt in place on `data`; rt holds the trained weights afterwards. */
export async function train(rt: LlamaRuntime, data: readonly TrainSequence[], o: TrainOptions): Promise<TrainResult> {
  if (data.length === 0) throw new UsageError('no training data');
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new UsageError(`batch size must be a positive integer, got ${o.batchSize}`);
  const schedule: LrSchedule = { peak: o.lr, warmup: o.warmup ?? Math.floor(o.steps / 10), total: o.steps, minRatio: o.minLrRatio };
  validateSchedule(schedule);
  for (const s of data) {
    if (s.prompt.length + s.target.length - 1 > rt.config.maxPositions) {
      throw new UsageError(`a training sequence of ${s.prompt.length + s.target.length} tokens exceeds the model's context (${rt.config.maxPositions})`);
    }
  }
  const a = addon();
  const nReplicas = Math.max(1, Math.min(o.replicas ?? Math.min(4, availableParallelism()), o.batchSize));
  const clip = o.clip ?? 1;
  const theta = flatWeights(rt);
  const opt = new AdamW(rt.params, rt.numParams, { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay });
  const views = rt.tensorViews(theta);
  // Re-setting a parameter drops the runtime's prefix cache (see above).
  const smallest = rt.params.reduce((a, p) => (p.numel < a.numel ? p : a));
  const smallestView = views.get(smallest.name)!;
  const replicas = [rt];
  for (let r = 1; r < nReplicas; r++) replicas.push(LlamaRuntime.fromWeights(rt.config, views, rt.tokenizer));

  const rng = new Rng(o.seed);
  let order: number[] = [];
  let cursor = 0;
  const nextIndex = (): number => {
    if (cursor >= order.length) {
      order = rng.sample(data.length, data.length);  // a fresh permutation per epoch
      cursor = 0;
    }
    return order[cursor++]!;
  };

  const grad = new Float32Array(rt.numParams);
  const losses: number[] = [];
  const prevThreads = a.buildInfo().threads;
  const t0 = performance.now();
  a.setThreads(1);
  try {
    for (let step = 1; step <= o.steps; step++) {
      const batch = Array.from({ length: o.batchSize }, () => data[nextIndex()]!);
      // Per-sequence gradients, replica r taking sequences r, r + R, ...
      const results: { loglik: number; grad: Float32Array }[] = new Array(batch.length);
      await Promise.all(replicas.map(async (m, r) => {
        for (let b = r; b < batch.length; b += replicas.length) {
          m.setWeight(smallest.name, smallestView);
          results[b] = await m.gradient(batch[b]!.prompt, batch[b]!.target);
        }
      }));
      // ∇ of loss = (1/B) Σ −ℓ_b, summed in batch order.
      grad.fill(0);
      let loss = 0;
      for (const res of results) {
        a.axpy(grad, res.grad, -1 / batch.length);
        loss -= res.loglik / batch.length;
      }
      if (!Number.isFinite(loss)) throw new UsageError(`training diverged at step ${step} (loss ${loss}); lower the learning rate`);
      const gradNorm = a.clipGradNorm(grad, clip);
      const lr = learningRate(schedule, step);
      opt.step(theta, grad, lr);
      for (const m of replicas) m.setWeights(views);
      losses.push(loss);
      o.onStep?.({ step, steps: o.steps, loss, lr, gradNorm, seconds: (performance.now() - t0) / 1000 });
    }
  } finally {
    a.setThreads(prevThreads);
  }
  const tail = losses.slice(-Math.max(1, Math.floor(losses.length / 10)));
  return {
    steps: o.steps,
    sequences: o.steps * o.batchSize,
    seconds: (performance.now() - t0) / 1000,
    losses,
    finalLoss: tail.reduce((x, y) => x + y, 0) / tail.length,
  };
}
