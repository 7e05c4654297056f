/**
 * The radix selection behind TIES', breadcrumbs' and SCE's cut-offs
 * (native/kernels/radix_select.cc): the r-th largest key of lists chosen to
 * reach each of its paths (short lists, several narrowing rounds, shared high
 * bits, the top bit set, a bucket of one value, every key equal, heavy ties at
 * the answer), against a sort.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { addon } from '../../src/native/addon.js';
import { Rng } from './reference.js';

function check(name: string, keys: Uint32Array, ranks: number[]): void {
  test(`${name} (n = ${keys.length})`, () => {
    const sorted = Uint32Array.from(keys).sort().reverse();
    const before = Uint32Array.from(keys);
    for (const r of ranks) {
      const got = addon().kthLargestU32(keys, r);
      if (got !== sorted[r]) assert.fail(`rank ${r}: got ${got}, want ${sorted[r]}`);
    }
    assert.deepEqual(keys, before, 'the keys passed in are left as they were');
  });
}

function spread(n: number): number[] {
  return [0, 1, Math.floor(n / 3), Math.floor(n / 2), n - 2, n - 1].filter((r) => r >= 0 && r < n);
}

describe('kth largest key by radix selection', () => {
  const rng = new Rng(11);
  const u32 = () => Math.floor(rng.next() * 2 ** 32) >>> 0;
  const f32bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;

  for (const n of [1, 2, 17, 4096, 4097, 4099, 100_003]) {
    check('uniform 32-bit keys', Uint32Array.from({ length: n }, u32), spread(n));
  }
  // |τ| of bf16-like values: a few exponents, few mantissa bits, many ties
  const bf16ish = Uint32Array.from({ length: 200_000 }, () => f32bits(Math.abs(Math.fround(0.01 * rng.normal()))) & 0xffff0000);
  check('|τ| bit patterns of bf16 differences', bf16ish, spread(bf16ish.length));
  // keys sharing their high bits (a bracket's candidates): the digit is found below them
  check('a narrow bracket', Uint32Array.from({ length: 50_000 }, () => 0x3c000000 + Math.floor(rng.next() * 5000)), spread(50_000));
  check('the top bit set or not', Uint32Array.from({ length: 30_000 }, () => (rng.next() < 0.5 ? 0x80000000 : 0) | (u32() & 0xff)), spread(30_000));
  check('every key equal', new Uint32Array(10_000).fill(123456), spread(10_000));
  check('zeros and the largest key', Uint32Array.from({ length: 9000 }, (_, i) => (i % 3 === 0 ? 0xffffffff : 0)), spread(9000));
  // two values, the rank boundary between them; then one value in a bucket of its own below a crowd
  check('two values', Uint32Array.from({ length: 20_000 }, (_, i) => (i < 7001 ? 5 : 9)), [0, 12_998, 12_999, 13_000, 19_999]);
  const crowd = Uint32Array.from({ length: 60_000 }, (_, i) => (i === 777 ? 1 : 1_000_000 + (i % 97)));
  check('one key below a crowd', crowd, [0, 59_998, 59_999]);

  test('a rank outside the list is refused', () => {
    assert.throws(() => addon().kthLargestU32(new Uint32Array(4), 4), /rank below the number of keys/);
    assert.throws(() => addon().kthLargestU32(new Uint32Array(4), -1), /rank below the number of keys/);
  });
});
