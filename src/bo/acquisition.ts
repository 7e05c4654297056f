// Acquisition functions for maximisation, in the units of the objective y.
//
//   EI  (Jones, Schonlau & Welch 1998; as in the `bayesian-optimization` package):
//       EI(x)  = σ · h(z),   z = (μ − y_best − ξ) / σ,   h(z) = φ(z) + z Φ(z)
//   UCB (Srinivas et al. 2010):
//       UCB(x) = μ + κ σ
//
// μ, σ are the GP posterior mean and standard deviation (latent, original units).
// EI is maximised through log EI = log σ + log h(z), which ranks the same points but
// stays finite and informative far below the incumbent where EI itself underflows to 0
// (Ament et al. 2023, "Unexpected improvements to expected improvement"). log h is
// evaluated with a continued fraction for the Mills ratio when z ≪ 0, so there is no
// cancellation between φ(z) and z Φ(z).

import type { PredictionWithGradient } from './gp.js';

export type AcquisitionKind = 'ei' | 'ucb';

export type AcquisitionSpec =
  | { kind: 'ei'; /** incumbent (best observed y) */ best: number; /** ξ ≥ 0, default 0.01 */ xi: number }
  | { kind: 'ucb'; /** κ ≥ 0, default 2.576 */ kappa: number };

export const DEFAULT_XI = 0.01;
export const DEFAULT_KAPPA = 2.576;

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);
/** Below z = −CF_SWITCH, Φ and h go through the Mills-ratio continued fraction. */
const CF_SWITCH = 2;
const CF_TERMS = 120;

/** Standard normal density φ(z). */
export function normalPdf(z: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * z * z);
}

/** Standard normal distribution function Φ(z), accurate to a few ulps relative in both tails. */
export function normalCdf(z: number): number {
  if (z < -CF_SWITCH) return normalPdf(z) / millsInverse(-z);
  if (z > CF_SWITCH) return 1 - normalPdf(z) / millsInverse(z);
  return 0.5 * (1 + erfSeries(z / Math.SQRT2));
}

/** log h(z) with h(z) = φ(z) + z Φ(z) = E[max(Z + z, 0)], Z ~ N(0, 1). */
export function logH(z: number): number {
  if (z >= -CF_SWITCH) return Math.log(normalPdf(z) + z * normalCdf(z));
  const t = -z;
  const d = cfTail(t);
  const c = t + 1 / d;
  // h = φ(z) (1 − t R(t)) with R = 1/c and 1 − t/c = (c − t)/c = 1/(d c).
  return -0.5 * z * z - HALF_LOG_2PI - Math.log(d) - Math.log(c);
}

/** Expected improvement (plain, not logged). */
export function expectedImprovement(mean: number, std: number, best: number, xi: number): number {
  const a = mean - best - xi;
  if (!(std > 0)) return Math.max(a, 0);
  return std * Math.exp(logH(a / std));
}

export interface ScoreWithGradient {
  value: number;
  /** ∂value/∂mean. */
  dMean: number;
  /** ∂value/∂std. */
  dStd: number;
}

/** log EI and its derivatives with respect to the posterior mean and std. */
export function logExpectedImprovement(mean: number, std: number, best: number, xi: number): ScoreWithGradient {
  const a = mean - best - xi;
  if (!(std > 0)) {
    return a > 0 ? { value: Math.log(a), dMean: 1 / a, dStd: 0 } : { value: -Infinity, dMean: 0, dStd: 0 };
  }
  const z = a / std;
  // ∂ log h/∂z = Φ(z)/h(z); ∂ log EI/∂σ = φ(z)/(σ h(z)) (using h' = Φ).
  let cdfOverH: number;
  let pdfOverH: number;
  if (z >= -CF_SWITCH) {
    const pdf = normalPdf(z);
    const cdf = normalCdf(z);
    const h = pdf + z * cdf;
    cdfOverH = cdf / h;
    pdfOverH = pdf / h;
  } else {
    const t = -z;
    const d = cfTail(t);
    const c = t + 1 / d;
    cdfOverH = d; // Φ/h = (φ/c)/(φ/(dc))
    pdfOverH = d * c;
  }
  return { value: Math.log(std) + logH(z), dMean: cdfOverH / std, dStd: pdfOverH / std };
}

/** UCB and its derivatives. */
export function upperConfidenceBound(mean: number, std: number, kappa: number): ScoreWithGradient {
  return { value: mean + kappa * std, dMean: 1, dStd: kappa };
}

/**
 * The score the optimiser maximises at a point with posterior mean/variance:
 * log EI for 'ei', UCB for 'ucb'.
 */
export function acquisitionScore(spec: AcquisitionSpec, mean: number, variance: number): number {
  const std = Math.sqrt(Math.max(variance, 0));
  return spec.kind === 'ei'
    ? logExpectedImprovement(mean, std, spec.best, spec.xi).value
    : upperConfidenceBound(mean, std, spec.kappa).value;
}

/** The score and its gradient with respect to x, from a prediction with gradients. */
export function acquisitionScoreWithGradient(
  spec: AcquisitionSpec,
  p: PredictionWithGradient,
): { value: number; gradient: Float64Array } {
  const std = Math.sqrt(Math.max(p.variance, 0));
  const s =
    spec.kind === 'ei'
      ? logExpectedImprovement(p.mean, std, spec.best, spec.xi)
      : upperConfidenceBound(p.mean, std, spec.kappa);
  const D = p.dMean.length;
  const gradient = new Float64Array(D);
  for (let d = 0; d < D; d++) {
    const dStd = std > 0 ? p.dVariance[d] / (2 * std) : 0; // σ = √var
    gradient[d] = s.dMean * p.dMean[d] + s.dStd * dStd;
  }
  return { value: s.value, gradient };
}

/**
 * The score integrated over several GP models (one per hyperparameter sample; Snoek,
 * Larochelle & Adams 2012): log of the mean EI for 'ei' (log-sum-exp of the log EIs),
 * mean UCB for 'ucb'. With one model it equals acquisitionScore.
 */
export function integratedScore(spec: AcquisitionSpec, preds: readonly { mean: number; variance: number }[]): number {
  if (preds.length === 1) return acquisitionScore(spec, preds[0].mean, preds[0].variance);
  const scores = preds.map((p) => acquisitionScore(spec, p.mean, p.variance));
  return spec.kind === 'ei' ? logMeanExp(scores) : scores.reduce((a, b) => a + b, 0) / scores.length;
}

/** integratedScore and its gradient with respect to x. */
export function integratedScoreWithGradient(
  spec: AcquisitionSpec,
  preds: readonly PredictionWithGradient[],
): { value: number; gradient: Float64Array } {
  const parts = preds.map((p) => acquisitionScoreWithGradient(spec, p));
  if (parts.length === 1) return parts[0];
  const D = parts[0].gradient.length;
  const gradient = new Float64Array(D);
  if (spec.kind === 'ei') {
    // ∂ log((1/S) Σ e^{s_k}) = Σ w_k ∂s_k with w = softmax(s).
    const value = logMeanExp(parts.map((q) => q.value));
    if (value === -Infinity) return { value, gradient };
    for (const q of parts) {
      const w = Math.exp(q.value - value) / parts.length;
      if (w > 0) for (let d = 0; d < D; d++) gradient[d] += w * q.gradient[d];
    }
    return { value, gradient };
  }
  let value = 0;
  for (const q of parts) {
    value += q.value / parts.length;
    for (let d = 0; d < D; d++) gradient[d] += q.gradient[d] / parts.length;
  }
  return { value, gradient };
}

function logMeanExp(v: readonly number[]): number {
  let m = -Infinity;
  for (const x of v) m = Math.max(m, x);
  if (m === -Infinity || m === Infinity) return m;
  let s = 0;
  for (const x of v) s += Math.exp(x - m);
  return m + Math.log(s / v.length);
}

/**
 * erf(x) = (2/√π) e^{−x²} Σ_{n≥0} 2ⁿ x^{2n+1} / (1·3·…·(2n+1)) (Abramowitz & Stegun 7.1.6):
 * all terms positive, so no cancellation; used for |x| ≤ CF_SWITCH/√2.
 */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
}

/**
 * d(t) = t + 2/(t + 3/(t + 4/(t + …))), the tail of Laplace's continued fraction for the
 * Mills ratio: R(t) = Φ(−t)/φ(t) = 1/(t + 1/d(t)). Evaluated backwards, t ≥ CF_SWITCH.
 */
function cfTail(t: number): number {
  let v = t;
  for (let k = CF_TERMS; k >= 2; k--) v = t + k / v;
  return v;
}

/** 1/R(t) = φ(t)/Φ(−t) = t + 1/d(t). */
function millsInverse(t: number): number {
  return t + 1 / cfTail(t);
}
