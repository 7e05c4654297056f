import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Matern52, maternShape } from '../../src/bo/kernel.js';
import { Rng } from '../../src/bo/rng.js';

function randomPoints(n: number, dim: number, rng: Rng): Float64Array {
  return Float64Array.from({ length: n * dim }, () => rng.uniform());
}

test('Matérn 5/2 values: k(x,x) = σ², closed form at r = 1, ARD with equal scales = isotropic', () => {
  assert.equal(maternShape(0), 1);
  const s5 = Math.sqrt(5);
  assert.ok(Math.abs(maternShape(1) - (1 + s5 + 5 / 3) * Math.exp(-s5)) < 1e-15);
  const iso = new Matern52(3, 'isotropic');
  const ard = new Matern52(3, 'ard');
  const rng = new Rng(3);
  const X = randomPoints(6, 3, rng);
  const Ki = iso.matrix(X, 6, { lengthScales: Float64Array.of(0.7), signalVariance: 2.5 });
  const Ka = ard.matrix(X, 6, { lengthScales: Float64Array.of(0.7, 0.7, 0.7), signalVariance: 2.5 });
  for (let i = 0; i < 36; i++) assert.ok(Math.abs(Ki[i] - Ka[i]) < 1e-15);
  for (let i = 0; i < 6; i++) assert.equal(Ki[i * 6 + i], 2.5);
  // r computed by hand for one pair, ARD
  const hp = { lengthScales: Float64Array.of(0.5, 2, 1), signalVariance: 1.3 };
  const a = [0.1, 0.2, 0.3];
  const b = [0.4, 0.9, 0.0];
  const r = Math.sqrt((0.3 / 0.5) ** 2 + (0.7 / 2) ** 2 + 0.3 ** 2);
  assert.ok(Math.abs(ard.value(a, b, hp) - 1.3 * maternShape(r)) < 1e-15);
  const C = ard.cross(Float64Array.from(a), 1, Float64Array.from(b), 1, hp);
  assert.ok(Math.abs(C[0] - ard.value(a, b, hp)) < 1e-15);
  assert.throws(() => ard.matrix(X, 6, { lengthScales: Float64Array.of(1), signalVariance: 1 }), /length scale/);
});

test('∂K/∂log θ matches central finite differences (ARD and isotropic)', () => {
  const rng = new Rng(17);
  for (const kind of ['ard', 'isotropic'] as const) {
    const dim = 4;
    const k = new Matern52(dim, kind);
    const n = 7;
    const X = randomPoints(n, dim, rng);
    const theta = Float64Array.from({ length: k.nHyperparameters }, () => Math.log(0.3 + rng.uniform()));
    const grads = k.matrixGradients(X, n, k.fromLog(theta));
    const W = Float64Array.from({ length: n * n }, () => rng.normal());
    const contracted = k.contractGradients(X, n, k.fromLog(theta), W);
    for (let p = 0; p < theta.length; p++) {
      const h = 1e-6;
      const tp = Float64Array.from(theta);
      const tm = Float64Array.from(theta);
      tp[p] += h;
      tm[p] -= h;
      const Kp = k.matrix(X, n, k.fromLog(tp));
      const Km = k.matrix(X, n, k.fromLog(tm));
      let contractedFd = 0;
      for (let i = 0; i < n * n; i++) {
        const fd = (Kp[i] - Km[i]) / (2 * h);
        assert.ok(Math.abs(fd - grads[p][i]) < 1e-7, `${kind} θ${p} entry ${i}: fd ${fd} vs ${grads[p][i]}`);
        contractedFd += W[i] * grads[p][i];
      }
      assert.ok(Math.abs(contractedFd - contracted[p]) < 1e-10 * (1 + Math.abs(contractedFd)));
    }
  }
});

test('∂k(x, X_i)/∂x matches finite differences', () => {
  const rng = new Rng(19);
  const dim = 3;
  const k = new Matern52(dim, 'ard');
  const hp = { lengthScales: Float64Array.of(0.2, 0.5, 1.5), signalVariance: 0.8 };
  const n = 5;
  const X = randomPoints(n, dim, rng);
  const x = Float64Array.from([0.3, 0.6, 0.1]);
  const G = k.gradX(x, X, n, hp);
  for (let i = 0; i < n; i++) {
    const xi = X.subarray(i * dim, (i + 1) * dim);
    for (let d = 0; d < dim; d++) {
      const h = 1e-6;
      const xp = Float64Array.from(x);
      const xm = Float64Array.from(x);
      xp[d] += h;
      xm[d] -= h;
      const fd = (k.value(xp, xi, hp) - k.value(xm, xi, hp)) / (2 * h);
      assert.ok(Math.abs(fd - G[i * dim + d]) < 1e-8, `point ${i} dim ${d}`);
    }
  }
  // gradient vanishes at r = 0 (k is smooth there)
  const G0 = k.gradX(X.subarray(0, dim), X, 1, hp);
  for (let d = 0; d < dim; d++) assert.equal(Math.abs(G0[d]), 0);
});
