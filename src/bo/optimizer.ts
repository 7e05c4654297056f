// Bayesian optimiser for DF-Merge's coefficients (docs/design.md §1 "Bayesian optimisation"):
// nInitial random points, then each suggestion maximises an acquisition function (EI or
// UCB) of a Matérn-5/2 GP fitted to the observations. Maximises y.
//
// How a suggestion is made (suggestBatch(q), suggest() = suggestBatch(1)[0]):
//   1. inputs are mapped to the unit cube; failed evaluations are imputed with the worst
//      successful y so the GP learns to avoid them;
//   2. GP hyperparameters are fitted (MAP: likelihood × weak length-scale prior) with
//      seeded restarts; optionally also sampled, and the acquisition averaged over them;
//   3. the acquisition is scored on a scrambled Sobol' set plus Gaussian perturbations
//      of the best observed points; the best few are refined by projected L-BFGS; late
//      in a run every other suggestion does this inside a trust region around the
//      incumbent (localPhase);
//   4. for q > 1, each chosen point joins the GP as a "kriging believer" fantasy
//      (y = posterior mean, hyperparameters kept), and the next point is chosen.
//
// Reproducibility: a suggestion is a pure function of (options, observations). All
// randomness comes from Rng([seed, purpose, nObservations, ...]), so replaying the
// observations of an interrupted run (fromState) gives the same next suggestion.

import { DEFAULT_KAPPA, DEFAULT_XI, integratedScore, integratedScoreWithGradient } from './acquisition.js';
import type { AcquisitionKind, AcquisitionSpec } from './acquisition.js';
import { boxMinimize } from './boxminimize.js';
import { GaussianProcess, type GPOptions } from './gp.js';
import type { KernelKind } from './kernel.js';
import { SOBOL_MAX_DIM, Sobol } from './lowdiscrepancy.js';
import { Rng } from './rng.js';

/**
 * GP settings the optimiser uses unless `gp` overrides them. On top of the GP's own
 * defaults (α = 1e-6, σ² fitted, length scales in [1e-2, 1e2] on the unit cube, 1 + 4
 * starts) the length-scale fit is a MAP estimate under log ℓ ~ N(log 0.5, 0.75²): with
 * ~10 points in several dimensions plain maximum likelihood gives erratic length scales;
 * this weak prior nearly halved the regret after 20 evaluations on Hartmann-6 (see
 * benchmarks/bo/README.md, which also shows what it costs later in a run). Pass
 * `gp: { lengthScalePrior: null }` for plain maximum likelihood.
 */
export const DEFAULT_GP_OPTIONS: Readonly<Omit<GPOptions, 'kernel'>> = Object.freeze({
  lengthScalePrior: Object.freeze({ mean: Math.log(0.5), std: 0.75 }),
});

/** The default local phase (see BayesianOptimizerOptions.localPhase). */
export function defaultLocalPhase(nInitial: number): { after: number; every: number; radius: number } {
  return { after: 3 * nInitial, every: 2, radius: 0.1 };
}

/** Purposes that key the random streams (part of the state format: do not renumber). */
const STREAM_INITIAL = 1;
const STREAM_FIT = 2;
const STREAM_CANDIDATES = 3;
const STREAM_RANDOM = 4;
const STREAM_SAMPLE = 5;

export interface BayesianOptimizerOptions {
  /** [lo, hi] per dimension, lo < hi. */
  bounds: readonly (readonly [number, number])[];
  /** Seed of every random decision (default 0). */
  seed?: number;
  /** Number of random initial points before the GP is used (default 10). */
  nInitial?: number;
  /** 'ei' (default) or 'ucb'. */
  acquisition?: AcquisitionKind;
  /** EI exploration margin ξ in units of y (default 0.01). */
  xi?: number;
  /** UCB exploration weight κ (default 2.576). */
  kappa?: number;
  /** 'ard' (default: a length scale per dimension) or 'isotropic' (the paper's setting). */
  kernel?: KernelKind;
  /** GP options (noise, bounds, restarts, prior, ...) over DEFAULT_GP_OPTIONS; `kernel` above takes precedence. */
  gp?: Omit<GPOptions, 'kernel'>;
  /** Number of quasi-random acquisition candidates (default 4096). */
  nCandidates?: number;
  /** Number of best candidates refined by local gradient search (default 5). */
  nLocal?: number;
  /**
   * Number of GP hyperparameter samples (slice sampling from their posterior) over which
   * the acquisition is averaged ("integrated acquisition", Snoek et al. 2012); 0 (default)
   * uses the fitted hyperparameters alone. 8 costs ~5× more time per suggestion and made
   * no measurable difference on Branin and Hartmann-6 (benchmarks/bo/README.md).
   */
  hyperparameterSamples?: number;
  /**
   * Candidates closer than this to an observed or already chosen point (largest
   * coordinate difference, as a fraction of the box) are refused (default 1e-9: only
   * exact repeats).
   */
  minDistance?: number;
  /** Local acquisition searches started next to the best observed points, on top of nLocal (default 0). */
  bestStarts?: number;
  /**
   * A local phase late in a run: from `after` observations on, every `every`-th
   * suggestion maximises the acquisition only inside a trust region around the incumbent
   * (half-width `radius` scaled by the relative length scales); the others stay global.
   * Default { after: 3 · nInitial, every: 2, radius: 0.1 } (benchmarks/bo/README.md:
   * it lowered the regret after 60 evaluations on Styblinski–Tang-8 and Hartmann-3 and
   * changed nothing measurable elsewhere); null: always global.
   */
  localPhase?: { after: number; every: number; radius: number } | null;
  /**
   * When the observed values lie on a grid of step h (an accuracy on n examples: h = 1/n),
   * treat the rounding as noise: α ≥ h²/12 in the GP's normalised units (the variance of
   * a uniform rounding error), so the GP smooths over plateaus instead of interpolating
   * every step. Default false.
   */
  quantisedNoise?: boolean;
}

export interface Observation {
  x: number[];
  /** The objective value, or null for a failed evaluation. */
  y: number | null;
}

export interface BayesianOptimizerState {
  version: 1;
  options: BayesianOptimizerOptions;
  observations: Observation[];
}

export interface BestObservation {
  x: number[];
  y: number;
  /** Position in the observation list. */
  index: number;
}

type ResolvedOptions = Required<Omit<BayesianOptimizerOptions, 'gp'>> & { gp: GPOptions };

/** Two unit-cube points closer than this in every coordinate count as the same point. */
const SAME_POINT_TOL = 1e-9;

export class BayesianOptimizer {
  readonly dim: number;
  private readonly opts: ResolvedOptions;
  private readonly original: BayesianOptimizerOptions;
  private readonly obs: Observation[] = [];

  constructor(options: BayesianOptimizerOptions) {
    const bounds = options.bounds;
    if (!Array.isArray(bounds) || bounds.length === 0) throw new Error('BayesianOptimizer: bounds must list [lo, hi] for at least one dimension');
    bounds.forEach(([lo, hi], d) => {
      if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) {
        throw new Error(`BayesianOptimizer: bounds[${d}] = [${lo}, ${hi}] must be finite with lo < hi`);
      }
    });
    const o: ResolvedOptions = {
      bounds: bounds.map(([lo, hi]) => [lo, hi] as const),
      seed: options.seed ?? 0,
      nInitial: options.nInitial ?? 10,
      acquisition: options.acquisition ?? 'ei',
      xi: options.xi ?? DEFAULT_XI,
      kappa: options.kappa ?? DEFAULT_KAPPA,
      kernel: options.kernel ?? 'ard',
      gp: { ...DEFAULT_GP_OPTIONS, ...(options.gp ?? {}), kernel: options.kernel ?? 'ard' },
      nCandidates: options.nCandidates ?? 4096,
      nLocal: options.nLocal ?? 5,
      hyperparameterSamples: options.hyperparameterSamples ?? 0,
      minDistance: options.minDistance ?? SAME_POINT_TOL,
      bestStarts: options.bestStarts ?? 0,
      localPhase: options.localPhase === undefined ? defaultLocalPhase(options.nInitial ?? 10) : options.localPhase,
      quantisedNoise: options.quantisedNoise ?? false,
    };
    if (!Number.isSafeInteger(o.seed)) throw new Error(`BayesianOptimizer: seed must be a safe integer, got ${o.seed}`);
    if (!(Number.isInteger(o.nInitial) && o.nInitial >= 1)) throw new Error('BayesianOptimizer: nInitial must be an integer ≥ 1');
    if (o.acquisition !== 'ei' && o.acquisition !== 'ucb') throw new Error(`BayesianOptimizer: unknown acquisition '${String(o.acquisition)}' (use 'ei' or 'ucb')`);
    if (!(o.xi >= 0) || !(o.kappa >= 0)) throw new Error('BayesianOptimizer: xi and kappa must be ≥ 0');
    if (!(Number.isInteger(o.nCandidates) && o.nCandidates >= 1)) throw new Error('BayesianOptimizer: nCandidates must be an integer ≥ 1');
    if (!(Number.isInteger(o.nLocal) && o.nLocal >= 0)) throw new Error('BayesianOptimizer: nLocal must be an integer ≥ 0');
    if (!(Number.isInteger(o.hyperparameterSamples) && o.hyperparameterSamples >= 0)) {
      throw new Error('BayesianOptimizer: hyperparameterSamples must be an integer ≥ 0');
    }
    if (!(o.minDistance >= SAME_POINT_TOL && o.minDistance < 0.5)) throw new Error(`BayesianOptimizer: minDistance must be in [${SAME_POINT_TOL}, 0.5), got ${o.minDistance}`);
    if (!(Number.isInteger(o.bestStarts) && o.bestStarts >= 0)) throw new Error('BayesianOptimizer: bestStarts must be an integer ≥ 0');
    const lp = o.localPhase;
    if (lp !== null && !(Number.isInteger(lp.after) && lp.after >= 0 && Number.isInteger(lp.every) && lp.every >= 1 && lp.radius > 0)) {
      throw new Error('BayesianOptimizer: localPhase needs integers after ≥ 0, every ≥ 1 and radius > 0');
    }
    this.dim = bounds.length;
    this.opts = o;
    this.original = JSON.parse(JSON.stringify(options)) as BayesianOptimizerOptions;
  }

  /** Rebuilds an optimiser by replaying a saved state's observations. */
  static fromState(state: BayesianOptimizerState): BayesianOptimizer {
    if (state.version !== 1) throw new Error(`BayesianOptimizer: unsupported state version ${String(state.version)}`);
    const bo = new BayesianOptimizer(state.options);
    for (const o of state.observations) {
      if (o.y === null) bo.observeFailure(o.x);
      else bo.observe(o.x, o.y);
    }
    return bo;
  }

  /** JSON-serialisable state: options and every observation in order. */
  state(): BayesianOptimizerState {
    return {
      version: 1,
      options: JSON.parse(JSON.stringify(this.original)) as BayesianOptimizerOptions,
      observations: this.obs.map((o) => ({ x: [...o.x], y: o.y })),
    };
  }

  /** Observations so far (copies). */
  get observations(): Observation[] {
    return this.obs.map((o) => ({ x: [...o.x], y: o.y }));
  }

  /** Records an evaluation: y = f(x), to be maximised. */
  observe(x: ArrayLike<number>, y: number): void {
    if (!Number.isFinite(y)) {
      throw new Error(`BayesianOptimizer: observed value ${y} is not finite; record a failed evaluation with observeFailure(x)`);
    }
    this.obs.push({ x: this.checkPoint(x), y });
  }

  /**
   * Records a failed evaluation at x. It stays in the history; for the GP it counts as
   * the worst successful value seen, which steers later suggestions away from it.
   */
  observeFailure(x: ArrayLike<number>): void {
    this.obs.push({ x: this.checkPoint(x), y: null });
  }

  /** The best successful observation, or undefined if there is none. */
  best(): BestObservation | undefined {
    let best: BestObservation | undefined;
    this.obs.forEach((o, index) => {
      if (o.y !== null && (best === undefined || o.y > best.y)) best = { x: [...o.x], y: o.y, index };
    });
    return best;
  }

  /** The next point to evaluate. Calling it again without observing returns the same point. */
  suggest(): number[] {
    return this.suggestBatch(1)[0];
  }

  /** q distinct points to evaluate in parallel (kriging believer). */
  suggestBatch(q: number): number[][] {
    if (!(Number.isInteger(q) && q >= 1)) throw new Error(`BayesianOptimizer: batch size must be an integer ≥ 1, got ${q}`);
    const k = this.obs.length;
    const unit: Float64Array[] = []; // chosen points, unit cube
    const taken: Float64Array[] = this.obs.map((o) => this.toUnit(o.x));
    const { X, y } = this.gpData();
    // The GP models: the fitted one, or one per hyperparameter sample.
    let models: GaussianProcess[] | null = null;
    const fX: Float64Array[] = [...X];
    const fy: number[] = [...y];
    const meanOver = (ms: GaussianProcess[], p: Float64Array): number =>
      ms.reduce((a, m) => a + m.predict(p).mean, 0) / ms.length;
    for (let i = 0; i < q; i++) {
      let u: Float64Array | null = null;
      if (k + i < this.opts.nInitial) {
        u = this.initialPoint(k + i);
      } else if (X.length >= 2) {
        if (!models) {
          const gp = new GaussianProcess(this.dim, this.gpOptionsFor(y));
          gp.setData(X, y);
          gp.fitHyperparameters(new Rng([this.opts.seed, STREAM_FIT, k]));
          const S = this.opts.hyperparameterSamples;
          models =
            S > 0 ? gp.sampleHyperparameters(new Rng([this.opts.seed, STREAM_SAMPLE, k]), S).map((hp) => gp.withHyperparameters(hp)) : [gp];
          // Points of this batch already chosen from the initial design become fantasies too.
          for (const p of unit) {
            fX.push(p);
            fy.push(meanOver(models, p));
          }
          if (unit.length > 0) for (const m of models) m.setData(fX, fy);
        }
        const lp = this.opts.localPhase;
        const local = lp !== null && k + i >= lp.after && (k + i - lp.after) % lp.every === 0;
        const region = local ? this.localRegion(models[0], fX, fy) : null;
        u = this.maximiseAcquisition(models, fX, fy, new Rng([this.opts.seed, STREAM_CANDIDATES, k, i]), taken, region);
        if (u) {
          // Kriging believer: the point joins the data with its predicted mean as value.
          fX.push(u);
          fy.push(meanOver(models, u));
          if (i + 1 < q) for (const m of models) m.setData(fX, fy);
        }
      }
      // Too few successful observations for a GP, or no admissible candidate: random point.
      if (!u || isTaken(u, taken)) u = this.randomPoint(new Rng([this.opts.seed, STREAM_RANDOM, k, i]), taken);
      unit.push(u);
      taken.push(u);
    }
    return unit.map((u) => this.fromUnit(u));
  }

  /** Point j of the initial design (uniform random, keyed by (seed, j)). */
  private initialPoint(j: number): Float64Array {
    const rng = new Rng([this.opts.seed, STREAM_INITIAL, j]);
    return Float64Array.from({ length: this.dim }, () => rng.uniform());
  }

  private randomPoint(rng: Rng, taken: Float64Array[]): Float64Array {
    for (;;) {
      const u = Float64Array.from({ length: this.dim }, () => rng.uniform());
      if (!isTaken(u, taken)) return u;
    }
  }

  /**
   * The GP options for targets y: the configured ones, with the noise raised to the
   * quantisation floor when `quantisedNoise` is on and y lies on a grid.
   */
  private gpOptionsFor(y: readonly number[]): GPOptions {
    const g = this.opts.gp;
    if (!this.opts.quantisedNoise) return g;
    const floor = quantisationNoise(y);
    if (floor === 0) return g;
    if (g.fitNoise) {
      const [lo, hi] = g.noiseBounds ?? [1e-6, 1e-1];
      return { ...g, noiseBounds: [Math.min(Math.max(lo, floor), hi), hi] };
    }
    return { ...g, noise: Math.max(g.noise ?? 1e-6, floor) };
  }

  /** GP training data in the unit cube; failures imputed with the worst successful y. */
  private gpData(): { X: Float64Array[]; y: number[] } {
    const X: Float64Array[] = [];
    const y: number[] = [];
    let worst = Infinity;
    for (const o of this.obs) if (o.y !== null) worst = Math.min(worst, o.y);
    for (const o of this.obs) {
      if (o.y !== null) {
        X.push(this.toUnit(o.x));
        y.push(o.y);
      } else if (Number.isFinite(worst)) {
        X.push(this.toUnit(o.x));
        y.push(worst);
      }
    }
    // Successful-only count decides whether a GP is possible; imputed failures need a real y.
    return X.length >= 2 && Number.isFinite(worst) ? { X, y } : { X: [], y: [] };
  }

  /**
   * Maximises the acquisition (averaged over the GP models) over the unit cube, or over
   * `region` when given; null if every candidate is taken. X, y: the models' current data
   * (observations plus fantasies).
   */
  private maximiseAcquisition(
    models: GaussianProcess[],
    X: Float64Array[],
    y: number[],
    rng: Rng,
    taken: Float64Array[],
    region: { lo: Float64Array; hi: Float64Array } | null = null,
  ): Float64Array | null {
    const D = this.dim;
    const spec: AcquisitionSpec =
      this.opts.acquisition === 'ei'
        ? { kind: 'ei', best: Math.max(...y), xi: this.opts.xi }
        : { kind: 'ucb', kappa: this.opts.kappa };
    const score = (u: Float64Array): number => integratedScore(spec, models.map((m) => m.predict(u)));
    const lo = region ? region.lo : new Float64Array(D);
    const hi = region ? region.hi : new Float64Array(D).fill(1);
    const clip = (v: number, d: number): number => Math.min(hi[d], Math.max(lo[d], v));
    const refused = (u: Float64Array): boolean => isTaken(u, taken, this.opts.minDistance);

    // Candidates: scrambled Sobol' points plus perturbations of the best observed points.
    const nC = this.opts.nCandidates;
    const cands: Float64Array[] = [];
    const raw = D <= SOBOL_MAX_DIM ? new Sobol(D, rng).draw(nC) : Array.from({ length: nC }, () => Float64Array.from({ length: D }, () => rng.uniform()));
    for (const u of raw) cands.push(region ? Float64Array.from(u, (v, d) => lo[d] + v * (hi[d] - lo[d])) : u);
    const order = y.map((v, i) => i).sort((a, b) => y[b] - y[a] || a - b);
    const nTop = Math.min(5, order.length);
    const perTop = Math.max(1, Math.floor(nC / (8 * Math.max(nTop, 1))));
    for (let t = 0; t < nTop; t++) {
      const centre = X[order[t]];
      for (let c = 0; c < perTop; c++) {
        const scale = c % 2 === 0 ? 0.02 : 0.1;
        cands.push(Float64Array.from(centre, (v, d) => clip(v + scale * rng.normal(), d)));
      }
    }

    const scored: { u: Float64Array; s: number }[] = [];
    for (const u of cands) {
      if (refused(u)) continue;
      const s = score(u);
      if (!Number.isNaN(s)) scored.push({ u, s });
    }
    if (scored.length === 0) return null;
    scored.sort((a, b) => b.s - a.s);

    let best = scored[0];
    const starts: { u: Float64Array; s: number }[] = [];
    // Local searches from just next to the best observed points (where EI's maximiser
    // usually is late in a run), then from the best-scoring candidates.
    for (let t = 0; t < Math.min(this.opts.bestStarts, order.length); t++) {
      const u = Float64Array.from(X[order[t]], (v, d) => clip(v + 1e-3 * rng.normal(), d));
      const s = score(u);
      if (Number.isFinite(s)) starts.push({ u, s });
    }
    for (const c of scored) {
      if (starts.length >= this.opts.nLocal + Math.min(this.opts.bestStarts, order.length)) break;
      if (!Number.isFinite(c.s)) break;
      if (starts.some((s) => maxAbsDiff(s.u, c.u) < 1e-3)) continue;
      starts.push(c);
    }
    for (const start of starts) {
      const res = boxMinimize(
        (u) => {
          const r = integratedScoreWithGradient(spec, models.map((m) => m.predictWithGradient(u)));
          for (let d = 0; d < D; d++) r.gradient[d] = -r.gradient[d];
          return { f: -r.value, g: r.gradient };
        },
        start.u,
        lo,
        hi,
        { maxIterations: 100, gradTol: 1e-7, relTol: 1e-12 },
      );
      const s = -res.f;
      if (s > best.s && !refused(res.x)) best = { u: res.x, s };
    }
    return best.u;
  }

  /**
   * The trust region of a local-phase suggestion: a box around the incumbent with
   * half-width radius · ℓ_d / (geometric mean of ℓ) in dimension d (TuRBO's shape,
   * Eriksson et al. 2019), inside the unit cube.
   */
  private localRegion(model: GaussianProcess, X: Float64Array[], y: number[]): { lo: Float64Array; hi: Float64Array } {
    const D = this.dim;
    let bi = 0;
    for (let i = 1; i < y.length; i++) if (y[i] > y[bi]) bi = i;
    const ls = model.hyperparameters.lengthScales;
    const l = (d: number): number => (ls.length === 1 ? ls[0] : ls[d]);
    let g = 0;
    for (let d = 0; d < D; d++) g += Math.log(l(d)) / D;
    const radius = this.opts.localPhase!.radius;
    const lo = new Float64Array(D);
    const hi = new Float64Array(D);
    for (let d = 0; d < D; d++) {
      const w = Math.min(0.5, radius * (l(d) / Math.exp(g)));
      lo[d] = Math.max(0, X[bi][d] - w);
      hi[d] = Math.min(1, X[bi][d] + w);
    }
    return { lo, hi };
  }

  private checkPoint(x: ArrayLike<number>): number[] {
    if (x.length !== this.dim) throw new Error(`BayesianOptimizer: point has ${x.length} coordinates, expected ${this.dim}`);
    const out: number[] = [];
    for (let d = 0; d < this.dim; d++) {
      const v = x[d];
      const [lo, hi] = this.opts.bounds[d];
      const slack = 1e-9 * (hi - lo);
      if (!Number.isFinite(v) || v < lo - slack || v > hi + slack) {
        throw new Error(`BayesianOptimizer: coordinate ${d} = ${v} is outside its bounds [${lo}, ${hi}]`);
      }
      out.push(v);
    }
    return out;
  }

  private toUnit(x: readonly number[]): Float64Array {
    return Float64Array.from(x, (v, d) => {
      const [lo, hi] = this.opts.bounds[d];
      return (v - lo) / (hi - lo);
    });
  }

  private fromUnit(u: Float64Array): number[] {
    return Array.from(u, (v, d) => {
      const [lo, hi] = this.opts.bounds[d];
      return Math.min(hi, Math.max(lo, lo + clamp01(v) * (hi - lo)));
    });
  }
}

/**
 * The rounding-noise variance h²/12 of values on a grid of step h, divided by the
 * (population) variance of y as the GP normalises it; 0 when y is not on a grid. y lies on
 * a grid when at least two values tie and the gaps between sorted distinct values have a
 * common divisor h (Euclid's algorithm to a tolerance) of at least 10⁻⁵ of their range.
 */
export function quantisationNoise(y: readonly number[]): number {
  const distinct = [...new Set(y)].sort((a, b) => a - b);
  if (distinct.length < 2 || distinct.length === y.length) return 0;
  const range = distinct[distinct.length - 1] - distinct[0];
  const tol = 1e-9 * Math.max(1, Math.abs(distinct[0]), Math.abs(distinct[distinct.length - 1]));
  let h = 0;
  for (let i = 1; i < distinct.length; i++) {
    let a = Math.max(h, distinct[i] - distinct[i - 1]);
    let b = Math.min(h, distinct[i] - distinct[i - 1]);
    while (b > tol) [a, b] = [b, a % b];
    h = a;
  }
  if (!(h >= 1e-5 * range)) return 0;
  const mean = y.reduce((a, b) => a + b, 0) / y.length;
  const variance = y.reduce((a, v) => a + (v - mean) ** 2, 0) / y.length;
  return variance > 0 ? (h * h) / 12 / variance : 0;
}

function clamp01(v: number): number {
  return Math.min(1, Math.max(0, v));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Whether u is within tol (max-norm, unit cube) of a taken point. */
function isTaken(u: ArrayLike<number>, taken: readonly Float64Array[], tol = SAME_POINT_TOL): boolean {
  for (const t of taken) if (maxAbsDiff(u, t) < tol) return true;
  return false;
}
