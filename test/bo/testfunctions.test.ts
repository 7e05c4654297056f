import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../src/bo/rng.js';
import { STEP_GRID, ackleyMin, levyMin, stepped, styblinskiTangMin, testFunctions } from '../../src/bo/testfunctions.js';
import { ROOT } from '../helpers.js';

test('every benchmark function reaches its published optimum at its maximiser and nowhere in a random sample', () => {
  const rng = new Rng([99]);
  for (const tf of testFunctions) {
    assert.equal(tf.bounds.length, tf.dim, tf.name);
    assert.ok(Math.abs(tf.f(tf.optimumX) - tf.optimumValue) < 1e-5 * Math.max(1, Math.abs(tf.optimumValue)), `${tf.name}: f(x*) = ${tf.f(tf.optimumX)}`);
    let below = 0;
    for (let i = 0; i < 2000; i++) {
      const y = tf.f(tf.bounds.map(([lo, hi]) => lo + (hi - lo) * rng.uniform()));
      assert.ok(y <= tf.optimumValue + 1e-9, `${tf.name}: ${y} above the optimum`);
      if (y < tf.reference) below++;
    }
    // reference is the median under uniform sampling: about half the points fall below it
    assert.ok(below > 900 && below < 1100, `${tf.name}: ${below} of 2000 below the reference ${tf.reference}`);
  }
  assert.ok(Math.abs(levyMin([1, 1, 1, 1])) < 1e-12);
  assert.ok(Math.abs(ackleyMin([0, 0, 0, 0, 0])) < 1e-12);
  assert.ok(Math.abs(styblinskiTangMin([-2.903534, -2.903534]) + 2 * 39.16617) < 1e-4);
});

test('step-valued versions: multiples of 1/STEP_GRID, 1 at the optimum, 0.99 just next to it, 0 at the reference', () => {
  for (const tf of testFunctions) {
    const s = stepped(tf);
    assert.equal(s.name, `${tf.name}-step`);
    assert.equal(s.f(tf.optimumX) >= 0.99, true, `${s.name} at the optimum: ${s.f(tf.optimumX)}`);
    const near = tf.optimumX.map((v, d) => Math.min(tf.bounds[d][1], v + 1e-4 * (tf.bounds[d][1] - tf.bounds[d][0])));
    assert.equal(s.f(near), 0.99, `${s.name} next to the optimum`);
    const rng = new Rng([7, tf.dim]);
    for (let i = 0; i < 200; i++) {
      const y = s.f(tf.bounds.map(([lo, hi]) => lo + (hi - lo) * rng.uniform()));
      assert.ok(Math.abs(y * STEP_GRID - Math.round(y * STEP_GRID)) < 1e-9 && y <= 1, `${s.name}: ${y}`);
    }
  }
});

/** The benchmark's Python interpreter with NumPy, or undefined. */
function pythonWithNumpy(): string | undefined {
  for (const py of [process.env.DFMERGE_PYTHON, join(ROOT, '.venv', 'bin', 'python')]) {
    if (py && existsSync(py) && spawnSync(py, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0) return py;
  }
  return undefined;
}

const python = pythonWithNumpy();
test('benchmarks/bo/functions.py (the Python peers\' definitions) gives the same values as testfunctions.ts', { skip: python ? false : 'no Python with NumPy (.venv or $DFMERGE_PYTHON)' }, () => {
  const rng = new Rng([2024]);
  const queries: { function: string; x: number[]; y: number }[] = [];
  for (const tf of testFunctions) {
    const pts = [tf.optimumX.slice(), ...Array.from({ length: 4 }, () => tf.bounds.map(([lo, hi]) => lo + (hi - lo) * rng.uniform()))];
    for (const x of pts) {
      queries.push({ function: tf.name, x, y: tf.f(x) });
      queries.push({ function: `${tf.name}-step`, x, y: stepped(tf).f(x) });
    }
  }
  const input = queries.map((q) => JSON.stringify({ function: q.function, x: q.x })).join('\n') + '\n';
  const r = spawnSync(python!, [join(ROOT, 'benchmarks', 'bo', 'peers.py'), '--eval'], { input, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ys = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { y: number }).y);
  assert.equal(ys.length, queries.length);
  queries.forEach((q, i) => {
    assert.ok(Math.abs(ys[i] - q.y) <= 1e-10 * Math.max(1, Math.abs(q.y)), `${q.function} at [${q.x.join(', ')}]: Python ${ys[i]}, TypeScript ${q.y}`);
  });
});
