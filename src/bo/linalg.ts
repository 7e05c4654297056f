// Small dense linear algebra for the Gaussian process: everything is a row-major
// Float64Array of an n×n matrix (element (i, j) at i*n + j) or a length-n vector.
// The GP never sees more than a few hundred points, so plain O(n³) loops are the
// right tool; no BLAS, no allocation inside inner loops.

/**
 * Cholesky factorisation A = L Lᵀ of a symmetric positive-definite matrix (only the
 * lower triangle of `a` is read). Returns the lower-triangular factor (upper triangle
 * zero), or null if a pivot is not strictly positive and finite (A not numerically PD).
 */
export function cholesky(a: Float64Array, n: number): Float64Array | null {
  if (a.length !== n * n) throw new Error(`cholesky: matrix has ${a.length} entries, expected ${n}×${n}`);
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const rowJ = j * n;
    let d = a[rowJ + j];
    for (let k = 0; k < j; k++) d -= l[rowJ + k] * l[rowJ + k];
    if (!(d > 0) || !Number.isFinite(d)) return null;
    const ljj = Math.sqrt(d);
    l[rowJ + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const rowI = i * n;
      let s = a[rowI + j];
      for (let k = 0; k < j; k++) s -= l[rowI + k] * l[rowJ + k];
      l[rowI + j] = s / ljj;
    }
  }
  return l;
}

export interface JitteredCholesky {
  /** Lower-triangular factor of A + jitter·I. */
  l: Float64Array;
  /** Diagonal jitter that had to be added (0 when A factorised as given). */
  jitter: number;
}

/**
 * Cholesky with jitter escalation: try A, then A + j·I with j = `firstJitter`·mean(diag A),
 * multiplied by 10 per attempt, up to `maxTries` attempts. Throws if all fail
 * (which only happens for matrices with NaN/Inf or wildly indefinite ones).
 */
export function choleskyWithJitter(
  a: Float64Array,
  n: number,
  firstJitter = 1e-10,
  maxTries = 8,
): JitteredCholesky {
  const l0 = cholesky(a, n);
  if (l0) return { l: l0, jitter: 0 };
  let meanDiag = 0;
  for (let i = 0; i < n; i++) meanDiag += Math.abs(a[i * n + i]);
  meanDiag = n > 0 ? meanDiag / n : 1;
  if (!(meanDiag > 0) || !Number.isFinite(meanDiag)) meanDiag = 1;
  const b = new Float64Array(a);
  let jitter = firstJitter * meanDiag;
  for (let t = 0; t < maxTries; t++, jitter *= 10) {
    for (let i = 0; i < n; i++) b[i * n + i] = a[i * n + i] + jitter;
    const l = cholesky(b, n);
    if (l) return { l, jitter };
  }
  throw new Error(
    `cholesky: matrix of size ${n} is not positive definite even with jitter ${jitter / 10} added to the diagonal`,
  );
}

/** Solves L x = b by forward substitution (L lower-triangular, row-major n×n). */
export function solveLower(l: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const row = i * n;
    let s = b[i];
    for (let k = 0; k < i; k++) s -= l[row + k] * x[k];
    x[i] = s / l[row + i];
  }
  return x;
}

/** Solves Lᵀ x = b by back substitution, reading only the lower-triangular L. */
export function solveLowerTransposed(l: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  const x = Float64Array.from(b as ArrayLike<number>);
  for (let i = n - 1; i >= 0; i--) {
    x[i] /= l[i * n + i];
    const xi = x[i];
    // column i of Lᵀ above the diagonal = row i of L left of the diagonal
    const row = i * n;
    for (let k = 0; k < i; k++) x[k] -= l[row + k] * xi;
  }
  return x;
}

/** Solves (L Lᵀ) x = b given the Cholesky factor L. */
export function choleskySolve(l: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  return solveLowerTransposed(l, n, solveLower(l, n, b));
}

/** log det(L Lᵀ) = 2 Σ log L_ii. */
export function logDetFromCholesky(l: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.log(l[i * n + i]);
  return 2 * s;
}

/** (L Lᵀ)⁻¹ as a full symmetric n×n matrix, from the Cholesky factor: L⁻ᵀ L⁻¹. */
export function inverseFromCholesky(l: Float64Array, n: number): Float64Array {
  // W = L⁻¹ (lower triangular), computed column by column by forward substitution.
  const w = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    w[j * n + j] = 1 / l[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      const row = i * n;
      for (let k = j; k < i; k++) s -= l[row + k] * w[k * n + j];
      w[row + j] = s / l[row + i];
    }
  }
  // A⁻¹ = Wᵀ W: (A⁻¹)_ij = Σ_{k ≥ max(i,j)} W_ki W_kj.
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += w[k * n + i] * w[k * n + j];
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  return inv;
}
