// Gaussian-process regression with a Matérn-5/2 kernel, as the DF-Merge optimiser uses
// it (and as scikit-learn's GaussianProcessRegressor(normalize_y=True, alpha=…) does):
//
//   targets normalised:  ỹ = (y − mean(y)) / std(y)        (population std; 1 if zero)
//   K_y = K(X, X) + α I                                    (α: "noise", default 1e-6)
//   posterior (R&W eq. 2.25–2.26), in normalised units:
//       μ(x)  = k*ᵀ K_y⁻¹ ỹ,      σ²(x) = k(x, x) − k*ᵀ K_y⁻¹ k*
//   log marginal likelihood of ỹ (R&W eq. 2.30):
//       log p = −½ ỹᵀ K_y⁻¹ ỹ − ½ log|K_y| − (n/2) log 2π
//   and its gradient (R&W eq. 5.9):
//       ∂ log p / ∂θ_j = ½ tr((a aᵀ − K_y⁻¹) ∂K_y/∂θ_j),   a = K_y⁻¹ ỹ
//
// Predictions are returned in the original units of y (mean·std + mean, variance·std²),
// the variance being that of the latent function (α not added), like scikit-learn.
// Hyperparameters are fitted by maximising log p over log-parameters inside bounds,
// from a default start plus seeded random restarts (projected L-BFGS, boxminimize.ts).

import { boxMinimize } from './boxminimize.js';
import { Matern52, type KernelHyperparameters, type KernelKind } from './kernel.js';
import { choleskySolve, choleskyWithJitter, inverseFromCholesky, solveLower, solveLowerTransposed } from './linalg.js';
import { Rng } from './rng.js';

const LOG_2PI = Math.log(2 * Math.PI);

export interface GPOptions {
  /** 'ard' (one length scale per dimension, default) or 'isotropic'. */
  kernel?: KernelKind;
  /** α added to the diagonal of the (normalised) kernel matrix; default 1e-6. */
  noise?: number;
  /** Also fit log α by maximum likelihood inside noiseBounds (default false). */
  fitNoise?: boolean;
  /** Bounds for α when fitNoise is true (default [1e-6, 1e-1]). */
  noiseBounds?: readonly [number, number];
  /** Fit σ² (default true); when false σ² stays at its initial value (1, like scikit-learn's bare Matern). */
  fitSignalVariance?: boolean;
  /** Bounds for every length scale (default [1e-2, 1e2], meant for inputs in the unit cube). */
  lengthScaleBounds?: readonly [number, number];
  /** Bounds for σ² in normalised units (default [1e-2, 1e2]). */
  signalVarianceBounds?: readonly [number, number];
  /** Normalise targets to zero mean and unit variance (default true). */
  normalizeY?: boolean;
  /** Random restarts of the hyperparameter fit in addition to the default start (default 4). */
  restarts?: number;
  /** Iteration limit of each hyperparameter fit (default 200). */
  maxIterations?: number;
  /** Initial length scale of the default start (default 0.5). */
  initialLengthScale?: number;
  /**
   * Optional normal prior on each log length scale, N(mean, std²): the fit then maximises
   * log p(y | θ) + log prior(θ) (a MAP estimate). null (default) means plain maximum likelihood.
   */
  lengthScalePrior?: { mean: number; std: number } | null;
  /**
   * Optional normal prior on log α, N(mean, std²), used when fitNoise is true (MAP, like
   * the length-scale prior). null (default): flat inside noiseBounds.
   */
  noisePrior?: { mean: number; std: number } | null;
}

export interface GPHyperparameters extends KernelHyperparameters {
  /** α, in normalised units. */
  noise: number;
}

export interface Prediction {
  mean: number;
  variance: number;
}

export interface PredictionWithGradient extends Prediction {
  /** ∂mean/∂x. */
  dMean: Float64Array;
  /** ∂variance/∂x. */
  dVariance: Float64Array;
}

export interface LogMarginalLikelihood {
  value: number;
  /** Gradient with respect to [log ℓ..., log σ², log α]. */
  gradient: Float64Array;
}

export interface FitReport {
  /** Log marginal likelihood at the chosen hyperparameters (without the prior term, if any). */
  logMarginalLikelihood: number;
  /** Number of starts that were run. */
  starts: number;
}

/** GPOptions with every default filled in. */
export type ResolvedGPOptions = { [K in keyof GPOptions]-?: GPOptions[K] };

export class GaussianProcess {
  readonly dim: number;
  readonly kernel: Matern52;
  readonly options: Readonly<ResolvedGPOptions>;

  private X: Float64Array = new Float64Array(0);
  private n = 0;
  private yRaw: Float64Array = new Float64Array(0);
  private yNorm: Float64Array = new Float64Array(0);
  private yMean = 0;
  private yStd = 1;
  private hp: GPHyperparameters;
  // Factorisation of K_y for the current data and hyperparameters.
  private L: Float64Array | null = null;
  private alphaVec: Float64Array = new Float64Array(0);
  private jitter = 0;

  constructor(dim: number, options: GPOptions = {}) {
    this.dim = dim;
    const o: ResolvedGPOptions = {
      kernel: options.kernel ?? 'ard',
      noise: options.noise ?? 1e-6,
      fitNoise: options.fitNoise ?? false,
      noiseBounds: options.noiseBounds ?? [1e-6, 1e-1],
      fitSignalVariance: options.fitSignalVariance ?? true,
      lengthScaleBounds: options.lengthScaleBounds ?? [1e-2, 1e2],
      signalVarianceBounds: options.signalVarianceBounds ?? [1e-2, 1e2],
      normalizeY: options.normalizeY ?? true,
      restarts: options.restarts ?? 4,
      maxIterations: options.maxIterations ?? 200,
      initialLengthScale: options.initialLengthScale ?? 0.5,
      lengthScalePrior: options.lengthScalePrior ?? null,
      noisePrior: options.noisePrior ?? null,
    };
    for (const [name, b] of [
      ['noiseBounds', o.noiseBounds],
      ['lengthScaleBounds', o.lengthScaleBounds],
      ['signalVarianceBounds', o.signalVarianceBounds],
    ] as const) {
      if (!(b[0] > 0 && b[1] >= b[0])) throw new Error(`GaussianProcess: ${name} must satisfy 0 < lo ≤ hi, got [${b}]`);
    }
    if (!(o.noise >= 0)) throw new Error(`GaussianProcess: noise must be ≥ 0, got ${o.noise}`);
    for (const [name, prior] of [['lengthScalePrior', o.lengthScalePrior], ['noisePrior', o.noisePrior]] as const) {
      if (prior && !(Number.isFinite(prior.mean) && prior.std > 0)) throw new Error(`GaussianProcess: ${name} needs a finite mean and std > 0`);
    }
    this.options = o;
    this.kernel = new Matern52(dim, o.kernel);
    const ls = new Float64Array(this.kernel.nLengthScales).fill(clamp(o.initialLengthScale, o.lengthScaleBounds));
    this.hp = { lengthScales: ls, signalVariance: 1, noise: o.noise };
  }

  /** Number of training points. */
  get size(): number {
    return this.n;
  }

  /** Current hyperparameters (copies). */
  get hyperparameters(): GPHyperparameters {
    return { lengthScales: Float64Array.from(this.hp.lengthScales), signalVariance: this.hp.signalVariance, noise: this.hp.noise };
  }

  /** Mean and standard deviation used to normalise y. */
  get normalisation(): { mean: number; std: number } {
    return { mean: this.yMean, std: this.yStd };
  }

  /** Diagonal jitter the last factorisation needed on top of α (0 normally). */
  get lastJitter(): number {
    return this.jitter;
  }

  /** Replaces the training data (keeps hyperparameters) and refactorises. */
  setData(X: readonly ArrayLike<number>[], y: readonly number[]): void {
    if (X.length !== y.length) throw new Error(`GaussianProcess: ${X.length} inputs but ${y.length} targets`);
    const n = X.length;
    const D = this.dim;
    const flat = new Float64Array(n * D);
    for (let i = 0; i < n; i++) {
      if (X[i].length !== D) throw new Error(`GaussianProcess: input ${i} has ${X[i].length} coordinates, expected ${D}`);
      for (let d = 0; d < D; d++) {
        const v = X[i][d];
        if (!Number.isFinite(v)) throw new Error(`GaussianProcess: input ${i} has a non-finite coordinate`);
        flat[i * D + d] = v;
      }
      if (!Number.isFinite(y[i])) throw new Error(`GaussianProcess: target ${i} is not finite (${y[i]})`);
    }
    this.X = flat;
    this.n = n;
    this.yRaw = Float64Array.from(y);
    let mean = 0;
    let std = 1;
    if (this.options.normalizeY && n > 0) {
      for (const v of y) mean += v;
      mean /= n;
      let ss = 0;
      for (const v of y) ss += (v - mean) * (v - mean);
      std = Math.sqrt(ss / n);
      if (!(std > 0)) std = 1; // scikit-learn's _handle_zeros_in_scale
    }
    this.yMean = mean;
    this.yStd = std;
    this.yNorm = new Float64Array(n);
    for (let i = 0; i < n; i++) this.yNorm[i] = (y[i] - mean) / std;
    this.factorise();
  }

  /** Sets hyperparameters explicitly (no fitting) and refactorises. */
  setHyperparameters(hp: { lengthScales: ArrayLike<number>; signalVariance: number; noise?: number }): void {
    const ls = Float64Array.from(hp.lengthScales);
    if (ls.length !== this.kernel.nLengthScales) {
      throw new Error(`GaussianProcess: expected ${this.kernel.nLengthScales} length scale(s), got ${ls.length}`);
    }
    if (!ls.every((v) => v > 0) || !(hp.signalVariance > 0)) throw new Error('GaussianProcess: hyperparameters must be positive');
    const noise = hp.noise ?? this.hp.noise;
    if (!(noise >= 0)) throw new Error('GaussianProcess: noise must be ≥ 0');
    this.hp = { lengthScales: ls, signalVariance: hp.signalVariance, noise };
    this.factorise();
  }

  /**
   * Log marginal likelihood of the normalised targets and its gradient with respect to
   * the full log-parameter vector [log ℓ..., log σ², log α] (default: current values).
   * Returns value −∞ if K_y cannot be factorised. withGradient = false skips the O(n³)
   * gradient work (the gradient is then all zeros).
   */
  logMarginalLikelihood(logParams?: ArrayLike<number>, withGradient = true): LogMarginalLikelihood {
    const P = this.kernel.nHyperparameters;
    const theta = logParams ? Float64Array.from(logParams) : this.fullLogParams(this.hp);
    if (theta.length !== P + 1) throw new Error(`GaussianProcess: expected ${P + 1} log-parameters, got ${theta.length}`);
    const khp = this.kernel.fromLog(theta);
    const noise = Math.exp(theta[P]);
    const n = this.n;
    const gradient = new Float64Array(P + 1);
    if (n === 0) return { value: 0, gradient };
    const K = this.kernel.matrix(this.X, n, khp);
    for (let i = 0; i < n; i++) K[i * n + i] += noise;
    let L: Float64Array;
    try {
      L = choleskyWithJitter(K, n).l;
    } catch {
      return { value: -Infinity, gradient };
    }
    const a = choleskySolve(L, n, this.yNorm);
    let quad = 0;
    for (let i = 0; i < n; i++) quad += this.yNorm[i] * a[i];
    let halfLogDet = 0;
    for (let i = 0; i < n; i++) halfLogDet += Math.log(L[i * n + i]);
    const value = -0.5 * quad - halfLogDet - 0.5 * n * LOG_2PI;
    if (!withGradient) return { value, gradient };
    // W = a aᵀ − K_y⁻¹; ∂ log p/∂θ_j = ½ Σ W ⊙ ∂K_y/∂θ_j.
    const W = inverseFromCholesky(L, n);
    let traceW = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) W[i * n + j] = a[i] * a[j] - W[i * n + j];
      traceW += W[i * n + i];
    }
    const gk = this.kernel.contractGradients(this.X, n, khp, W);
    for (let p = 0; p < P; p++) gradient[p] = 0.5 * gk[p];
    gradient[P] = 0.5 * noise * traceW; // ∂K_y/∂log α = α I
    return { value, gradient };
  }

  /**
   * Fits hyperparameters by maximising the log marginal likelihood (plus the log prior,
   * if lengthScalePrior is set) from the default start plus `options.restarts` random
   * starts drawn from rng (log-uniform over a central part of the bounds). Keeps the
   * best and refactorises.
   */
  fitHyperparameters(rng: Rng): FitReport {
    const o = this.options;
    const { freeIdx, lo, hi, base } = this.parameterSpace();
    if (this.n < 2 || freeIdx.length === 0) {
      this.hp = this.fromFull(base);
      this.factorise();
      return { logMarginalLikelihood: this.logMarginalLikelihood().value, starts: 0 };
    }
    const L = this.kernel.nLengthScales;
    const starts: Float64Array[] = [Float64Array.from(freeIdx, (i) => base[i])];
    // Random starts: length scales log-uniform in [max(lo, 0.05), min(hi, 2)] (the range
    // where useful fits live for unit-cube inputs), σ² in [0.3, 3] ∩ bounds, α in its bounds.
    const narrow = (i: number, a: number, b: number): [number, number] => {
      const l = Math.max(lo[i], Math.log(a));
      const h = Math.min(hi[i], Math.log(b));
      return l <= h ? [l, h] : [lo[i], hi[i]];
    };
    for (let r = 0; r < o.restarts; r++) {
      const s = new Float64Array(freeIdx.length);
      freeIdx.forEach((i, k) => {
        const [a, b] = i < L ? narrow(i, 0.05, 2) : i === L ? narrow(i, 0.3, 3) : [lo[i], hi[i]];
        s[k] = a + (b - a) * rng.uniform();
      });
      starts.push(s);
    }

    const full = Float64Array.from(base);
    const objective = (u: Float64Array): { f: number; g: Float64Array } => {
      freeIdx.forEach((i, k) => (full[i] = u[k]));
      const r = this.logMarginalLikelihood(full);
      const g = new Float64Array(freeIdx.length);
      freeIdx.forEach((i, k) => (g[k] = -r.gradient[i]));
      const prior = this.logPrior(full, freeIdx);
      freeIdx.forEach((i, k) => (g[k] -= prior.gradient[i]));
      return { f: -r.value - prior.value, g };
    };
    const loFree = Float64Array.from(freeIdx, (i) => lo[i]);
    const hiFree = Float64Array.from(freeIdx, (i) => hi[i]);
    let best: Float64Array | null = null;
    let bestF = Infinity;
    for (const s of starts) {
      const res = boxMinimize(objective, s, loFree, hiFree, { maxIterations: o.maxIterations, gradTol: 1e-5, relTol: 1e-9 });
      if (Number.isFinite(res.f) && res.f < bestF) {
        bestF = res.f;
        best = res.x;
      }
    }
    const chosen = Float64Array.from(base);
    if (best) freeIdx.forEach((i, k) => (chosen[i] = best![k]));
    this.hp = this.fromFull(chosen);
    this.factorise();
    return { logMarginalLikelihood: this.logMarginalLikelihood().value, starts: starts.length };
  }

  /**
   * Draws hyperparameter samples from the posterior p(θ | y) ∝ p(y | θ) p(θ) (prior:
   * lengthScalePrior if set, uniform in log space inside the bounds otherwise) by
   * coordinate-wise slice sampling with stepping out (Neal 2003), starting from the
   * current hyperparameters (normally the fitted ones). `burnIn` sweeps are discarded,
   * then one sample is kept every `thin` sweeps. Does not change this GP.
   */
  sampleHyperparameters(rng: Rng, nSamples: number, burnIn = 10, thin = 2): GPHyperparameters[] {
    const { freeIdx, lo, hi } = this.parameterSpace();
    const theta = this.fullLogParams(this.hp);
    if (this.n < 2 || freeIdx.length === 0 || nSamples < 1) return nSamples < 1 ? [] : [this.hyperparameters];
    const logPost = (t: Float64Array): number => {
      const v = this.logMarginalLikelihood(t, false).value + this.logPrior(t, freeIdx).value;
      return Number.isNaN(v) ? -Infinity : v;
    };
    let current = logPost(theta);
    const samples: GPHyperparameters[] = [];
    const width = 1; // initial bracket in log units
    for (let sweep = 0; samples.length < nSamples; sweep++) {
      for (const i of freeIdx) {
        const x0 = theta[i];
        const level = current - sampleExponential(rng);
        let left = Math.max(lo[i], x0 - width * rng.uniform());
        let right = Math.min(hi[i], left + width);
        const at = (v: number): number => {
          theta[i] = v;
          return logPost(theta);
        };
        for (let step = 0; step < 20 && left > lo[i] && at(left) > level; step++) left = Math.max(lo[i], left - width);
        for (let step = 0; step < 20 && right < hi[i] && at(right) > level; step++) right = Math.min(hi[i], right + width);
        // Shrink the bracket until a point above the level is found (x0 always is).
        for (let shrink = 0; ; shrink++) {
          const x1 = left + (right - left) * rng.uniform();
          const v = at(x1);
          if (v > level || shrink >= 60) {
            if (v > level) current = v;
            else {
              theta[i] = x0; // numerically stuck: keep the old value
            }
            break;
          }
          if (x1 < x0) left = x1;
          else right = x1;
        }
      }
      if (sweep >= burnIn && (sweep - burnIn) % thin === 0) samples.push(this.fromFull(Float64Array.from(theta)));
    }
    return samples;
  }

  /** A GP over the same data with the given hyperparameters (this one is unchanged). */
  withHyperparameters(hp: GPHyperparameters): GaussianProcess {
    const gp = new GaussianProcess(this.dim, this.options);
    gp.X = this.X;
    gp.n = this.n;
    gp.yRaw = this.yRaw;
    gp.yNorm = this.yNorm;
    gp.yMean = this.yMean;
    gp.yStd = this.yStd;
    gp.setHyperparameters(hp);
    return gp;
  }

  /** Posterior mean and latent variance at x, in the original units of y. */
  predict(x: ArrayLike<number>): Prediction {
    const { mean, variance } = this.predictNormalised(x, null);
    return { mean: mean * this.yStd + this.yMean, variance: variance * this.yStd * this.yStd };
  }

  /** As predict, plus the gradients of mean and variance with respect to x. */
  predictWithGradient(x: ArrayLike<number>): PredictionWithGradient {
    const D = this.dim;
    const grads = { dMean: new Float64Array(D), dVariance: new Float64Array(D) };
    const { mean, variance } = this.predictNormalised(x, grads);
    const s = this.yStd;
    for (let d = 0; d < D; d++) {
      grads.dMean[d] *= s;
      grads.dVariance[d] *= s * s;
    }
    return { mean: mean * s + this.yMean, variance: variance * s * s, dMean: grads.dMean, dVariance: grads.dVariance };
  }

  /** Training inputs as rows (copies), for callers that need to compare against them. */
  trainingInputs(): Float64Array[] {
    const rows: Float64Array[] = [];
    for (let i = 0; i < this.n; i++) rows.push(this.X.slice(i * this.dim, (i + 1) * this.dim));
    return rows;
  }

  /** Training targets in original units (copy). */
  trainingTargets(): Float64Array {
    return Float64Array.from(this.yRaw);
  }

  private predictNormalised(
    x: ArrayLike<number>,
    grads: { dMean: Float64Array; dVariance: Float64Array } | null,
  ): Prediction {
    const D = this.dim;
    if (x.length !== D) throw new Error(`GaussianProcess: point has ${x.length} coordinates, expected ${D}`);
    const n = this.n;
    const khp = this.hp;
    if (n === 0 || !this.L) return { mean: 0, variance: khp.signalVariance };
    const X = this.X;
    const kstar = new Float64Array(n);
    for (let i = 0; i < n; i++) kstar[i] = this.kernel.value(x, X.subarray(i * D, (i + 1) * D), khp);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += kstar[i] * this.alphaVec[i];
    const v = solveLower(this.L, n, kstar);
    let vv = 0;
    for (let i = 0; i < n; i++) vv += v[i] * v[i];
    const variance = Math.max(0, khp.signalVariance - vv);
    if (grads) {
      // ∂μ/∂x = Gᵀ a,  ∂σ²/∂x = −2 Gᵀ K_y⁻¹ k*,  G_i = ∂k(x, X_i)/∂x.
      const G = this.kernel.gradX(x, X, n, khp);
      const w = solveLowerTransposed(this.L, n, v);
      for (let i = 0; i < n; i++) {
        const ai = this.alphaVec[i];
        const wi = w[i];
        for (let d = 0; d < D; d++) {
          grads.dMean[d] += G[i * D + d] * ai;
          grads.dVariance[d] -= 2 * G[i * D + d] * wi;
        }
      }
      if (variance === 0) grads.dVariance.fill(0);
    }
    return { mean, variance };
  }

  private factorise(): void {
    const n = this.n;
    if (n === 0) {
      this.L = null;
      this.alphaVec = new Float64Array(0);
      this.jitter = 0;
      return;
    }
    const K = this.kernel.matrix(this.X, n, this.hp);
    for (let i = 0; i < n; i++) K[i * n + i] += this.hp.noise;
    const { l, jitter } = choleskyWithJitter(K, n);
    this.L = l;
    this.jitter = jitter;
    this.alphaVec = choleskySolve(l, n, this.yNorm);
  }

  /**
   * The fitted subset of the full log-parameter vector [log ℓ..., log σ², log α], the
   * bounds of every entry (log units) and the default start.
   */
  private parameterSpace(): { freeIdx: number[]; lo: Float64Array; hi: Float64Array; base: Float64Array } {
    const o = this.options;
    const P = this.kernel.nHyperparameters;
    const L = this.kernel.nLengthScales;
    const freeIdx: number[] = [];
    for (let i = 0; i < L; i++) freeIdx.push(i);
    if (o.fitSignalVariance) freeIdx.push(L);
    if (o.fitNoise) freeIdx.push(P);
    const lo = new Float64Array(P + 1);
    const hi = new Float64Array(P + 1);
    for (let i = 0; i < L; i++) {
      lo[i] = Math.log(o.lengthScaleBounds[0]);
      hi[i] = Math.log(o.lengthScaleBounds[1]);
    }
    lo[L] = Math.log(o.signalVarianceBounds[0]);
    hi[L] = Math.log(o.signalVarianceBounds[1]);
    lo[P] = Math.log(Math.max(o.noiseBounds[0], 1e-300));
    hi[P] = Math.log(o.noiseBounds[1]);
    const base = this.fullLogParams({
      lengthScales: new Float64Array(L).fill(clamp(o.initialLengthScale, o.lengthScaleBounds)),
      signalVariance: o.fitSignalVariance ? 1 : this.hp.signalVariance,
      noise: o.fitNoise ? clamp(Math.max(o.noise, o.noiseBounds[0]), o.noiseBounds) : o.noise,
    });
    return { freeIdx, lo, hi, base };
  }

  /**
   * log p(θ) up to a constant and its gradient (full layout): the normal prior on each
   * free log length scale when lengthScalePrior is set, on a free log α when noisePrior
   * is set; flat otherwise.
   */
  private logPrior(theta: Float64Array, freeIdx: readonly number[]): { value: number; gradient: Float64Array } {
    const gradient = new Float64Array(theta.length);
    const L = this.kernel.nLengthScales;
    const P = this.kernel.nHyperparameters;
    let value = 0;
    for (const i of freeIdx) {
      const prior = i < L ? this.options.lengthScalePrior : i === P ? this.options.noisePrior : null;
      if (!prior) continue;
      const t = (theta[i] - prior.mean) / prior.std;
      value -= 0.5 * t * t;
      gradient[i] = -t / prior.std;
    }
    return { value, gradient };
  }

  private fullLogParams(hp: GPHyperparameters): Float64Array {
    const P = this.kernel.nHyperparameters;
    const t = new Float64Array(P + 1);
    t.set(this.kernel.toLog(hp));
    t[P] = hp.noise > 0 ? Math.log(hp.noise) : -Infinity;
    return t;
  }

  private fromFull(theta: Float64Array): GPHyperparameters {
    const k = this.kernel.fromLog(theta);
    return { ...k, noise: Math.exp(theta[this.kernel.nHyperparameters]) };
  }
}

/** An Exponential(1) draw (−log U, U ∈ (0, 1]). */
function sampleExponential(rng: Rng): number {
  return -Math.log(1 - rng.uniform());
}

function clamp(v: number, b: readonly [number, number]): number {
  return Math.min(b[1], Math.max(b[0], v));
}
