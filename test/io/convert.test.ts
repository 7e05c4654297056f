import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addon } from '../../src/native/addon.js';

// Independent references: decode by the IEEE formulas in float64; encode by
// searching the sorted table of all finite values of the format for the nearest,
// ties to the even bit pattern.
function decodeHalf(h: number, expBits: number, manBits: number): number {
  const sign = h >> (expBits + manBits) ? -1 : 1;
  const e = (h >> manBits) & ((1 << expBits) - 1);
  const m = h & ((1 << manBits) - 1);
  const bias = (1 << (expBits - 1)) - 1;
  if (e === (1 << expBits) - 1) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** (1 - bias - manBits);
  return sign * (1 + m / 2 ** manBits) * 2 ** (e - bias);
}
const decodeF16 = (h: number) => decodeHalf(h, 5, 10);
const decodeBF16 = (h: number) => decodeHalf(h, 8, 7);

function encoder(decode: (h: number) => number): (x: number) => number {
  const finite: { v: number; h: number }[] = [];
  for (let h = 0; h < 0x8000; h++) {
    const v = decode(h);
    if (Number.isFinite(v)) finite.push({ v, h });
  }
  finite.sort((a, b) => a.v - b.v);
  const max = finite[finite.length - 1]!;
  const inf = finite.length < 0x8000 ? (() => { for (let h = 0; h < 0x8000; h++) if (decode(h) === Infinity) return h; return -1; })() : -1;
  // the first value past max, where rounding goes to infinity: max + half an ulp
  const ulp = max.v - finite[finite.length - 2]!.v;
  return (x: number) => {
    const neg = x < 0 || Object.is(x, -0);
    const a = Math.abs(x);
    const signBit = neg ? 0x8000 : 0;
    if (a >= max.v + ulp / 2) {
      // exactly half-way rounds to even: max has an odd mantissa, so to infinity
      return signBit | inf;
    }
    let lo = 0, hi = finite.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (finite[mid]!.v <= a) lo = mid; else hi = mid;
    }
    const below = finite[lo]!, above = finite[hi]!;
    let pick;
    if (a - below.v < above.v - a) pick = below;
    else if (a - below.v > above.v - a) pick = above;
    else pick = (below.h & 1) === 0 ? below : above;
    if (a <= below.v) pick = below;
    return signBit | pick.h;
  };
}

test('F16 and BF16 decode to f32 exactly, all 65536 patterns', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  for (const [dtype, decode] of [['F16', decodeF16], ['BF16', decodeBF16]] as const) {
    const got = addon().toFloat32(all, dtype);
    for (let h = 0; h < 65536; h++) {
      const want = decode(h);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got[h]), `${dtype} ${h.toString(16)}`);
      else assert.ok(Object.is(got[h], Math.fround(want)), `${dtype} 0x${h.toString(16)}: got ${got[h]}, want ${want}`);
    }
  }
});

test('f32 -> F16 and BF16 round to nearest, ties to even (random and special patterns)', () => {
  const n = 200_000;
  const bits = new Uint32Array(n);
  let s = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s ^ (s >>> 16), 0x45d9f3b) + 0x6b43a9b5) >>> 0;
    bits[i] = s;
  }
  // specials: exact ties, overflow edges, subnormal edges, zeros, infinities
  const specials = [0x00000000, 0x80000000, 0x3f808000, 0x3f818000, 0x477ff000, 0x477fefff, 0x477fe000, 0x7f7fffff, 0x7f800000, 0xff800000,
    0x33000000, 0x33000001, 0x33800000, 0x387fe000, 0x387ff000, 0x38800000, 0x00000001, 0x807fffff, 0x7f7f8000, 0x7f7f7fff];
  specials.forEach((b, i) => { bits[i] = b; });
  const f = new Float32Array(bits.buffer);
  for (const [dtype, decode] of [['F16', decodeF16], ['BF16', decodeBF16]] as const) {
    const encode = encoder(decode);
    const got = new Uint16Array(addon().fromFloat32(f, dtype).buffer);
    for (let i = 0; i < n; i++) {
      const x = f[i]!;
      if (Number.isNaN(x)) {
        assert.ok(Number.isNaN(decode(got[i]!)), `${dtype}: NaN stays NaN`);
        // BF16: the upper half, quiet bit set (as the CUDA twin and every CPU path give it)
        if (dtype === 'BF16') assert.equal(got[i], (bits[i]! >>> 16) | 0x40, `BF16 of NaN 0x${bits[i]!.toString(16)}`);
        continue;
      }
      const want = encode(x);
      assert.equal(got[i], want, `${dtype} of 0x${bits[i]!.toString(16)} (${x}): got 0x${got[i]!.toString(16)} want 0x${want.toString(16)}`);
    }
  }
});

test('conversion arguments are checked', () => {
  assert.throws(() => addon().toFloat32(new Uint8Array(3), 'F16'), { code: 'InvalidArgument', message: /multiple of the dtype size/ });
  assert.throws(() => addon().fromFloat32(new Float64Array(2) as unknown as Float32Array, 'BF16'), { code: 'InvalidArgument', message: /Float32Array/ });
  assert.throws(() => addon().toFloat32(new Uint8Array(4), 'Q8' as 'F16'), { code: 'InvalidArgument', message: /F32, F16 or BF16/ });
});
