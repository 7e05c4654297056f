/**
 * TIES trimming and DARE drops, exactly: with one model and weight 1 the output
 * is base + (kept τ), so every kept or dropped element can be checked bit for bit
 * against the reference (|τ| in f32 via Math.fround, selection by sorting).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ComputeDtype } from '../../src/native/addon.js';
import { fnv1a64, mergeTensor } from '../../src/merge/kernels.js';
import { Rng, dareKeepMask, decode, randomTensor, tiesThreshold, type RefTensor } from './reference.js';

function pair(n: number, dtype: ComputeDtype, seed: number): { base: RefTensor; model: RefTensor } {
  const rng = new Rng(seed);
  const base = randomTensor(rng, n, dtype, () => 0.05 * rng.normal());
  const model = randomTensor(rng, n, dtype, (i) => base.values[i]! + 0.01 * rng.normal());
  return { base, model };
}

async function single(method: 'ties' | 'dare_linear', base: RefTensor, model: RefTensor, density: number,
  extra: { threads?: number; chunkElements?: number; seed?: bigint } = {}): Promise<Float64Array> {
  const n = base.values.length;
  const out = new Float32Array(n);
  const common = {
    base: { data: base.bytes, dtype: base.dtype }, models: [{ data: model.bytes, dtype: model.dtype }], weights: [1],
    density, out: { kind: 'memory' as const, data: out, dtype: 'F32' as const },
    ...(extra.threads ? { threads: extra.threads } : {}), ...(extra.chunkElements ? { chunkElements: extra.chunkElements } : {}),
  };
  if (method === 'ties') await mergeTensor({ method, ...common });
  else await mergeTensor({ method, ...common, tensor: 'w', seed: extra.seed ?? 7n });
  return decode(new Uint8Array(out.buffer), 'F32');
}

describe('TIES trimming is exact', () => {
  // up to 65536 elements the threshold comes from nth_element, beyond from the radix histograms
  for (const n of [1, 7, 4097, 65536, 65537, 3 * 1024 * 1024 + 5]) {
    for (const dtype of ['F32', 'BF16'] as const) {
      for (const density of [0, 0.001, 0.2, 0.5, 1]) {
        if (n > 1 << 20 && density !== 0.2) continue;
        test(`n = ${n}, ${dtype}, density ${density}`, async () => {
          const { base, model } = pair(n, dtype, n + density * 1000);
          const got = await single('ties', base, model, density);
          const tau = model.values.map((v, i) => Math.fround(v - base.values[i]!));
          const thr = tiesThreshold(tau, density);
          let kept = 0;
          for (let i = 0; i < n; i += 1) {
            const keep = Math.abs(tau[i]!) >= thr;
            // sign election with one model: a kept τ always agrees; divisor w = 1
            const want = Math.fround(base.values[i]! + (keep ? tau[i]! : 0));
            if (got[i] !== want) assert.fail(`element ${i}: got ${got[i]}, want ${want} (|τ| ${Math.abs(tau[i]!)}, threshold ${thr})`);
            if (keep && tau[i] !== 0) kept += 1;
          }
          const kk = Math.round(density * n);
          // at least kk kept (ties at the threshold are kept too), unless τ itself is 0 there
          if (density === 0) assert.equal(kept, 0);
          else assert.ok(kept <= n && kept >= Math.min(kk, tau.filter((t) => t !== 0).length));
        });
      }
    }
  }
});

describe('TIES selection when its sample misleads', () => {
  // Beyond 65536 elements the cut-off is selected in one pass among the keys of a
  // bracket estimated from a sample of blocks; when the answer falls outside the
  // bracket, the two-pass radix selection finishes the job. Both must agree with
  // the reference exactly.
  const n = 3 * 1024 * 1024 + 5;
  const cases: { name: string; density: number; tau: (i: number, rng: Rng) => number }[] = [
    // τ ≠ 0 only in one run of 30000 elements: a block sample sees none of it or a
    // block of it, never its true share (1%), so every bracket misses
    { name: 'task vector non-zero in one short run', density: 0.005, tau: (i, rng) => (i >= 1_500_000 && i < 1_530_000 ? 0.01 * rng.normal() : 0) },
    { name: 'task vector non-zero in the last run only', density: 0.002, tau: (i, rng) => (i >= n - 20_000 ? 0.01 + 0.01 * rng.next() : 0) },
    // every |τ| equal: the bracket is one key holding all n entries
    { name: 'all |τ| equal', density: 0.3, tau: (i) => (i % 3 === 0 ? 0.015625 : -0.015625) },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const rng = new Rng(5);
      // base values on a 2^-10 grid, so base + τ is exact in f32
      const base = randomTensor(rng, n, 'F32', () => Math.round(50 * rng.normal()) / 1024);
      const model = randomTensor(rng, n, 'F32', (i) => base.values[i]! + c.tau(i, rng));
      const got = await single('ties', base, model, c.density);
      const tau = model.values.map((v, i) => Math.fround(v - base.values[i]!));
      const thr = tiesThreshold(tau, c.density);
      for (let i = 0; i < n; i += 1) {
        const want = Math.fround(base.values[i]! + (Math.abs(tau[i]!) >= thr ? tau[i]! : 0));
        if (got[i] !== want) assert.fail(`element ${i}: got ${got[i]}, want ${want} (|τ| ${Math.abs(tau[i]!)}, threshold ${thr})`);
      }
    });
  }
});

describe('DARE drops are deterministic and exact', () => {
  const n = 3 * 1024 * 1024 + 5;
  const { base, model } = pair(n, 'BF16', 99);

  test('same bytes for 1 and 2 threads and different chunk sizes', async () => {
    const a = await single('dare_linear', base, model, 0.3, { threads: 1 });
    const b = await single('dare_linear', base, model, 0.3, { threads: 2, chunkElements: 4096 + 256 });
    const c = await single('dare_linear', base, model, 0.3, { threads: 2, chunkElements: 1 << 22 });
    assert.deepEqual(b, a);
    assert.deepEqual(c, a);
  });

  test('kept elements are the reference hash\'s, rescaled by 1/density; drop fraction close to p', async () => {
    const density = 0.3;
    const got = await single('dare_linear', base, model, density);
    const mask = dareKeepMask(7n, fnv1a64('w'), 0, n, density);
    let dropped = 0;
    let bad = 0;
    for (let i = 0; i < n; i += 1) {
      const tau = Math.fround(model.values[i]! - base.values[i]!);
      const want = mask[i] ? Math.fround(base.values[i]! + Math.fround(tau / Math.fround(density))) : base.values[i]!;
      if (!mask[i]) dropped += 1;
      if (got[i] !== want) bad += 1;
    }
    assert.equal(bad, 0, `${bad} elements differ from the reference drop pattern`);
    const p = dropped / n;
    // binomial standard deviation sqrt(p(1-p)/n) ≈ 2.6e-4
    assert.ok(Math.abs(p - 0.7) < 2e-3, `drop fraction ${p}, expected 0.7`);
  });

  test('a different seed or tensor drops different entries', async () => {
    const a = await single('dare_linear', base, model, 0.5, { seed: 1n });
    const b = await single('dare_linear', base, model, 0.5, { seed: 2n });
    let same = 0;
    for (let i = 0; i < n; i += 1) if (a[i] === b[i]) same += 1;
    // both keep or both drop about half the time
    assert.ok(Math.abs(same / n - 0.5) < 0.01, `agreement ${same / n}`);
  });

  test('fnv1a64 matches the published test vectors', () => {
    assert.equal(fnv1a64(''), 0xcbf29ce484222325n);
    assert.equal(fnv1a64('a'), 0xaf63dc4c8601ec8cn);
    assert.equal(fnv1a64('foobar'), 0x85944171f73967e8n);
  });
});
