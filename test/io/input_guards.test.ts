// Inputs that change under a reader, NaN/Inf values, and names from files used as keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, renameSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { CheckpointWriter, SafetensorsWriter } from '../../src/io/writer.js';
import { FIXTURES, tempDir } from '../helpers.js';

function f32File(path: string, values: number[], name = 'w'): void {
  const w = new SafetensorsWriter(path, [{ name, dtype: 'F32', shape: [values.length] }]);
  w.write(name, new Float32Array(values));
  w.finish();
}

test('an input truncated while mapped: reading it exits 1 naming the file instead of dying by SIGBUS', () => {
  const d = tempDir();
  const path = join(d, 'big.safetensors');
  f32File(path, Array.from({ length: 1 << 16 }, (_, i) => i));
  const script = `
    import { truncateSync } from 'node:fs';
    import { SafetensorsFile } from ${JSON.stringify(new URL('../../src/io/safetensors.js', import.meta.url).href)};
    const f = SafetensorsFile.open(${JSON.stringify(path)});
    const v = f.view('w');
    truncateSync(${JSON.stringify(path)}, 4096);
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i];
    console.log('read', s);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.signal, null, `killed by ${r.signal}`);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`dfmerge: ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: the file was truncated or rewritten by another program while dfmerge was reading it`));
});

test('checkUnchanged: a file rewritten, truncated or replaced since it was opened is reported naming it', () => {
  const d = tempDir();
  const path = join(d, 'a.safetensors');
  const fresh = () => { f32File(path, [1, 2, 3, 4]); return SafetensorsFile.open(path); };

  let f = fresh();
  f.checkUnchanged();
  utimesSync(path, new Date(), new Date(Date.now() + 5000));  // rewritten in place: mtime moves
  assert.throws(() => f.checkUnchanged(), { code: 'InputChanged', message: /a\.safetensors: was modified while it was being read/ });
  f.close();

  f = fresh();
  truncateSync(path, 64);
  assert.throws(() => f.checkUnchanged(), { code: 'InputChanged', message: /changed size from \d+ to 64 bytes/ });
  f.close();

  f = fresh();
  copyFileSync(path, join(d, 'b'));
  renameSync(join(d, 'b'), path);
  assert.throws(() => f.checkUnchanged(), { code: 'InputChanged', message: /was replaced by another file/ });
  f.close();
});

test('NaN and infinities are found in F32, F16 and BF16 tensors, naming file, tensor and element', () => {
  const d = tempDir();
  const path = join(d, 'nan.safetensors');
  f32File(path, [0, 1, -2, NaN, 5, Infinity], 'layer.w');
  const f = SafetensorsFile.open(path);
  assert.deepEqual(f.nonFinite('layer.w'), { count: 2, first: 3 });
  assert.throws(() => f.assertFinite('layer.w'), { code: 'NonFinite', message: /nan\.safetensors: tensor "layer\.w" holds 2 NaN or infinite value\(s\) \(first at element 3\)/ });
  f.close();
  // half precision: 0x7c00 = +Inf (F16), 0xff80 = -Inf (BF16), 0x7bff = 65504 (finite F16 max)
  const h = join(d, 'half.safetensors');
  const w = new SafetensorsWriter(h, [{ name: 'h', dtype: 'F16', shape: [3] }, { name: 'b', dtype: 'BF16', shape: [3] }]);
  w.write('h', new Uint16Array([0x3c00, 0x7bff, 0x7c00]));
  w.write('b', new Uint16Array([0xff80, 0x3f80, 0x7f7f]));
  w.finish();
  const g = SafetensorsFile.open(h);
  assert.deepEqual(g.nonFinite('h'), { count: 1, first: 2 });
  assert.deepEqual(g.nonFinite('b'), { count: 1, first: 0 });
  g.close();
  const clean = SafetensorsFile.open(join(FIXTURES, 'llama', 'gqa', 'model.safetensors'));
  for (const t of clean.tensors) clean.assertFinite(t.name);
  clean.close();
});

test('a tensor or metadata key named "__proto__" survives writing, the index and reading', () => {
  const d = tempDir();
  const names = ['__proto__', 'constructor', 'toString', 'a'];
  const w = new CheckpointWriter(d, names.map((name) => ({ name, dtype: 'F32', shape: [1024] })), { shardSize: 4096 });
  for (const [i, n] of names.entries()) w.write(n, new Float32Array(1024).fill(i));
  w.finish();
  const ck = Checkpoint.open(d);
  try {
    assert.deepEqual(ck.names.sort(), [...names].sort());
    assert.equal(ck.index?.weightMap.size, 4);
    assert.equal(ck.locate('__proto__').file.toFloat32('__proto__')[7], 0);
    assert.equal(ck.locate('toString').file.toFloat32('toString')[7], 2);
  } finally {
    ck.close();
  }
  // metadata read back as data, not as the object's prototype
  const p = join(d, 'meta.safetensors');
  const json = Buffer.from('{"__metadata__":{"__proto__":"x","format":"pt"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
  const buf = Buffer.alloc(8 + json.length + 4);
  buf.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(buf, 8);
  writeFileSync(p, buf);
  const f = SafetensorsFile.open(p);
  assert.deepEqual(Object.keys(f.metadata).sort(), ['__proto__', 'format']);
  assert.equal(Object.getOwnPropertyDescriptor(f.metadata, '__proto__')?.value, 'x');
  f.close();
});
