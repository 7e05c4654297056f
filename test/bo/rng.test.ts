import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hashKey, Rng } from '../../src/bo/rng.js';
import { SOBOL_MAX_DIM, Sobol } from '../../src/bo/lowdiscrepancy.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../../test/fixtures/gp/${name}`, import.meta.url), 'utf8'));

test('same seed gives the same stream; different keys give different streams', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng([42, 1]);
  const sa = Array.from({ length: 100 }, () => a.nextUint32());
  const sb = Array.from({ length: 100 }, () => b.nextUint32());
  const sc = Array.from({ length: 100 }, () => c.nextUint32());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
  assert.notEqual(hashKey([1, 2]), hashKey([2, 1]));
  assert.notEqual(hashKey([1]), hashKey([1, 0]));
  assert.notEqual(hashKey([2 ** 40]), hashKey([0]));
  assert.throws(() => new Rng(0.5), /safe integer/);
});

test('uniform() lies in [0,1) with the right moments; int() is unbiased; normal() has mean 0, variance 1', () => {
  const rng = new Rng(123);
  const N = 200000;
  let s = 0;
  let s2 = 0;
  let lo = 1;
  let hi = 0;
  for (let i = 0; i < N; i++) {
    const u = rng.uniform();
    assert.ok(u >= 0 && u < 1);
    s += u;
    s2 += u * u;
    lo = Math.min(lo, u);
    hi = Math.max(hi, u);
  }
  assert.ok(Math.abs(s / N - 0.5) < 0.005);
  assert.ok(Math.abs(s2 / N - 1 / 3) < 0.005);
  assert.ok(lo < 1e-3 && hi > 1 - 1e-3);
  const counts = new Array<number>(7).fill(0);
  for (let i = 0; i < 70000; i++) counts[rng.int(7)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `count ${c}`);
  let m = 0;
  let v = 0;
  let tail = 0;
  for (let i = 0; i < N; i++) {
    const z = rng.normal();
    m += z;
    v += z * z;
    if (z > 1.959964) tail++;
  }
  assert.ok(Math.abs(m / N) < 0.01, `mean ${m / N}`);
  assert.ok(Math.abs(v / N - 1) < 0.015, `variance ${v / N}`);
  assert.ok(Math.abs(tail / N - 0.025) < 0.002, `upper 2.5% tail ${tail / N}`);
});

test("unscrambled Sobol' matches scipy.stats.qmc.Sobol (8 dims × 64 points, 128 dims × 16 points)", () => {
  const ref = fixture('sobol.json') as { d8: number[][]; d128: number[][] };
  for (const [dim, pts] of [
    [8, ref.d8],
    [128, ref.d128],
  ] as const) {
    const s = new Sobol(dim);
    for (let i = 0; i < pts.length; i++) {
      const p = s.next();
      for (let d = 0; d < dim; d++) assert.equal(p[d], pts[i][d], `dim ${dim}, point ${i}, coordinate ${d}`);
    }
  }
  assert.equal(SOBOL_MAX_DIM, 128);
  assert.throws(() => new Sobol(SOBOL_MAX_DIM + 1), /outside/);
});

test("scrambled Sobol' stays stratified: 2^k points put one point in each dyadic interval", () => {
  const s = new Sobol(3, new Rng(5));
  const pts = s.draw(64);
  for (let d = 0; d < 3; d++) {
    const seen = new Set(pts.map((p) => Math.floor(p[d] * 64)));
    assert.equal(seen.size, 64, `dimension ${d}`);
  }
  // a different seed gives a different (shifted) set
  const other = new Sobol(3, new Rng(6)).draw(4);
  assert.notDeepEqual(Array.from(other[1]), Array.from(pts[1]));
});
