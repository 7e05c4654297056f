import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GaussianProcess } from '../../src/bo/gp.js';
import { Rng } from '../../src/bo/rng.js';

interface Case {
  name: string;
  kernel: 'ard' | 'isotropic';
  lengthScales: number[];
  signalVariance: number;
  noise: number;
  X: number[][];
  y: number[];
  Xtest: number[][];
  mean: number[];
  std: number[];
  logMarginalLikelihood: number;
  gradient: number[];
}

const cases = (
  JSON.parse(readFileSync(new URL('../../../test/fixtures/gp/posterior.json', import.meta.url), 'utf8')) as {
    cases: Case[];
  }
).cases;

function fixedGp(c: Case): GaussianProcess {
  const gp = new GaussianProcess(c.X[0].length, { kernel: c.kernel, noise: c.noise });
  gp.setData(c.X, c.y);
  gp.setHyperparameters({ lengthScales: c.lengthScales, signalVariance: c.signalVariance });
  return gp;
}

const close = (a: number, b: number, rel: number, abs: number): boolean => Math.abs(a - b) <= abs + rel * Math.abs(b);

for (const c of cases) {
  test(`fixed-hyperparameter GP (${c.name}) matches scikit-learn: posterior mean/std, LML and its gradient`, () => {
    const gp = fixedGp(c);
    c.Xtest.forEach((x, i) => {
      const p = gp.predict(x);
      assert.ok(close(p.mean, c.mean[i], 1e-9, 1e-9), `mean[${i}] ${p.mean} vs ${c.mean[i]}`);
      assert.ok(close(Math.sqrt(p.variance), c.std[i], 1e-6, 1e-7), `std[${i}] ${Math.sqrt(p.variance)} vs ${c.std[i]}`);
    });
    const lml = gp.logMarginalLikelihood();
    assert.ok(close(lml.value, c.logMarginalLikelihood, 1e-10, 1e-10), `LML ${lml.value} vs ${c.logMarginalLikelihood}`);
    // sklearn's gradient covers [log ℓ..., log σ²] (α is not a hyperparameter there)
    c.gradient.forEach((g, i) => assert.ok(close(lml.gradient[i], g, 1e-7, 1e-8), `∂LML/∂θ${i} ${lml.gradient[i]} vs ${g}`));
  });
}

test('analytic LML gradient (length scales, σ², α) matches central finite differences', () => {
  const rng = new Rng(99);
  for (const kernel of ['ard', 'isotropic'] as const) {
    const dim = 3;
    const n = 12;
    const X = Array.from({ length: n }, () => Array.from({ length: dim }, () => rng.uniform()));
    const y = X.map((x) => Math.sin(4 * x[0]) + x[1] * x[2] + 0.05 * rng.normal());
    const gp = new GaussianProcess(dim, { kernel });
    gp.setData(X, y);
    const P = kernel === 'ard' ? dim + 2 : 3;
    // include a sizeable noise so its gradient is well conditioned
    const theta = Float64Array.from({ length: P }, (_, i) => (i === P - 1 ? Math.log(0.01) : Math.log(0.3 + rng.uniform())));
    const { gradient } = gp.logMarginalLikelihood(theta);
    for (let p = 0; p < P; p++) {
      const h = 1e-5;
      const tp = Float64Array.from(theta);
      const tm = Float64Array.from(theta);
      tp[p] += h;
      tm[p] -= h;
      const fd = (gp.logMarginalLikelihood(tp).value - gp.logMarginalLikelihood(tm).value) / (2 * h);
      assert.ok(close(gradient[p], fd, 1e-5, 1e-6), `${kernel} θ${p}: analytic ${gradient[p]} vs fd ${fd}`);
    }
  }
});

test('hyperparameter fit raises the LML above the default start and stays inside the bounds', () => {
  const rng = new Rng(5);
  const dim = 3;
  const X = Array.from({ length: 25 }, () => Array.from({ length: dim }, () => rng.uniform()));
  // depends strongly on x0, weakly on x1, not at all on x2
  const y = X.map((x) => Math.sin(6 * x[0]) + 0.3 * x[1]);
  const gp = new GaussianProcess(dim, { kernel: 'ard', fitNoise: true });
  gp.setData(X, y);
  const before = gp.logMarginalLikelihood().value;
  const report = gp.fitHyperparameters(new Rng(1));
  assert.ok(report.logMarginalLikelihood > before + 1, `LML ${before} → ${report.logMarginalLikelihood}`);
  assert.equal(report.starts, 5);
  const hp = gp.hyperparameters;
  for (const l of hp.lengthScales) assert.ok(l >= 1e-2 * (1 - 1e-12) && l <= 1e2 * (1 + 1e-12), `ℓ = ${l}`);
  assert.ok(hp.noise >= 1e-6 * (1 - 1e-12) && hp.noise <= 1e-1 * (1 + 1e-12), `α = ${hp.noise}`);
  // the irrelevant dimension gets the longest length scale, the fast one the shortest
  assert.ok(hp.lengthScales[2] > hp.lengthScales[1] && hp.lengthScales[1] > hp.lengthScales[0], `ℓ = ${Array.from(hp.lengthScales)}`);
  // the fitted GP predicts held-out points well
  let err = 0;
  for (let i = 0; i < 50; i++) {
    const x = [rng.uniform(), rng.uniform(), rng.uniform()];
    err = Math.max(err, Math.abs(gp.predict(x).mean - (Math.sin(6 * x[0]) + 0.3 * x[1])));
  }
  assert.ok(err < 0.1, `max held-out error ${err}`);
  // same data, same rng seed: identical fit
  const gp2 = new GaussianProcess(dim, { kernel: 'ard', fitNoise: true });
  gp2.setData(X, y);
  gp2.fitHyperparameters(new Rng(1));
  assert.deepEqual(Array.from(gp2.hyperparameters.lengthScales), Array.from(hp.lengthScales));
});

test('prediction gradients match finite differences; training points are interpolated', () => {
  const rng = new Rng(8);
  const dim = 2;
  const X = Array.from({ length: 10 }, () => [rng.uniform(), rng.uniform()]);
  const y = X.map((x) => 3 * x[0] - x[1] * x[1] + 10);
  const gp = new GaussianProcess(dim, { kernel: 'ard' });
  gp.setData(X, y);
  gp.setHyperparameters({ lengthScales: [0.4, 0.7], signalVariance: 1.2 });
  for (let i = 0; i < X.length; i++) {
    const p = gp.predict(X[i]);
    assert.ok(Math.abs(p.mean - y[i]) < 1e-3, `interpolation at ${i}`);
    assert.ok(p.variance < 1e-4);
  }
  const x = [0.37, 0.61];
  const p = gp.predictWithGradient(x);
  for (let d = 0; d < dim; d++) {
    const h = 1e-6;
    const xp = [...x];
    const xm = [...x];
    xp[d] += h;
    xm[d] -= h;
    const a = gp.predict(xp);
    const b = gp.predict(xm);
    assert.ok(close(p.dMean[d], (a.mean - b.mean) / (2 * h), 1e-5, 1e-6), `dMean[${d}]`);
    assert.ok(close(p.dVariance[d], (a.variance - b.variance) / (2 * h), 1e-5, 1e-7), `dVariance[${d}]`);
  }
});

test('duplicate inputs and constant targets do not break the GP', () => {
  const gp = new GaussianProcess(2, {});
  const X = [
    [0.5, 0.5],
    [0.5, 0.5],
    [0.5, 0.5],
    [0.1, 0.9],
  ];
  gp.setData(X, [1, 1, 1, 1]);
  assert.equal(gp.normalisation.std, 1); // zero spread is replaced by 1
  gp.fitHyperparameters(new Rng(2));
  const p = gp.predict([0.3, 0.3]);
  assert.ok(Number.isFinite(p.mean) && Number.isFinite(p.variance));
  assert.ok(Math.abs(p.mean - 1) < 1e-6);
  // conflicting values at the same point: factorisation needs no miracle, only jitter
  gp.setData(X, [0, 1, 2, 3]);
  gp.setHyperparameters({ lengthScales: [0.3, 0.3], signalVariance: 1, noise: 0 });
  assert.ok(gp.lastJitter > 0);
  assert.ok(Number.isFinite(gp.predict([0.5, 0.5]).mean));
  assert.throws(() => gp.setData([[0, 0]], [NaN]), /not finite/);
  assert.throws(() => gp.setData([[0, 0, 0]], [1]), /coordinates/);
});

test('hyperparameter samples: reproducible, inside the bounds, spread around the fit', () => {
  const rng = new Rng(12);
  const dim = 2;
  const X = Array.from({ length: 30 }, () => [rng.uniform(), rng.uniform()]);
  const y = X.map((x) => Math.sin(5 * x[0]) + 0.5 * Math.cos(3 * x[1]));
  const gp = new GaussianProcess(dim, { lengthScalePrior: { mean: Math.log(0.5), std: 0.75 } });
  gp.setData(X, y);
  gp.fitHyperparameters(new Rng(1));
  const fitted = gp.hyperparameters;
  const a = gp.sampleHyperparameters(new Rng(3), 12);
  const b = gp.sampleHyperparameters(new Rng(3), 12);
  assert.equal(a.length, 12);
  assert.deepEqual(a, b);
  assert.deepEqual(gp.hyperparameters, fitted, 'sampling leaves the GP unchanged');
  const distinct = new Set(a.map((h) => h.lengthScales[0]));
  assert.ok(distinct.size >= 10, 'the chain moves');
  for (let d = 0; d < dim; d++) {
    const logs = a.map((h) => Math.log(h.lengthScales[d]));
    for (const l of logs) assert.ok(l >= Math.log(1e-2) - 1e-12 && l <= Math.log(1e2) + 1e-12);
    const mean = logs.reduce((s, v) => s + v, 0) / logs.length;
    // 30 points pin the length scales down: the posterior sits near the MAP fit
    assert.ok(Math.abs(mean - Math.log(fitted.lengthScales[d])) < 0.5, `dim ${d}: mean log ℓ ${mean} vs fit ${Math.log(fitted.lengthScales[d])}`);
  }
  for (const h of a) assert.ok(h.signalVariance >= 1e-2 && h.signalVariance <= 1e2 * (1 + 1e-12));
  // a GP made from a sample predicts like one given the same hyperparameters directly
  const viaCopy = gp.withHyperparameters(a[5]);
  const direct = new GaussianProcess(dim, {});
  direct.setData(X, y);
  direct.setHyperparameters(a[5]);
  const p1 = viaCopy.predict([0.3, 0.4]);
  const p2 = direct.predict([0.3, 0.4]);
  assert.ok(Math.abs(p1.mean - p2.mean) < 1e-12 && Math.abs(p1.variance - p2.variance) < 1e-12);
});

test('noise prior: the fitted α follows a strong prior and is ignored when the noise is not fitted', () => {
  const rng = new Rng(31);
  const X = Array.from({ length: 20 }, () => [rng.uniform(), rng.uniform()]);
  // a step function: plateaus of 0.1, the kind of target the noise term is meant for
  const y = X.map((x) => Math.floor(10 * (x[0] * x[0] + 0.5 * x[1])) / 10);
  const fit = (options: ConstructorParameters<typeof GaussianProcess>[1]): number => {
    const gp = new GaussianProcess(2, options);
    gp.setData(X, y);
    gp.fitHyperparameters(new Rng(2));
    return gp.hyperparameters.noise;
  };
  const free = fit({ fitNoise: true });
  const target = free > 1e-3 ? 1e-5 : 1e-2; // pull away from where the likelihood alone goes
  const pulled = fit({ fitNoise: true, noisePrior: { mean: Math.log(target), std: 0.01 } });
  assert.ok(Math.abs(Math.log(pulled / target)) < 0.1, `α = ${pulled} with a tight prior at ${target} (likelihood alone: ${free})`);
  assert.ok(Math.abs(fit({ noisePrior: { mean: Math.log(1e-2), std: 0.01 } }) - 1e-6) < 1e-15, 'α stays fixed without fitNoise');
  assert.throws(() => new GaussianProcess(2, { noisePrior: { mean: 0, std: 0 } }), /noisePrior/);
});
