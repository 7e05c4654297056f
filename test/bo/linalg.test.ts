import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cholesky,
  choleskySolve,
  choleskyWithJitter,
  inverseFromCholesky,
  logDetFromCholesky,
  solveLower,
  solveLowerTransposed,
} from '../../src/bo/linalg.js';
import { Rng } from '../../src/bo/rng.js';

/** A random SPD matrix B Bᵀ + n·I. */
function randomSpd(n: number, rng: Rng): Float64Array {
  const b = Float64Array.from({ length: n * n }, () => rng.normal());
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = i === j ? n : 0;
      for (let k = 0; k < n; k++) s += b[i * n + k] * b[j * n + k];
      a[i * n + j] = s;
    }
  }
  return a;
}

function matVec(a: Float64Array, n: number, x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) y[i] += a[i * n + j] * x[j];
  return y;
}

test('cholesky reproduces A = L Lᵀ and solves A x = b', () => {
  const rng = new Rng(7);
  for (const n of [1, 2, 5, 17]) {
    const a = randomSpd(n, rng);
    const l = cholesky(a, n);
    assert.ok(l);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += l[i * n + k] * l[j * n + k];
        assert.ok(Math.abs(s - a[i * n + j]) < 1e-10 * n, `(${i},${j})`);
        if (j > i) assert.equal(l[i * n + j], 0);
      }
    }
    const x = Float64Array.from({ length: n }, () => rng.normal());
    const b = matVec(a, n, x);
    const xs = choleskySolve(l, n, b);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(xs[i] - x[i]) < 1e-10, `x[${i}]`);
    // triangular solves separately
    const z = solveLower(l, n, b);
    const lz = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let k = 0; k <= i; k++) lz[i] += l[i * n + k] * z[k];
    for (let i = 0; i < n; i++) assert.ok(Math.abs(lz[i] - b[i]) < 1e-9 * Math.abs(b[i]) + 1e-9);
    const w = solveLowerTransposed(l, n, b);
    const ltw = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let k = i; k < n; k++) ltw[i] += l[k * n + i] * w[k];
    for (let i = 0; i < n; i++) assert.ok(Math.abs(ltw[i] - b[i]) < 1e-9 * Math.abs(b[i]) + 1e-9);
  }
});

test('inverse and log-determinant from the Cholesky factor', () => {
  const rng = new Rng(11);
  const n = 9;
  const a = randomSpd(n, rng);
  const l = cholesky(a, n)!;
  const inv = inverseFromCholesky(l, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += a[i * n + k] * inv[k * n + j];
      assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-10, `(A A⁻¹)[${i},${j}] = ${s}`);
    }
  }
  // log det of a diagonal matrix, and invariance under the factorisation
  const d = Float64Array.from([2, 0, 0, 0, 3, 0, 0, 0, 5]);
  assert.ok(Math.abs(logDetFromCholesky(cholesky(d, 3)!, 3) - Math.log(30)) < 1e-14);
});

test('cholesky rejects a non-PD matrix; jitter escalation rescues a singular PSD one', () => {
  assert.equal(cholesky(Float64Array.from([1, 2, 2, 1]), 2), null);
  // Two identical points: rank-1 kernel matrix [[1,1],[1,1]].
  const singular = Float64Array.from([1, 1, 1, 1]);
  assert.equal(cholesky(singular, 2), null);
  const { l, jitter } = choleskyWithJitter(singular, 2);
  assert.ok(jitter > 0 && jitter < 1e-3, `jitter ${jitter}`);
  assert.ok(l[3] > 0);
  assert.throws(() => choleskyWithJitter(Float64Array.from([1, 0, 0, -5]), 2, 1e-10, 3), /not positive definite/);
});
