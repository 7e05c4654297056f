// Standard Bayesian-optimisation test functions, negated so that the optimiser
// maximises them (the usual definitions are minimisation problems). Definitions and
// optima from Surjanovic & Bingham's Virtual Library of Simulation Experiments.
// benchmarks/bo/functions.py holds the same definitions in NumPy for the Python peers
// (test/bo/testfunctions_python.test.ts checks that both agree).

// Medians under uniform sampling (see TestFunction.reference), hoisted so the objects below can use them.
const REF_BRANIN = -35.16;
const REF_HARTMANN3 = 0.5534;
const REF_HARTMANN6 = 0.1040;
const REF_LEVY4 = -37.16;
const REF_ACKLEY5 = -21.16;
const REF_STYBLINSKITANG8 = 43.52;

export interface TestFunction {
  name: string;
  dim: number;
  bounds: readonly (readonly [number, number])[];
  /** The function to maximise (the negated classic one). */
  f: (x: ArrayLike<number>) => number;
  /** max f (= −min of the classic function). */
  optimumValue: number;
  /** One maximiser. */
  optimumX: readonly number[];
  /**
   * A typical value: the median of f under uniform sampling of the box (estimated once
   * from 10⁶ points and fixed here). Regret divided by (optimumValue − reference) is
   * comparable across functions; the step-valued version maps reference to 0.
   */
  reference: number;
}

/** Branin–Hoo (minimisation form), three global minima of 0.397887 on [−5,10]×[0,15]. */
export function braninMin(x: ArrayLike<number>): number {
  const a = 1;
  const b = 5.1 / (4 * Math.PI * Math.PI);
  const c = 5 / Math.PI;
  const r = 6;
  const s = 10;
  const t = 1 / (8 * Math.PI);
  const x1 = x[0];
  const x2 = x[1];
  const u = x2 - b * x1 * x1 + c * x1 - r;
  return a * u * u + s * (1 - t) * Math.cos(x1) + s;
}

export const branin: TestFunction = {
  name: 'branin',
  dim: 2,
  bounds: [
    [-5, 10],
    [0, 15],
  ],
  f: (x) => -braninMin(x),
  optimumValue: -0.39788735772973816,
  optimumX: [Math.PI, 2.275],
  reference: REF_BRANIN,
};

const H_ALPHA = [1.0, 1.2, 3.0, 3.2];

const H3_A = [
  [3.0, 10, 30],
  [0.1, 10, 35],
  [3.0, 10, 30],
  [0.1, 10, 35],
];
const H3_P = [
  [3689, 1170, 2673],
  [4699, 4387, 7470],
  [1091, 8732, 5547],
  [381, 5743, 8828],
].map((r) => r.map((v) => v * 1e-4));

const H6_A = [
  [10, 3, 17, 3.5, 1.7, 8],
  [0.05, 10, 17, 0.1, 8, 14],
  [3, 3.5, 1.7, 10, 17, 8],
  [17, 8, 0.05, 10, 0.1, 14],
];
const H6_P = [
  [1312, 1696, 5569, 124, 8283, 5886],
  [2329, 4135, 8307, 3736, 1004, 9991],
  [2348, 1451, 3522, 2883, 3047, 6650],
  [4047, 8828, 8732, 5743, 1091, 381],
].map((r) => r.map((v) => v * 1e-4));

/** Hartmann family (minimisation form): −Σ_i α_i exp(−Σ_j A_ij (x_j − P_ij)²). */
function hartmannMin(A: number[][], P: number[][], x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < 4; i++) {
    let inner = 0;
    for (let j = 0; j < A[i].length; j++) {
      const d = x[j] - P[i][j];
      inner += A[i][j] * d * d;
    }
    s += H_ALPHA[i] * Math.exp(-inner);
  }
  return -s;
}

export function hartmann3Min(x: ArrayLike<number>): number {
  return hartmannMin(H3_A, H3_P, x);
}

export function hartmann6Min(x: ArrayLike<number>): number {
  return hartmannMin(H6_A, H6_P, x);
}

export const hartmann3: TestFunction = {
  name: 'hartmann3',
  dim: 3,
  bounds: [
    [0, 1],
    [0, 1],
    [0, 1],
  ],
  f: (x) => -hartmann3Min(x),
  optimumValue: 3.86278214782076,
  optimumX: [0.114614, 0.555649, 0.852547],
  reference: REF_HARTMANN3,
};

export const hartmann6: TestFunction = {
  name: 'hartmann6',
  dim: 6,
  bounds: [
    [0, 1],
    [0, 1],
    [0, 1],
    [0, 1],
    [0, 1],
    [0, 1],
  ],
  f: (x) => -hartmann6Min(x),
  optimumValue: 3.32236801141551,
  optimumX: [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573],
  reference: REF_HARTMANN6,
};


/** Levy (minimisation form), min 0 at x = (1, …, 1): w = 1 + (x − 1)/4,
 *  sin²(πw₁) + Σ_{i<d} (w_i − 1)² [1 + 10 sin²(πw_i + 1)] + (w_d − 1)² [1 + sin²(2πw_d)]. */
export function levyMin(x: ArrayLike<number>): number {
  const d = x.length;
  const w = (i: number): number => 1 + (x[i] - 1) / 4;
  let s = Math.sin(Math.PI * w(0)) ** 2;
  for (let i = 0; i < d - 1; i++) s += (w(i) - 1) ** 2 * (1 + 10 * Math.sin(Math.PI * w(i) + 1) ** 2);
  s += (w(d - 1) - 1) ** 2 * (1 + Math.sin(2 * Math.PI * w(d - 1)) ** 2);
  return s;
}

/** Ackley (minimisation form, a = 20, b = 0.2, c = 2π), min 0 at x = 0:
 *  −a exp(−b √(Σx²/d)) − exp(Σ cos(c x)/d) + a + e. */
export function ackleyMin(x: ArrayLike<number>): number {
  const d = x.length;
  let sq = 0;
  let cs = 0;
  for (let i = 0; i < d; i++) {
    sq += x[i] * x[i];
    cs += Math.cos(2 * Math.PI * x[i]);
  }
  return -20 * Math.exp(-0.2 * Math.sqrt(sq / d)) - Math.exp(cs / d) + 20 + Math.E;
}

/** Styblinski–Tang (minimisation form), min −39.16616570377142·d at x_i = −2.903534: ½ Σ (x⁴ − 16x² + 5x). */
export function styblinskiTangMin(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] ** 4 - 16 * x[i] ** 2 + 5 * x[i];
  return 0.5 * s;
}

const box = (d: number, lo: number, hi: number): (readonly [number, number])[] => Array.from({ length: d }, () => [lo, hi] as const);

export const levy4: TestFunction = {
  name: 'levy4', dim: 4, bounds: box(4, -10, 10), f: (x) => -levyMin(x), optimumValue: 0, optimumX: [1, 1, 1, 1], reference: REF_LEVY4,
};

export const ackley5: TestFunction = {
  name: 'ackley5', dim: 5, bounds: box(5, -32.768, 32.768), f: (x) => -ackleyMin(x), optimumValue: 0, optimumX: [0, 0, 0, 0, 0], reference: REF_ACKLEY5,
};

export const styblinskiTang8: TestFunction = {
  name: 'styblinskitang8', dim: 8, bounds: box(8, -5, 5), f: (x) => -styblinskiTangMin(x),
  optimumValue: 39.16616570377142 * 8, optimumX: new Array<number>(8).fill(-2.903534027771178), reference: REF_STYBLINSKITANG8,
};

/** Plateau width of the step-valued versions: an accuracy on this many examples. */
export const STEP_GRID = 100;

/**
 * The step-valued version of tf, like an accuracy on STEP_GRID examples:
 *   step(x) = ⌊STEP_GRID · (f(x) − reference) / (optimumValue − reference)⌋ / STEP_GRID,
 * so random points score about 0 to 0.5, the optimum exactly 1 and everything within
 * 1/STEP_GRID of it (normalised) 0.99.
 */
export function stepped(tf: TestFunction): TestFunction {
  const range = tf.optimumValue - tf.reference;
  return {
    name: `${tf.name}-step`,
    dim: tf.dim,
    bounds: tf.bounds,
    f: (x) => Math.floor((STEP_GRID * (tf.f(x) - tf.reference)) / range) / STEP_GRID,
    optimumValue: 1,
    optimumX: tf.optimumX,
    reference: 0,
  };
}

export const testFunctions: readonly TestFunction[] = [branin, hartmann3, levy4, ackley5, hartmann6, styblinskiTang8];
