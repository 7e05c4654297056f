import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { FIXTURES } from '../helpers.js';

interface ExpectedTensor {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
  nbytes: number;
  sha256: string;
  hex?: string;
  values?: (number | string | boolean)[];
}
interface ExpectedFile {
  size: number;
  header_len: number;
  data_start: number;
  metadata: Record<string, string> | null;
  tensors: Record<string, ExpectedTensor>;
}

const dir = join(FIXTURES, 'safetensors');
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { files: Record<string, ExpectedFile> };

function decode(v: number | string | boolean): number {
  if (v === 'nan') return NaN;
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  return Number(v);
}

for (const [rel, exp] of Object.entries(expected.files)) {
  test(`reads ${rel} written by Python safetensors identically`, () => {
    const f = SafetensorsFile.open(join(dir, rel));
    try {
      assert.equal(f.fileSize, exp.size);
      assert.equal(f.headerLength, exp.header_len);
      assert.equal(f.dataStart, exp.data_start);
      assert.deepEqual({ ...f.metadata }, exp.metadata ?? {});
      assert.deepEqual(f.tensors.map((t) => t.name).sort(), Object.keys(exp.tensors).sort());
      for (const [name, t] of Object.entries(exp.tensors)) {
        const info = f.info(name);
        assert.equal(info.dtype, t.dtype, name);
        assert.deepEqual([...info.shape], t.shape, name);
        assert.deepEqual([info.begin, info.end], t.data_offsets, name);
        const bytes = f.bytes(name);
        assert.equal(bytes.byteLength, t.nbytes, name);
        assert.equal(createHash('sha256').update(bytes).digest('hex'), t.sha256, name);
        if (t.hex !== undefined) assert.equal(Buffer.from(bytes).toString('hex'), t.hex, name);
        if (t.values !== undefined && (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16')) {
          const got = f.toFloat32(name);
          assert.equal(got.length, t.values.length, name);
          t.values.forEach((v, i) => {
            const want = decode(v);
            assert.ok(Object.is(got[i], want) || (Number.isNaN(got[i]) && Number.isNaN(want)),
              `${name}[${i}]: got ${got[i]}, want ${want}`);
          });
        }
      }
    } finally {
      f.close();
    }
  });
}

test('typed views: F32 as Float32Array, F16/BF16 as Uint16Array, others as bytes', () => {
  const f = SafetensorsFile.open(join(dir, 'all_dtypes.safetensors'));
  assert.ok(f.view('f32') instanceof Float32Array);
  assert.ok(f.view('bf16') instanceof Uint16Array);
  assert.ok(f.view('f16') instanceof Uint16Array);
  assert.ok(f.view('i32') instanceof Uint8Array);
  // zero-copy: the same bytes the file holds
  const v = f.view('f32') as Float32Array;
  assert.deepEqual(Array.from(v), Array.from(f.toFloat32('f32')));
  f.close();
  assert.throws(() => f.bytes('f32'), { name: 'SafetensorsError', code: 'Closed' });
});

/** The garbage collector, reachable without --expose-gc on the command line. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 4; i++) gc();
}

test('views stay valid after close and after the file object is garbage-collected: the bytes are still the file\'s', () => {
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const want = expected.files['all_dtypes.safetensors']!.tensors;
  const views = (() => {
    const f = SafetensorsFile.open(join(dir, 'all_dtypes.safetensors'));
    const out = { f32: f.view('f32') as Float32Array, bf16: f.bytes('bf16') };
    f.close();
    return out;  // f is unreachable from here on
  })();
  collectGarbage();
  // noise on the heap so a freed mapping would be reused or unmapped
  const junk = Array.from({ length: 64 }, () => new Float64Array(1 << 14).fill(Math.PI));
  collectGarbage();
  assert.equal(sha(new Uint8Array(views.f32.buffer, views.f32.byteOffset, views.f32.byteLength)), want.f32!.sha256);
  assert.equal(sha(views.bf16), want.bf16!.sha256);
  assert.equal(junk.length, 64);
});

test('writing into a view never touches the file (private mapping)', () => {
  const path = join(dir, 'all_dtypes.safetensors');
  const before = readFileSync(path);
  const f = SafetensorsFile.open(path);
  const v = f.view('f32') as Float32Array;
  v[0] = 12345;
  f.close();
  assert.deepEqual(readFileSync(path), before);
});

test('edge cases: empty, [3,0] and 0-rank tensors', () => {
  const f = SafetensorsFile.open(join(dir, 'edge_cases.safetensors'));
  assert.equal(f.bytes('empty').byteLength, 0);
  assert.equal(f.toFloat32('empty').length, 0);
  assert.equal(f.toFloat32('empty_3x0').length, 0);
  assert.deepEqual([...f.info('scalar').shape], []);
  assert.equal(f.toFloat32('scalar').length, 1);
  assert.throws(() => f.info('missing'), { code: 'TensorNotFound', message: /edge_cases\.safetensors: no tensor named "missing"/ });
  assert.throws(() => f.toFloat32('empty') && SafetensorsFile.open(join(dir, 'all_dtypes.safetensors')).toFloat32('i32'), { code: 'NotFloat' });
  f.close();
});

test('sharded checkpoint folder via model.safetensors.index.json', () => {
  const ck = Checkpoint.open(join(dir, 'sharded'));
  try {
    const index = JSON.parse(readFileSync(join(dir, 'sharded', 'model.safetensors.index.json'), 'utf8')) as {
      metadata: { total_size: number }; weight_map: Record<string, string>;
    };
    assert.deepEqual(ck.names.sort(), Object.keys(index.weight_map).sort());
    assert.equal(ck.totalBytes, index.metadata.total_size);
    assert.equal(ck.files.length, 2);
    for (const [name, shard] of Object.entries(index.weight_map)) {
      assert.ok(ck.locate(name).file.path.endsWith(shard));
    }
    const cfg = ck.config();
    assert.equal(cfg?.hidden_size, 16);
  } finally {
    ck.close();
  }
});
