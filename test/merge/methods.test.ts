/**
 * Every merge method against the float64 reference (test/merge/reference.ts), on
 * awkward sizes (1, 7, 4097 and 3 Mi + 5, which crosses chunk boundaries) and
 * every input/output dtype: outputs must match the reference rounded to the output
 * dtype within 1 ulp of it (plus the f32 accumulation error of the terms).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeTensor } from '../../src/merge/kernels.js';
import { DTYPES, SIZE, compare } from './reference.js';
import { CASES, SIZES, inputsFor, type Pattern } from './cases.js';

for (const n of SIZES) {
  const big = n > 1 << 20;
  const patterns: Pattern[] = big ? ['mixed'] : ['F32', 'F16', 'BF16', 'mixed'];
  describe(`merge methods, n = ${n}`, () => {
    for (const c of CASES) {
      for (const p of patterns) {
        test(`${c.name}: inputs ${p} -> F32/F16/BF16`, async () => {
          const inp = inputsFor(n, p);
          const ref = c.reference(inp);
          for (const dtype of DTYPES) {
            const out = new Uint8Array(n * SIZE[dtype]);
            await mergeTensor(c.request(inp, out, dtype));
            const { bad, badCount, skipped } = compare(out, dtype, ref);
            assert.equal(badCount, 0, `${c.name} ${p} -> ${dtype}: ${badCount} of ${n} elements off, first: ${JSON.stringify(bad)}`);
            assert.ok(skipped <= Math.max(1, n * 1e-3), `too many ambiguous sign elections: ${skipped}`);
          }
        });
      }
    }
  });
}
