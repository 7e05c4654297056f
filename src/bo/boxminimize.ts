// Bound-constrained minimisation by projected L-BFGS: the L-BFGS two-loop direction
// restricted to the variables not held at a bound, a backtracking (Armijo) line search
// along the projected path clip(x + t·d), and a restart from steepest descent whenever
// the quasi-Newton direction fails. A deliberately small cousin of L-BFGS-B (Byrd, Lu,
// Nocedal & Zhu 1995) that is good enough for the two jobs it has here: fitting GP
// hyperparameters in log space and refining acquisition maxima inside the search box.

export interface ValueAndGradient {
  f: number;
  g: Float64Array;
}

export interface BoxMinimizeOptions {
  /** Iteration limit (default 200). */
  maxIterations?: number;
  /** Number of stored (s, y) pairs (default 10). */
  memory?: number;
  /** Stop when the projected gradient's largest entry falls below this (default 1e-6). */
  gradTol?: number;
  /** Stop when an accepted step improves f by less than relTol·max(1, |f|) (default 1e-10). */
  relTol?: number;
}

export interface BoxMinimizeResult {
  x: Float64Array;
  f: number;
  iterations: number;
  evaluations: number;
  converged: boolean;
}

/**
 * Minimises fg over the box lo ≤ x ≤ hi starting from x0 (clipped into the box).
 * fg may return a non-finite f (treated as +∞ by the line search).
 */
export function boxMinimize(
  fg: (x: Float64Array) => ValueAndGradient,
  x0: ArrayLike<number>,
  lo: ArrayLike<number>,
  hi: ArrayLike<number>,
  options: BoxMinimizeOptions = {},
): BoxMinimizeResult {
  const maxIterations = options.maxIterations ?? 200;
  const memory = options.memory ?? 10;
  const gradTol = options.gradTol ?? 1e-6;
  const relTol = options.relTol ?? 1e-10;
  const n = x0.length;
  const clip = (v: number, i: number): number => Math.min(hi[i], Math.max(lo[i], v));

  let x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = clip(x0[i], i);
  let { f, g } = fg(x);
  let evaluations = 1;
  if (!Number.isFinite(f) || !allFinite(g)) return { x, f, iterations: 0, evaluations, converged: false };

  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const free = new Uint8Array(n);
  const d = new Float64Array(n);
  let iterations = 0;
  let converged = false;

  for (; iterations < maxIterations; iterations++) {
    // Free variables: not at a bound with the gradient pushing outwards.
    let pg = 0;
    for (let i = 0; i < n; i++) {
      free[i] = (x[i] <= lo[i] && g[i] > 0) || (x[i] >= hi[i] && g[i] < 0) ? 0 : 1;
      pg = Math.max(pg, Math.abs(clip(x[i] - g[i], i) - x[i]));
    }
    if (pg < gradTol) {
      converged = true;
      break;
    }

    twoLoopDirection(g, S, Y, free, d);
    let gd = 0;
    for (let i = 0; i < n; i++) gd += g[i] * d[i];
    if (!(gd < 0)) {
      S.length = 0;
      Y.length = 0;
      for (let i = 0; i < n; i++) d[i] = free[i] ? -g[i] : 0;
    }

    // First step without curvature information: keep the largest move at most 1.
    let t = 1;
    if (S.length === 0) {
      let dmax = 0;
      for (let i = 0; i < n; i++) dmax = Math.max(dmax, Math.abs(d[i]));
      if (dmax > 1) t = 1 / dmax;
    }

    let accepted = false;
    let xn = new Float64Array(n);
    let fn = f;
    let gn = g;
    for (let ls = 0; ls < 40; ls++) {
      let moved = false;
      let decrease = 0;
      for (let i = 0; i < n; i++) {
        xn[i] = clip(x[i] + t * d[i], i);
        if (xn[i] !== x[i]) moved = true;
        decrease += g[i] * (xn[i] - x[i]);
      }
      if (!moved) break;
      const r = fg(xn);
      evaluations++;
      if (Number.isFinite(r.f) && allFinite(r.g) && r.f <= f + 1e-4 * decrease) {
        fn = r.f;
        gn = r.g;
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) {
      if (S.length > 0) {
        S.length = 0;
        Y.length = 0;
        continue;
      }
      converged = true; // no descent possible along the projected gradient at this precision
      break;
    }

    const s = new Float64Array(n);
    const y = new Float64Array(n);
    let sy = 0;
    let ss = 0;
    let yy = 0;
    for (let i = 0; i < n; i++) {
      s[i] = xn[i] - x[i];
      y[i] = gn[i] - g[i];
      sy += s[i] * y[i];
      ss += s[i] * s[i];
      yy += y[i] * y[i];
    }
    if (sy > 1e-12 * Math.sqrt(ss * yy)) {
      S.push(s);
      Y.push(y);
      if (S.length > memory) {
        S.shift();
        Y.shift();
      }
    }
    const improvement = f - fn;
    x = xn;
    xn = new Float64Array(n);
    f = fn;
    g = gn;
    if (improvement <= relTol * Math.max(1, Math.abs(f))) {
      converged = true;
      iterations++;
      break;
    }
  }
  return { x, f, iterations, evaluations, converged };
}

/** d = −H g over the free variables (L-BFGS two-loop recursion, Nocedal & Wright alg. 7.4). */
function twoLoopDirection(
  g: Float64Array,
  S: Float64Array[],
  Y: Float64Array[],
  free: Uint8Array,
  d: Float64Array,
): void {
  const n = g.length;
  const m = S.length;
  const q = new Float64Array(n);
  for (let i = 0; i < n; i++) q[i] = free[i] ? g[i] : 0;
  const alpha = new Float64Array(m);
  const rho = new Float64Array(m);
  for (let k = m - 1; k >= 0; k--) {
    const sy = maskedDot(S[k], Y[k], free);
    rho[k] = sy > 0 ? 1 / sy : 0;
    alpha[k] = rho[k] * maskedDot(S[k], q, free);
    for (let i = 0; i < n; i++) if (free[i]) q[i] -= alpha[k] * Y[k][i];
  }
  let gamma = 1;
  if (m > 0) {
    const sy = maskedDot(S[m - 1], Y[m - 1], free);
    const yy = maskedDot(Y[m - 1], Y[m - 1], free);
    if (sy > 0 && yy > 0) gamma = sy / yy;
  }
  for (let i = 0; i < n; i++) q[i] *= gamma;
  for (let k = 0; k < m; k++) {
    const beta = rho[k] * maskedDot(Y[k], q, free);
    for (let i = 0; i < n; i++) if (free[i]) q[i] += (alpha[k] - beta) * S[k][i];
  }
  for (let i = 0; i < n; i++) d[i] = free[i] ? -q[i] : 0;
}

function maskedDot(a: Float64Array, b: Float64Array, mask: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) if (mask[i]) s += a[i] * b[i];
  return s;
}

function allFinite(v: Float64Array): boolean {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
  return true;
}
