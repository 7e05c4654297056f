import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  acquisitionScore,
  acquisitionScoreWithGradient,
  type AcquisitionSpec,
  expectedImprovement,
  integratedScore,
  integratedScoreWithGradient,
  logExpectedImprovement,
  logH,
  normalCdf,
  normalPdf,
  upperConfidenceBound,
} from '../../src/bo/acquisition.js';
import { GaussianProcess } from '../../src/bo/gp.js';
import { Rng } from '../../src/bo/rng.js';

const ref = (
  JSON.parse(readFileSync(new URL('../../../test/fixtures/gp/normal.json', import.meta.url), 'utf8')) as {
    values: { z: number; cdf: number; logH: number }[];
  }
).values;

test('Φ(z) and log h(z) agree with 50-digit mpmath values from z = −10⁴ to 12', () => {
  for (const { z, cdf, logH: lh } of ref) {
    const c = normalCdf(z);
    if (cdf === 0) assert.equal(c, 0, `Φ(${z})`);
    else assert.ok(Math.abs(c - cdf) <= 1e-13 * cdf, `Φ(${z}) = ${c}, expected ${cdf}`);
    const l = logH(z);
    assert.ok(Math.abs(l - lh) <= 1e-12 * Math.max(1, Math.abs(lh)), `log h(${z}) = ${l}, expected ${lh}`);
  }
});

test('EI equals the textbook formula (μ − best − ξ)Φ(z) + σφ(z) and is positive where it underflows naively', () => {
  const cases = [
    [1.2, 0.5, 1.0, 0.01],
    [0.3, 0.2, 1.0, 0.01],
    [5, 2, 1, 0],
  ];
  for (const [mean, std, best, xi] of cases) {
    const a = mean - best - xi;
    const z = a / std;
    const textbook = a * normalCdf(z) + std * normalPdf(z);
    assert.ok(Math.abs(expectedImprovement(mean, std, best, xi) - textbook) < 1e-13 * Math.max(1, textbook));
  }
  // 40 standard deviations below the incumbent: EI ~ 1e-351 underflows, log EI does not
  const l = logExpectedImprovement(0, 1, 40, 0);
  assert.ok(Number.isFinite(l.value) && l.value < -800);
  assert.ok(l.dMean > 0 && l.dStd > 0);
  // zero variance: EI is the plain improvement
  assert.equal(expectedImprovement(2, 0, 1, 0.5), 0.5);
  assert.equal(logExpectedImprovement(0.5, 0, 1, 0).value, -Infinity);
  assert.equal(upperConfidenceBound(1, 2, 2.576).value, 1 + 2 * 2.576);
});

test('log EI derivatives with respect to μ and σ match finite differences, in both regimes', () => {
  for (const [mean, std] of [
    [0.4, 0.3],
    [-2, 0.3],
    [-30, 1],
  ]) {
    const g = logExpectedImprovement(mean, std, 1, 0.01);
    const h = 1e-6;
    const dm = (logExpectedImprovement(mean + h, std, 1, 0.01).value - logExpectedImprovement(mean - h, std, 1, 0.01).value) / (2 * h);
    const ds = (logExpectedImprovement(mean, std + h, 1, 0.01).value - logExpectedImprovement(mean, std - h, 1, 0.01).value) / (2 * h);
    assert.ok(Math.abs(g.dMean - dm) < 1e-5 * Math.max(1, Math.abs(dm)), `dMean at μ=${mean}: ${g.dMean} vs ${dm}`);
    assert.ok(Math.abs(g.dStd - ds) < 1e-5 * Math.max(1, Math.abs(ds)), `dStd at μ=${mean}: ${g.dStd} vs ${ds}`);
  }
});

test('acquisition score gradient with respect to x (through the GP) matches finite differences', () => {
  const rng = new Rng(4);
  const X = Array.from({ length: 8 }, () => [rng.uniform(), rng.uniform()]);
  const y = X.map((x) => Math.cos(3 * x[0]) + x[1]);
  const gp = new GaussianProcess(2, {});
  gp.setData(X, y);
  gp.setHyperparameters({ lengthScales: [0.3, 0.5], signalVariance: 1 });
  const specs: AcquisitionSpec[] = [
    { kind: 'ei', best: Math.max(...y), xi: 0.01 },
    { kind: 'ucb', kappa: 2.576 },
  ];
  for (const spec of specs) {
    const x = [0.41, 0.77];
    const { value, gradient } = acquisitionScoreWithGradient(spec, gp.predictWithGradient(x));
    const p = gp.predict(x);
    assert.ok(Math.abs(value - acquisitionScore(spec, p.mean, p.variance)) < 1e-12);
    for (let d = 0; d < 2; d++) {
      const h = 1e-6;
      const xp = [...x];
      const xm = [...x];
      xp[d] += h;
      xm[d] -= h;
      const a = gp.predict(xp);
      const b = gp.predict(xm);
      const fd = (acquisitionScore(spec, a.mean, a.variance) - acquisitionScore(spec, b.mean, b.variance)) / (2 * h);
      assert.ok(Math.abs(gradient[d] - fd) < 1e-5 * Math.max(1, Math.abs(fd)), `${spec.kind} ∂/∂x${d}: ${gradient[d]} vs ${fd}`);
    }
  }
});

test('integrated acquisition: log of the mean EI / mean UCB over models, with a matching gradient', () => {
  const rng = new Rng(21);
  const X = Array.from({ length: 8 }, () => [rng.uniform(), rng.uniform()]);
  const y = X.map((x) => Math.sin(4 * x[0]) * x[1]);
  const models = [
    [0.2, 0.4],
    [0.5, 0.3],
    [1.0, 0.8],
  ].map((ls) => {
    const gp = new GaussianProcess(2, {});
    gp.setData(X, y);
    gp.setHyperparameters({ lengthScales: ls, signalVariance: 1 });
    return gp;
  });
  const best = Math.max(...y);
  const x = [0.63, 0.29];
  const preds = models.map((m) => m.predict(x));
  const ei = preds.map((p) => expectedImprovement(p.mean, Math.sqrt(p.variance), best, 0.01));
  const spec: AcquisitionSpec = { kind: 'ei', best, xi: 0.01 };
  assert.ok(Math.abs(integratedScore(spec, preds) - Math.log((ei[0] + ei[1] + ei[2]) / 3)) < 1e-12);
  assert.equal(integratedScore(spec, preds.slice(0, 1)), acquisitionScore(spec, preds[0].mean, preds[0].variance));
  const ucb: AcquisitionSpec = { kind: 'ucb', kappa: 2 };
  const ucbMean = preds.reduce((s, p) => s + p.mean + 2 * Math.sqrt(p.variance), 0) / 3;
  assert.ok(Math.abs(integratedScore(ucb, preds) - ucbMean) < 1e-12);
  for (const sp of [spec, ucb]) {
    const { value, gradient } = integratedScoreWithGradient(sp, models.map((m) => m.predictWithGradient(x)));
    assert.ok(Math.abs(value - integratedScore(sp, preds)) < 1e-12);
    for (let d = 0; d < 2; d++) {
      const h = 1e-6;
      const xp = [...x];
      const xm = [...x];
      xp[d] += h;
      xm[d] -= h;
      const fd =
        (integratedScore(sp, models.map((m) => m.predict(xp))) - integratedScore(sp, models.map((m) => m.predict(xm)))) / (2 * h);
      assert.ok(Math.abs(gradient[d] - fd) < 1e-5 * Math.max(1, Math.abs(fd)), `${sp.kind} ∂/∂x${d}: ${gradient[d]} vs ${fd}`);
    }
  }
});
