/** AdamW, clipping and the learning-rate schedule against float64 references. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addon } from '../../src/native/addon.js';
import { AdamW } from '../../src/train/adamw.js';
import { learningRate, validateSchedule } from '../../src/train/schedule.js';
import { NormalRng } from '../../src/train/init.js';
import { UsageError } from '../../src/errors.js';

/** torch.optim.AdamW in float64 (the formula of native/kernels/adamw.h). */
function adamwRef(theta: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array,
  h: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number }): void {
  const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
  for (let i = 0; i < theta.length; i++) {
    theta[i] = theta[i]! * (1 - h.lr * h.weightDecay);
    m[i] = h.beta1 * m[i]! + (1 - h.beta1) * g[i]!;
    v[i] = h.beta2 * v[i]! + (1 - h.beta2) * g[i]! * g[i]!;
    theta[i] = theta[i]! - (h.lr / bc1) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + h.eps);
  }
}

test('native AdamW matches a float64 reference over 20 steps on random vectors', () => {
  const rng = new NormalRng(7);
  for (const n of [1, 37, 100_003]) {  // the last one takes the OpenMP-parallel path
    const theta = Float32Array.from({ length: n }, () => rng.next());
    const m = new Float32Array(n), v = new Float32Array(n);
    const rt = Float64Array.from(theta), rm = new Float64Array(n), rv = new Float64Array(n);
    for (let step = 1; step <= 20; step++) {
      const h = { lr: 1e-2 * (1 + step / 10), beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step };
      const g = Float32Array.from({ length: n }, () => rng.next() * (step % 3 === 0 ? 1e-3 : 1));
      addon().adamwUpdate(theta, g, m, v, h);
      adamwRef(rt, Float64Array.from(g), rm, rv, h);
    }
    let err = 0;
    for (let i = 0; i < n; i++) err = Math.max(err, Math.abs(theta[i]! - rt[i]!) / Math.max(1, Math.abs(rt[i]!)));
    assert.ok(err < 1e-5, `n=${n}: max relative error ${err}`);
  }
});

test('AdamW class: decays matrices only, counts steps, refuses bad arguments', () => {
  const params = [
    { name: 'w', shape: [2, 2], offset: 0, numel: 4 },
    { name: 'norm.weight', shape: [2], offset: 4, numel: 2 },
  ];
  const opt = new AdamW(params, 6, { weightDecay: 0.5 });
  const theta = new Float32Array([1, 1, 1, 1, 1, 1]);
  opt.step(theta, new Float32Array(6), 0.1);  // zero gradient: only the decay moves θ
  assert.equal(opt.steps, 1);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(theta[i]! - 0.95) < 1e-6);
  assert.deepEqual([theta[4], theta[5]], [1, 1]);
  assert.throws(() => opt.step(new Float32Array(5), new Float32Array(6), 0.1), UsageError);
  assert.throws(() => new AdamW(params, 6, { beta1: 1 }), UsageError);
  assert.throws(() => addon().adamwUpdate(theta, new Float32Array(5), theta, theta, { lr: 1, beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0, step: 1 }),
    /same length/);
  assert.throws(() => addon().adamwUpdate(theta, theta, theta, theta, { lr: 1, beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0, step: 0 }),
    /step/);
});

test('global-norm clipping and accumulation match float64', () => {
  const rng = new NormalRng(3);
  const n = 200_000;
  const g = Float32Array.from({ length: n }, () => rng.next());
  let ss = 0;
  for (const x of g) ss += x * x;
  assert.ok(Math.abs(addon().sumSquares(g) - ss) / ss < 1e-12);
  const copy = Float32Array.from(g);
  const norm = addon().clipGradNorm(g, 10);
  assert.ok(Math.abs(norm - Math.sqrt(ss)) / Math.sqrt(ss) < 1e-12);
  assert.ok(Math.abs(Math.sqrt(addon().sumSquares(g)) - 10) < 1e-3);
  const small = Float32Array.from(copy.subarray(0, 10));
  const before = Float32Array.from(small);
  addon().clipGradNorm(small, 1e9);  // below the threshold: untouched
  assert.deepEqual(small, before);
  const y = new Float32Array(n);
  addon().axpy(y, copy, -0.5);
  for (let i = 0; i < n; i += 997) assert.equal(y[i], Math.fround(-0.5 * copy[i]!));
  // Deterministic whatever the thread count.
  const prev = addon().buildInfo().threads;
  addon().setThreads(1);
  const one = addon().sumSquares(copy);
  addon().setThreads(prev);
  assert.equal(addon().sumSquares(copy), one);
});

test('warm-up then cosine schedule', () => {
  const s = { peak: 1e-3, warmup: 10, total: 110, minRatio: 0.1 };
  validateSchedule(s);
  assert.ok(Math.abs(learningRate(s, 1) - 1e-4) < 1e-15);
  assert.ok(Math.abs(learningRate(s, 5) - 5e-4) < 1e-15);
  assert.ok(Math.abs(learningRate(s, 10) - 1e-3) < 1e-15);
  assert.ok(Math.abs(learningRate(s, 60) - (1e-4 + 0.9e-3 * 0.5)) < 1e-15);  // half-way: cos(π/2) = 0
  assert.ok(Math.abs(learningRate(s, 110) - 1e-4) < 1e-15);
  for (let t = 11; t < 110; t++) assert.ok(learningRate(s, t + 1) <= learningRate(s, t));
  assert.ok(Math.abs(learningRate({ peak: 2, warmup: 0, total: 1 }, 1) - 0.2) < 1e-15);  // one step: already at the end
  assert.throws(() => validateSchedule({ peak: 1, warmup: 5, total: 4 }), UsageError);
  assert.throws(() => validateSchedule({ peak: -1, warmup: 0, total: 4 }), UsageError);
});
