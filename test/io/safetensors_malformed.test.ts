import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { SafetensorsError } from '../../src/errors.js';
import { FIXTURES, rawSafetensors, tempDir } from '../helpers.js';

const dir = tempDir();
const f32 = (shape: number[], begin: number) => ({ dtype: 'F32', shape, data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)] });

interface Case {
  name: string;
  bytes: Uint8Array;
  code: string;
  message: RegExp;
  tensor?: string;
}

const u8 = (n: number) => new Uint8Array(n);
const header = (s: string) => rawSafetensors(s);

const cases: Case[] = [
  { name: 'empty file', bytes: u8(0), code: 'TooSmall', message: /shorter than the 8-byte header length/ },
  { name: '7-byte file', bytes: u8(7), code: 'TooSmall', message: /file is 7 bytes/ },
  { name: 'header length 2^63', bytes: rawSafetensors({}, u8(0), 1n << 63n), code: 'HeaderTooLarge', message: /exceeds the 100 MB limit/ },
  { name: 'header length just over 100 MB', bytes: rawSafetensors({}, u8(0), 100_000_001n), code: 'HeaderTooLarge', message: /100000001/ },
  { name: 'header length past end of file', bytes: rawSafetensors({}, u8(0), 1000n), code: 'HeaderPastEnd', message: /runs past the end of the 10-byte file/ },
  { name: 'zero-length header', bytes: rawSafetensors('', u8(0)), code: 'InvalidJson', message: /unexpected end of header/ },
  { name: 'header is not JSON', bytes: header('hello'), code: 'InvalidJson', message: /invalid JSON header at byte 0/ },
  { name: 'header is a JSON array', bytes: header('[]'), code: 'InvalidJson', message: /not a JSON object/ },
  { name: 'truncated JSON', bytes: header('{"a": {'), code: 'InvalidJson', message: /invalid JSON/ },
  { name: 'garbage after the JSON object', bytes: header('{} x'), code: 'InvalidJson', message: /unexpected data after the JSON value/ },
  { name: 'invalid UTF-8 in a name', bytes: rawSafetensors(Buffer.concat([Buffer.from('{"a'), Buffer.from([0xff]), Buffer.from('":1}')]).toString('latin1').replace('\u00ff', '\uFFFF')), code: 'InvalidUtf8', message: /UTF-8/ },
  { name: 'duplicate tensor names', bytes: rawSafetensors(`{"w":${JSON.stringify(f32([1], 0))},"w":${JSON.stringify(f32([1], 4))}}`, u8(8)), code: 'DuplicateTensor', message: /tensor "w" is named twice/, tensor: 'w' },
  { name: 'duplicate key inside an entry', bytes: header('{"w":{"dtype":"F32","dtype":"F16","shape":[],"data_offsets":[0,4]}}'), code: 'DuplicateKey', message: /duplicate key "dtype"/ },
  { name: 'entry is not an object', bytes: header('{"w": 5}'), code: 'InvalidEntry', message: /tensor "w" is not a JSON object/, tensor: 'w' },
  { name: 'entry without dtype', bytes: rawSafetensors({ w: { shape: [1], data_offsets: [0, 4] } }, u8(4)), code: 'InvalidEntry', message: /tensor "w" has no string "dtype"/, tensor: 'w' },
  { name: 'entry without shape', bytes: rawSafetensors({ w: { dtype: 'F32', data_offsets: [0, 4] } }, u8(4)), code: 'InvalidEntry', message: /no array "shape"/, tensor: 'w' },
  { name: 'entry without data_offsets', bytes: rawSafetensors({ w: { dtype: 'F32', shape: [1] } }, u8(4)), code: 'InvalidEntry', message: /no array "data_offsets"/, tensor: 'w' },
  { name: 'unknown dtype', bytes: rawSafetensors({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, u8(16)), code: 'UnknownDtype', message: /tensor "w" has unknown dtype "F128"/, tensor: 'w' },
  { name: 'negative dimension', bytes: rawSafetensors({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, u8(4)), code: 'InvalidShape', message: /not a non-negative integer/, tensor: 'w' },
  { name: 'fractional dimension', bytes: rawSafetensors({ w: { dtype: 'F32', shape: [2.5], data_offsets: [0, 10] } }, u8(10)), code: 'InvalidShape', message: /not a non-negative integer/, tensor: 'w' },
  { name: 'element count overflows', bytes: header('{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}'), code: 'InvalidShape', message: /overflows/, tensor: 'w' },
  { name: 'byte size overflows', bytes: header('{"w":{"dtype":"F64","shape":[4503599627370496,128],"data_offsets":[0,8]}}'), code: 'InvalidShape', message: /byte size overflows/, tensor: 'w' },
  // a zero-size tensor may have any other dimension, but one above 2^53 - 1 would reach JavaScript rounded
  { name: 'dimension above 2^53 - 1 in a zero-size tensor', bytes: header('{"w":{"dtype":"F32","shape":[0,9007199254740993],"data_offsets":[0,0]}}'), code: 'InvalidShape', message: /dimension 9007199254740993, above 2\^53 - 1/, tensor: 'w' },
  // the tensor whose offsets were moved past the end is named, not its neighbour that now follows a gap
  { name: 'offsets moved past the data end', bytes: rawSafetensors('{"a":{"dtype":"F32","shape":[1],"data_offsets":[100,104]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', u8(8)), code: 'OffsetsOutOfRange', message: /tensor "a" data_offsets \[100, 104\) run past the 8-byte data section/, tensor: 'a' },
  { name: 'sub-byte dtype not filling whole bytes', bytes: rawSafetensors({ w: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, u8(2)), code: 'InvalidShape', message: /whole number of bytes/, tensor: 'w' },
  { name: 'three data offsets', bytes: rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, u8(4)), code: 'InvalidOffsets', message: /needs data_offsets \[begin, end\]/, tensor: 'w' },
  { name: 'end before begin', bytes: rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, u8(8)), code: 'InvalidOffsets', message: /end 4 before begin 8/, tensor: 'w' },
  { name: 'negative offset', bytes: rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, u8(4)), code: 'InvalidOffsets', message: /not a non-negative integer/, tensor: 'w' },
  { name: 'size does not match shape and dtype', bytes: rawSafetensors({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, u8(4)), code: 'SizeMismatch', message: /has 4 bytes but shape and dtype F32 need 8/, tensor: 'w' },
  { name: 'offsets past the end of the file', bytes: rawSafetensors({ w: f32([4], 0) }, u8(8)), code: 'OffsetsOutOfRange', message: /run past the 8-byte data section/, tensor: 'w' },
  { name: 'offsets beyond 2^53', bytes: header('{"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551614,18446744073709551615]}}'), code: 'OffsetsOutOfRange', message: /18446744073709551615/, tensor: 'w' },
  { name: 'offset that does not fit 64 bits', bytes: header('{"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551616,18446744073709551617]}}'), code: 'InvalidOffsets', message: /not a non-negative integer/, tensor: 'w' },
  { name: 'overlapping tensors', bytes: rawSafetensors({ a: f32([2], 0), b: f32([2], 4) }, u8(12)), code: 'Overlap', message: /tensor "b" overlaps tensor "a"/, tensor: 'b' },
  { name: 'gap between tensors', bytes: rawSafetensors({ a: f32([1], 0), b: f32([1], 8) }, u8(12)), code: 'Gap', message: /unused bytes \[4, 8\) before tensor "b"/, tensor: 'b' },
  { name: 'gap before the first tensor', bytes: rawSafetensors({ a: f32([1], 4) }, u8(8)), code: 'Gap', message: /unused bytes \[0, 4\)/, tensor: 'a' },
  { name: 'trailing bytes after the last tensor', bytes: rawSafetensors({ a: f32([1], 0) }, u8(9)), code: 'TrailingBytes', message: /5 bytes after the last tensor/ },
  { name: 'data section truncated', bytes: rawSafetensors({ a: f32([1], 0), b: f32([2], 4) }, u8(10)), code: 'OffsetsOutOfRange', message: /tensor "b"/, tensor: 'b' },
  { name: '__metadata__ not an object', bytes: header('{"__metadata__": ["x"]}'), code: 'InvalidMetadata', message: /__metadata__ is not a JSON object/ },
  { name: '__metadata__ value not a string', bytes: header('{"__metadata__": {"format": 1}}'), code: 'InvalidMetadata', message: /value of "format" is not a string/ },
  { name: 'nesting deeper than 64 levels', bytes: header('{"__metadata__":' + '['.repeat(100) + ']'.repeat(100) + '}'), code: 'InvalidJson', message: /nesting deeper than 64/ },
  { name: 'invalid escape', bytes: header('{"a\\q": 1}'), code: 'InvalidJson', message: /invalid escape character/ },
  { name: 'unpaired surrogate escape', bytes: header('{"\\ud800": 1}'), code: 'InvalidJson', message: /unpaired surrogate/ },
  { name: 'raw control character in a string', bytes: header('{"a\nb": 1}'), code: 'InvalidJson', message: /control character in string/ },
  { name: 'number with a leading plus', bytes: header('{"w":{"dtype":"U8","shape":[+1],"data_offsets":[0,1]}}'), code: 'InvalidJson', message: /unexpected character '\+'/ },
];

// Invalid UTF-8 needs raw bytes: rebuild that case byte for byte.
{
  const json = Buffer.concat([Buffer.from('{"a'), Buffer.from([0xc3, 0x28]), Buffer.from('": 1}')]);
  const i = cases.findIndex((c) => c.name === 'invalid UTF-8 in a name');
  cases[i] = { ...cases[i]!, bytes: rawSafetensors(json.toString('latin1')) };
  const b = new Uint8Array(8 + json.length);
  new DataView(b.buffer).setBigUint64(0, BigInt(json.length), true);
  b.set(json, 8);
  cases[i]!.bytes = b;
}

test(`at least 30 malformed files are covered (${cases.length})`, () => {
  assert.ok(cases.length >= 30);
  assert.equal(new Set(cases.map((c) => c.name)).size, cases.length);
});

cases.forEach((c, i) => {
  test(`rejects: ${c.name} (${c.code})`, () => {
    const path = join(dir, `case${i}.safetensors`);
    writeFileSync(path, c.bytes);
    assert.throws(() => SafetensorsFile.open(path), (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
      assert.equal(e.code, c.code);
      assert.equal(e.file, path);
      assert.ok(e.message.startsWith(path + ': '), e.message);
      assert.match(e.message, c.message);
      if (c.tensor !== undefined) assert.equal(e.tensor, c.tensor);
      return true;
    });
  });
});

test('rejects a missing file and a folder with clear codes', () => {
  assert.throws(() => SafetensorsFile.open(join(dir, 'nope.safetensors')), { code: 'FileNotFound', message: /nope\.safetensors: cannot open/ });
  const sub = join(dir, 'a-folder');
  mkdirSync(sub);
  assert.throws(() => SafetensorsFile.open(sub), { code: 'NotAFile' });
});

test('accepts a header whose data start is not 8-byte aligned and copies misaligned views', () => {
  const data = new Uint8Array(new Float32Array([1.5, -2]).buffer);
  const bytes = rawSafetensors({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data);
  const path = join(dir, 'unaligned.safetensors');
  writeFileSync(path, bytes);
  const f = SafetensorsFile.open(path);
  assert.notEqual(f.dataStart % 4, 0);
  assert.deepEqual(Array.from(f.view('w') as Float32Array), [1.5, -2]);
  assert.deepEqual(Array.from(f.toFloat32('w')), [1.5, -2]);
});

test('random corruption of a valid file is rejected cleanly or read, never a crash', () => {
  const original = readFileSync(join(FIXTURES, 'safetensors', 'all_dtypes.safetensors'));
  let seed = 12345;
  const rnd = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const path = join(dir, 'fuzz.safetensors');
  let rejected = 0;
  for (let it = 0; it < 400; it++) {
    const b = Buffer.from(original);
    const edits = 1 + Math.floor(rnd() * 4);
    for (let k = 0; k < edits; k++) {
      // bias towards the header, where the structure lives
      const pos = rnd() < 0.8 ? Math.floor(rnd() * (8 + 920)) : Math.floor(rnd() * b.length);
      b[pos] = Math.floor(rnd() * 256);
    }
    const cut = rnd() < 0.2 ? Math.floor(rnd() * b.length) : b.length;
    writeFileSync(path, b.subarray(0, cut));
    try {
      const f = SafetensorsFile.open(path);
      for (const t of f.tensors) f.bytes(t.name);
      f.close();
    } catch (e) {
      assert.ok(e instanceof SafetensorsError, `not a SafetensorsError: ${String(e)}`);
      rejected++;
    }
  }
  assert.ok(rejected > 200, `only ${rejected} of 400 corruptions were rejected`);
});
