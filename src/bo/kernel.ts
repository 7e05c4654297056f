// Matérn ν = 5/2 covariance (Rasmussen & Williams 2006, eq. 4.17):
//
//     k(x, x') = σ² · (1 + √5 r + 5 r² / 3) · exp(−√5 r),   r² = Σ_d (x_d − x'_d)² / ℓ_d²
//
// with one length scale shared by all dimensions ("isotropic", what scikit-learn's
// Matern(nu=2.5) does by default) or one per dimension ("ARD"). Hyperparameters are
// handled in log space, in the order θ = [log ℓ_1, ..., log ℓ_L, log σ²] (L = 1 or dim).
//
// Derivatives used below (f(r) = (1 + √5 r + 5r²/3) e^{−√5 r}, f'(r) = −(5/3) r (1 + √5 r) e^{−√5 r}):
//   ∂k/∂log ℓ_d = σ² (5/3)(1 + √5 r) e^{−√5 r} · (x_d − x'_d)² / ℓ_d²       (ARD)
//   ∂k/∂log ℓ   = σ² (5/3)(1 + √5 r) e^{−√5 r} · r²                         (isotropic)
//   ∂k/∂log σ²  = k
//   ∂k/∂x_d     = −σ² (5/3)(1 + √5 r) e^{−√5 r} · (x_d − x'_d) / ℓ_d²
// None of them divides by r, so they are smooth at r = 0.

const SQRT5 = Math.sqrt(5);

export type KernelKind = 'isotropic' | 'ard';

export interface KernelHyperparameters {
  /** Length 1 (isotropic) or dim (ARD). */
  lengthScales: Float64Array;
  /** σ², the prior variance k(x, x). */
  signalVariance: number;
}

/** Points are stored row-major: point i, coordinate d at X[i*dim + d]. */
export class Matern52 {
  readonly dim: number;
  readonly kind: KernelKind;

  constructor(dim: number, kind: KernelKind) {
    if (!Number.isInteger(dim) || dim < 1) throw new Error(`Matern52: bad dimension ${dim}`);
    this.dim = dim;
    this.kind = kind;
  }

  /** Number of length scales (1 or dim). */
  get nLengthScales(): number {
    return this.kind === 'ard' ? this.dim : 1;
  }

  /** Number of log-hyperparameters: length scales plus signal variance. */
  get nHyperparameters(): number {
    return this.nLengthScales + 1;
  }

  /** θ = [log ℓ..., log σ²] from hyperparameters. */
  toLog(hp: KernelHyperparameters): Float64Array {
    this.check(hp);
    const t = new Float64Array(this.nHyperparameters);
    for (let i = 0; i < hp.lengthScales.length; i++) t[i] = Math.log(hp.lengthScales[i]);
    t[this.nLengthScales] = Math.log(hp.signalVariance);
    return t;
  }

  /** Hyperparameters from θ = [log ℓ..., log σ²] (extra trailing entries are ignored). */
  fromLog(theta: ArrayLike<number>): KernelHyperparameters {
    const L = this.nLengthScales;
    const ls = new Float64Array(L);
    for (let i = 0; i < L; i++) ls[i] = Math.exp(theta[i]);
    return { lengthScales: ls, signalVariance: Math.exp(theta[L]) };
  }

  /** k(a, b) for single points. */
  value(a: ArrayLike<number>, b: ArrayLike<number>, hp: KernelHyperparameters): number {
    return hp.signalVariance * maternShape(Math.sqrt(this.sqDist(a, 0, b, 0, hp.lengthScales)));
  }

  /** K(X, X), n×n, without any noise on the diagonal. */
  matrix(X: Float64Array, n: number, hp: KernelHyperparameters): Float64Array {
    this.check(hp);
    const k = new Float64Array(n * n);
    const s2 = hp.signalVariance;
    for (let i = 0; i < n; i++) {
      k[i * n + i] = s2;
      for (let j = 0; j < i; j++) {
        const v = s2 * maternShape(Math.sqrt(this.sqDist(X, i * this.dim, X, j * this.dim, hp.lengthScales)));
        k[i * n + j] = v;
        k[j * n + i] = v;
      }
    }
    return k;
  }

  /** K(A, B), na×nb (row i: point i of A). */
  cross(A: Float64Array, na: number, B: Float64Array, nb: number, hp: KernelHyperparameters): Float64Array {
    this.check(hp);
    const k = new Float64Array(na * nb);
    for (let i = 0; i < na; i++) {
      for (let j = 0; j < nb; j++) {
        k[i * nb + j] =
          hp.signalVariance * maternShape(Math.sqrt(this.sqDist(A, i * this.dim, B, j * this.dim, hp.lengthScales)));
      }
    }
    return k;
  }

  /**
   * ∂K/∂θ_j for every log-hyperparameter θ_j (order [log ℓ..., log σ²]), each n×n.
   * Materialised for clarity and tests; the GP uses the fused `contractGradients`.
   */
  matrixGradients(X: Float64Array, n: number, hp: KernelHyperparameters): Float64Array[] {
    const P = this.nHyperparameters;
    const grads: Float64Array[] = [];
    for (let p = 0; p < P; p++) grads.push(new Float64Array(n * n));
    const g = new Float64Array(P);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        this.pairGradient(X, i * this.dim, X, j * this.dim, hp, g);
        for (let p = 0; p < P; p++) {
          grads[p][i * n + j] = g[p];
          grads[p][j * n + i] = g[p];
        }
      }
    }
    return grads;
  }

  /**
   * out_j = Σ_{a,b} W_ab · ∂K_ab/∂θ_j for a symmetric n×n W, without materialising ∂K.
   * With W = ααᵀ − K⁻¹ this is twice the log-marginal-likelihood gradient.
   */
  contractGradients(X: Float64Array, n: number, hp: KernelHyperparameters, W: Float64Array): Float64Array {
    const P = this.nHyperparameters;
    const out = new Float64Array(P);
    const g = new Float64Array(P);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        this.pairGradient(X, i * this.dim, X, j * this.dim, hp, g);
        const w = i === j ? W[i * n + i] : W[i * n + j] + W[j * n + i];
        for (let p = 0; p < P; p++) out[p] += w * g[p];
      }
    }
    return out;
  }

  /**
   * ∂k(x, X_i)/∂x for every row X_i: an n×dim row-major matrix (row i = gradient of
   * k(x, X_i) with respect to x).
   */
  gradX(x: ArrayLike<number>, X: Float64Array, n: number, hp: KernelHyperparameters): Float64Array {
    const D = this.dim;
    const out = new Float64Array(n * D);
    const ls = hp.lengthScales;
    const iso = ls.length === 1;
    for (let i = 0; i < n; i++) {
      const r = Math.sqrt(this.sqDist(x, 0, X, i * D, ls));
      const c = -hp.signalVariance * (5 / 3) * (1 + SQRT5 * r) * Math.exp(-SQRT5 * r);
      for (let d = 0; d < D; d++) {
        const l = iso ? ls[0] : ls[d];
        out[i * D + d] = (c * (x[d] - X[i * D + d])) / (l * l);
      }
    }
    return out;
  }

  /** ∂k(a, b)/∂θ_p for one pair, written into g (length nHyperparameters). */
  private pairGradient(
    A: ArrayLike<number>,
    aOff: number,
    B: ArrayLike<number>,
    bOff: number,
    hp: KernelHyperparameters,
    g: Float64Array,
  ): void {
    const D = this.dim;
    const ls = hp.lengthScales;
    const L = ls.length;
    const r2 = this.sqDist(A, aOff, B, bOff, ls);
    const r = Math.sqrt(r2);
    const e = Math.exp(-SQRT5 * r);
    const c = hp.signalVariance * (5 / 3) * (1 + SQRT5 * r) * e;
    if (L === 1) {
      g[0] = c * r2;
    } else {
      for (let d = 0; d < D; d++) {
        const diff = (A[aOff + d] - B[bOff + d]) / ls[d];
        g[d] = c * diff * diff;
      }
    }
    g[L] = hp.signalVariance * (1 + SQRT5 * r + (5 / 3) * r2) * e;
  }

  /** r² between A[aOff..] and B[bOff..] with length scales ls (length 1 or dim). */
  private sqDist(A: ArrayLike<number>, aOff: number, B: ArrayLike<number>, bOff: number, ls: Float64Array): number {
    let s = 0;
    if (ls.length === 1) {
      for (let d = 0; d < this.dim; d++) {
        const t = A[aOff + d] - B[bOff + d];
        s += t * t;
      }
      return s / (ls[0] * ls[0]);
    }
    for (let d = 0; d < this.dim; d++) {
      const t = (A[aOff + d] - B[bOff + d]) / ls[d];
      s += t * t;
    }
    return s;
  }

  private check(hp: KernelHyperparameters): void {
    if (hp.lengthScales.length !== this.nLengthScales) {
      throw new Error(
        `Matern52: ${this.kind} kernel in ${this.dim} dimensions needs ${this.nLengthScales} length scale(s), got ${hp.lengthScales.length}`,
      );
    }
  }
}

/** f(r) = (1 + √5 r + 5r²/3) e^{−√5 r}, the Matérn-5/2 correlation at scaled distance r. */
export function maternShape(r: number): number {
  return (1 + SQRT5 * r + (5 / 3) * r * r) * Math.exp(-SQRT5 * r);
}
