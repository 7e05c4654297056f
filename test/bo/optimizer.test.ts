import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BayesianOptimizer, type BayesianOptimizerOptions } from '../../src/bo/optimizer.js';
import { branin, braninMin, hartmann3Min, hartmann6, hartmann6Min, type TestFunction } from '../../src/bo/testfunctions.js';

/** Runs nInitial + nIter sequential evaluations; returns the best value found. */
function optimise(tf: TestFunction, seed: number, nIter: number, extra: Partial<BayesianOptimizerOptions> = {}): number {
  const bo = new BayesianOptimizer({ bounds: tf.bounds, seed, nInitial: 10, ...extra });
  for (let i = 0; i < 10 + nIter; i++) {
    const x = bo.suggest();
    bo.observe(x, tf.f(x));
  }
  return bo.best()!.y;
}

test('test functions have their published optima', () => {
  for (const x of [
    [-Math.PI, 12.275],
    [Math.PI, 2.275],
    [9.42478, 2.475],
  ]) {
    assert.ok(Math.abs(braninMin(x) - 0.397887) < 1e-5);
  }
  assert.ok(Math.abs(hartmann6Min([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]) + 3.32237) < 1e-5);
  assert.ok(Math.abs(hartmann3Min([0.114614, 0.555649, 0.852547]) + 3.86278) < 1e-5);
});

for (const seed of [1, 2, 3]) {
  test(`Branin: within 0.05 of the optimum after 10 initial + 30 iterations (seed ${seed})`, () => {
    const best = optimise(branin, seed, 30);
    assert.ok(branin.optimumValue - best < 0.05, `best ${best}, optimum ${branin.optimumValue}`);
  });
}

test('Hartmann-6: within 0.3 of the optimum after 10 initial + 50 iterations (seeds 1, 2)', () => {
  for (const seed of [1, 2]) {
    const best = optimise(hartmann6, seed, 50);
    assert.ok(hartmann6.optimumValue - best < 0.3, `seed ${seed}: best ${best}, optimum ${hartmann6.optimumValue}`);
  }
});

test('same seed ⇒ identical suggestions; different seed ⇒ different ones', () => {
  const run = (seed: number): number[][] => {
    const bo = new BayesianOptimizer({ bounds: branin.bounds, seed, nInitial: 5 });
    const xs: number[][] = [];
    for (let i = 0; i < 9; i++) {
      const x = bo.suggest();
      assert.deepEqual(bo.suggest(), x, 'suggest() without observing is idempotent');
      xs.push(x);
      bo.observe(x, branin.f(x));
    }
    return xs;
  };
  const a = run(7);
  assert.deepEqual(run(7), a);
  assert.notDeepEqual(run(8), a);
});

test('resume by replaying the saved state gives the same next suggestion as an uninterrupted run', () => {
  const opts: BayesianOptimizerOptions = { bounds: branin.bounds, seed: 11, nInitial: 4, acquisition: 'ucb' };
  const full = new BayesianOptimizer(opts);
  let saved = full.state();
  for (let i = 0; i < 12; i++) {
    const x = full.suggest();
    if (i === 6) full.observeFailure(x);
    else full.observe(x, branin.f(x));
    if (i === 8) saved = JSON.parse(JSON.stringify(full.state())) as ReturnType<BayesianOptimizer['state']>;
  }
  const resumed = BayesianOptimizer.fromState(saved);
  for (let i = 9; i < 12; i++) {
    const x = resumed.suggest();
    assert.deepEqual(x, full.observations[i].x, `suggestion ${i}`);
    resumed.observe(x, branin.f(x));
  }
  assert.deepEqual(resumed.suggest(), full.suggest());
  assert.deepEqual(resumed.state(), full.state());
});

test('integrated acquisition (hyperparameter samples): reproducible, resumable, in bounds', () => {
  const opts: BayesianOptimizerOptions = { bounds: branin.bounds, seed: 5, nInitial: 5, hyperparameterSamples: 4 };
  const a = new BayesianOptimizer(opts);
  for (let i = 0; i < 9; i++) {
    const x = a.suggest();
    x.forEach((v, d) => assert.ok(v >= branin.bounds[d][0] && v <= branin.bounds[d][1]));
    a.observe(x, branin.f(x));
  }
  const b = BayesianOptimizer.fromState(JSON.parse(JSON.stringify(a.state())) as ReturnType<BayesianOptimizer['state']>);
  assert.deepEqual(b.suggest(), a.suggest());
  assert.deepEqual(b.suggestBatch(3), a.suggestBatch(3));
});

test('batch mode returns q distinct in-bound points, in the initial phase and with the GP', () => {
  const bounds = [
    [-1, 1],
    [0, 10],
    [5, 6],
  ] as const;
  const f = (x: ArrayLike<number>): number => -((x[0] - 0.3) ** 2) - ((x[1] - 7) / 10) ** 2 - (x[2] - 5.5) ** 2;
  const bo = new BayesianOptimizer({ bounds, seed: 3, nInitial: 6 });
  const check = (batch: number[][], q: number): void => {
    assert.equal(batch.length, q);
    for (const x of batch) x.forEach((v, d) => assert.ok(v >= bounds[d][0] && v <= bounds[d][1], `coordinate ${d} = ${v}`));
    const keys = new Set(batch.map((x) => x.join(',')));
    assert.equal(keys.size, q, 'points are distinct');
    for (const x of batch) for (const o of bo.observations) assert.notDeepEqual(x, o.x, 'no re-suggested observation');
  };
  const first = bo.suggestBatch(4); // all from the initial design
  check(first, 4);
  for (const x of first) bo.observe(x, f(x));
  const mixed = bo.suggestBatch(5); // two initial points, three from the GP
  check(mixed, 5);
  for (const x of mixed) bo.observe(x, f(x));
  for (let round = 0; round < 3; round++) {
    const batch = bo.suggestBatch(4);
    check(batch, 4);
    for (const x of batch) bo.observe(x, f(x));
  }
  // the batch's first point is the sequential suggestion
  assert.deepEqual(bo.suggestBatch(3)[0], bo.suggest());
  assert.ok(bo.best()!.y > -0.05, `best ${bo.best()!.y}`);
});

test('failed evaluations are recorded without breaking the GP; the feasible optimum is still found', () => {
  // f fails on the left half of the box; the optimum of the remainder is at x = 0.6.
  const bo = new BayesianOptimizer({ bounds: [[0, 1]], seed: 2, nInitial: 4 });
  let failures = 0;
  let failuresAfterInitial = 0;
  for (let i = 0; i < 16; i++) {
    const x = bo.suggest();
    if (x[0] < 0.5) {
      bo.observeFailure(x);
      failures++;
      if (i >= 4) failuresAfterInitial++;
    } else bo.observe(x, -((x[0] - 0.6) ** 2));
  }
  assert.ok(failures - failuresAfterInitial >= 1, 'the initial design hit the failing region at least once');
  assert.ok(Math.abs(bo.best()!.x[0] - 0.6) < 0.02, `best x ${bo.best()!.x[0]}`);
  assert.equal(bo.observations.filter((o) => o.y === null).length, failures);
  // failures count as the worst value seen, so the GP phase avoids the failing half more
  // often than uniform sampling would (6 of 12 expected)
  assert.ok(failuresAfterInitial <= 4, `${failuresAfterInitial} of 12 GP suggestions fell in the failing region`);
  // only failures so far: suggestions keep coming (random), no exception
  const bo2 = new BayesianOptimizer({ bounds: [[0, 1]], seed: 2, nInitial: 1 });
  for (let i = 0; i < 3; i++) bo2.observeFailure(bo2.suggest());
  assert.equal(bo2.suggest().length, 1);
  assert.equal(bo2.best(), undefined);
});

test('invalid inputs are rejected with a message', () => {
  assert.throws(() => new BayesianOptimizer({ bounds: [[1, 1]] }), /lo < hi/);
  assert.throws(() => new BayesianOptimizer({ bounds: [] }), /at least one/);
  const bo = new BayesianOptimizer({ bounds: [[0, 1]] });
  assert.throws(() => bo.observe([2], 1), /outside its bounds/);
  assert.throws(() => bo.observe([0.5], NaN), /observeFailure/);
  assert.throws(() => bo.observe([0.5, 0.5], 1), /coordinates/);
  assert.throws(() => bo.suggestBatch(0), /batch size/);
});

test('minDistance: no suggestion comes closer than that to an observed point', () => {
  // a smooth bowl: late suggestions crowd the optimum unless refused
  const f = (x: ArrayLike<number>): number => -100 * ((x[0] - 0.3) ** 2 + (x[1] - 0.6) ** 2);
  const bounds = [[0, 1], [0, 1]] as const;
  const closest = (minDistance?: number): number => {
    const bo = new BayesianOptimizer({ bounds, seed: 4, nInitial: 5, ...(minDistance ? { minDistance } : {}) });
    let d = Infinity;
    for (let i = 0; i < 25; i++) {
      const x = bo.suggest();
      for (const o of bo.observations) d = Math.min(d, Math.max(...x.map((v, k) => Math.abs(v - o.x[k]))));
      bo.observe(x, f(x));
    }
    return d;
  };
  assert.ok(closest() < 0.02, 'without it, suggestions come close to earlier points (the check below can fail)');
  assert.ok(closest(0.02) >= 0.02, `closest suggestion ${closest(0.02)}`);
  assert.throws(() => new BayesianOptimizer({ bounds, minDistance: 0.7 }), /minDistance/);
});

test('localPhase: a local suggestion stays inside the trust region around the incumbent', () => {
  // In 1-D the region's half-width is exactly `radius` (ℓ over the geometric mean of ℓ is 1).
  const f = (x: ArrayLike<number>): number => Math.sin(9 * x[0]) + x[0];
  const bo = new BayesianOptimizer({ bounds: [[0, 1]], seed: 3, nInitial: 4, localPhase: { after: 6, every: 2, radius: 0.03 } });
  for (let i = 0; i < 14; i++) {
    const incumbent = bo.best()?.x[0];
    const x = bo.suggest();
    if (i >= 6 && (i - 6) % 2 === 0) assert.ok(Math.abs(x[0] - incumbent!) <= 0.03 + 1e-12, `step ${i}: ${x[0]} vs incumbent ${incumbent}`);
    bo.observe(x, f(x));
  }
  assert.throws(() => new BayesianOptimizer({ bounds: [[0, 1]], localPhase: { after: 1, every: 0, radius: 0.1 } }), /localPhase/);
});

test('every lever on at once: still reproducible and resumable', () => {
  const opts: BayesianOptimizerOptions = {
    bounds: branin.bounds, seed: 9, nInitial: 4, bestStarts: 2, minDistance: 1e-3, localPhase: { after: 6, every: 2, radius: 0.1 },
    gp: { fitNoise: true, noisePrior: { mean: Math.log(1e-3), std: 2 } },
  };
  const a = new BayesianOptimizer(opts);
  for (let i = 0; i < 10; i++) {
    const x = a.suggest();
    a.observe(x, Math.floor(10 * branin.f(x)) / 10);
  }
  const b = BayesianOptimizer.fromState(JSON.parse(JSON.stringify(a.state())) as ReturnType<BayesianOptimizer['state']>);
  assert.deepEqual(b.suggest(), a.suggest());
  assert.deepEqual(b.suggestBatch(2), a.suggestBatch(2));
});
