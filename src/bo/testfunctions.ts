// Standard Bayesian-optimisation test functions, negated so that the optimiser
// maximises them (the usual definitions are minimisation problems). Definitions and
// optima from Surjanovic & Bingham's Virtual Library of Simulation Experiments.

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
  optimumValue: 3.86278,
  optimumX: [0.114614, 0.555649, 0.852547],
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
  optimumValue: 3.32237,
  optimumX: [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573],
};

export const testFunctions: readonly TestFunction[] = [branin, hartmann3, hartmann6];
