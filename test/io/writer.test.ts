import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { CheckpointWriter, SafetensorsWriter, planShards, type TensorSpec } from '../../src/io/writer.js';
import { byteSize } from '../../src/io/dtypes.js';
import { addon } from '../../src/native/addon.js';
import { FIXTURES, ROOT, pythonWithSafetensors, tempDir } from '../helpers.js';

const dir = tempDir();

function pseudoRandomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s ^ (s >>> 15), 2246822519) + 374761393) >>> 0;
    out[i] = s & 0xff;
  }
  return out;
}

const ALL: TensorSpec[] = [
  { name: 'f64', dtype: 'F64', shape: [3, 3] },
  { name: 'f32', dtype: 'F32', shape: [7] },
  { name: 'f16', dtype: 'F16', shape: [5, 3] },
  { name: 'bf16', dtype: 'BF16', shape: [1, 7] },
  { name: 'i64', dtype: 'I64', shape: [2] },
  { name: 'i32', dtype: 'I32', shape: [3] },
  { name: 'i16', dtype: 'I16', shape: [5] },
  { name: 'i8', dtype: 'I8', shape: [9] },
  { name: 'u8', dtype: 'U8', shape: [2, 2, 2] },
  { name: 'bool', dtype: 'BOOL', shape: [3] },
  { name: 'u16', dtype: 'U16', shape: [1] },
  { name: 'u32', dtype: 'U32', shape: [2] },
  { name: 'u64', dtype: 'U64', shape: [1] },
  { name: 'f8', dtype: 'F8_E4M3', shape: [5] },
  { name: 'empty', dtype: 'F32', shape: [0] },
  { name: 'empty2', dtype: 'BF16', shape: [4, 0, 2] },
  { name: 'scalar', dtype: 'F32', shape: [] },
  { name: 'scalar16', dtype: 'F16', shape: [] },
];

function writeAll(path: string, specs: TensorSpec[], seed: number, metadata?: Record<string, string>): Map<string, Uint8Array> {
  const data = new Map(specs.map((s, i) => [s.name, pseudoRandomBytes(byteSize(s.dtype, s.shape), seed + i)]));
  const w = new SafetensorsWriter(path, specs, metadata);
  // write in reverse order, and the larger tensors in two chunks
  for (const s of [...specs].reverse()) {
    const d = data.get(s.name)!;
    const half = Math.floor(d.length / 2);
    w.write(s.name, d.subarray(half), half);
    w.write(s.name, d.subarray(0, half), 0);
  }
  w.finish();
  return data;
}

test('round trip of every dtype, empty and 0-rank tensors, chunked writes in any order', () => {
  const path = join(dir, 'all.safetensors');
  const data = writeAll(path, ALL, 7, { note: 'hello ✓' });
  const f = SafetensorsFile.open(path);
  assert.deepEqual({ ...f.metadata }, { format: 'pt', note: 'hello ✓' });
  assert.equal(f.dataStart % 8, 0, 'data section starts 8-byte aligned');
  for (const s of ALL) {
    const info = f.info(s.name);
    assert.equal(info.dtype, s.dtype);
    assert.deepEqual([...info.shape], s.shape);
    assert.deepEqual(f.bytes(s.name), data.get(s.name), s.name);
    const width = Math.max(1, byteSize(s.dtype, [1]));
    assert.equal((f.dataStart + info.begin) % width, 0, `${s.name} is aligned to its element size`);
  }
  f.close();
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('partial')), []);
});

test('f32 round trip through toFloat32/fromFloat32 keeps every value', () => {
  const path = join(dir, 'vals.safetensors');
  const vals = new Float32Array([0, -0, 1.5, -2.25, 3.4028234663852886e38, 1e-45, Infinity, -Infinity, NaN]);
  const w = new SafetensorsWriter(path, [{ name: 'x', dtype: 'F32', shape: [vals.length] }]);
  w.write('x', vals);
  w.finish();
  const got = SafetensorsFile.open(path).toFloat32('x');
  vals.forEach((v, i) => assert.ok(Object.is(got[i], v) || (Number.isNaN(v) && Number.isNaN(got[i]))));
});

test('an unfinished writer leaves no file under the final name; finish() refuses incomplete data', () => {
  const path = join(dir, 'incomplete.safetensors');
  const w = new SafetensorsWriter(path, [{ name: 'a', dtype: 'F32', shape: [4] }, { name: 'b', dtype: 'F32', shape: [2] }]);
  w.write('a', new Float32Array(4));
  assert.equal(existsSync(path), false);
  assert.ok(existsSync(w.tempPath));
  assert.throws(() => w.finish(), { code: 'WriteFailed', message: /missing: b/ });
  assert.equal(existsSync(path), false);
  assert.equal(existsSync(w.tempPath), false);
});

test('abort() removes the temporary file; writes outside a slot are refused', () => {
  const path = join(dir, 'aborted.safetensors');
  const w = new SafetensorsWriter(path, [{ name: 'a', dtype: 'F32', shape: [2] }]);
  assert.throws(() => w.write('a', new Float32Array(3)), { code: 'Usage', message: /overflows tensor "a"/ });
  assert.throws(() => w.write('zz', new Float32Array(1)), { code: 'Usage', message: /no tensor "zz"/ });
  w.abort();
  w.abort();
  assert.equal(existsSync(path), false);
  assert.equal(existsSync(w.tempPath), false);
});

test('startWriteback: a written slot is handed to the kernel; an unknown tensor, a closed writer and bad arguments are refused', () => {
  const path = join(dir, 'writeback.safetensors');
  const w = new SafetensorsWriter(path, [{ name: 'a', dtype: 'F32', shape: [4096] }]);
  w.write('a', new Float32Array(4096).fill(1.5));
  w.startWriteback('a');
  assert.throws(() => w.startWriteback('zz'), { code: 'Usage', message: /no tensor "zz"/ });
  w.finish();
  assert.deepEqual(new Float32Array(readFileSync(path).buffer.slice(-4 * 4096)), new Float32Array(4096).fill(1.5));
  assert.throws(() => w.startWriteback('a'), /writer is closed/);
  assert.throws(() => addon().startWriteback(-1, 0, 1), /fd must be a file descriptor/);
  assert.throws(() => addon().startWriteback(0, -5, 1), /offset must be a non-negative integer/);
  assert.throws(() => addon().startWriteback(0, 0, 0.5), /length must be a non-negative integer/);
});

test('layout rejects duplicate names, unknown dtypes and bad shapes', () => {
  assert.throws(() => new SafetensorsWriter(join(dir, 'x.safetensors'), [{ name: 'a', dtype: 'F32', shape: [1] }, { name: 'a', dtype: 'F32', shape: [1] }]), { message: /listed twice/ });
  assert.throws(() => new SafetensorsWriter(join(dir, 'x.safetensors'), [{ name: 'a', dtype: 'Q4', shape: [1] }]), { message: /unknown dtype Q4/ });
  assert.throws(() => new SafetensorsWriter(join(dir, 'x.safetensors'), [{ name: 'a', dtype: 'F32', shape: [-1] }]), { message: /invalid shape/ });
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.x.safetensors')), []);
});

test('sharded checkpoint: shard plan, index, and read back through Checkpoint', () => {
  const out = join(dir, 'sharded');
  const specs: TensorSpec[] = Array.from({ length: 10 }, (_, i) => ({ name: `layers.${i}.w`, dtype: 'BF16', shape: [10 + i, 8] }));
  const plan = planShards(specs, 700);
  assert.ok(plan.length > 1);
  for (const shard of plan) {
    const size = shard.reduce((a, s) => a + byteSize(s.dtype, s.shape), 0);
    assert.ok(size <= 700 || shard.length === 1);
  }
  mkdirSync(out);
  const w = new CheckpointWriter(out, specs, { shardSize: 700 });
  const data = new Map(specs.map((s, i) => [s.name, pseudoRandomBytes(byteSize(s.dtype, s.shape), i)]));
  for (const s of specs) w.write(s.name, data.get(s.name)!);
  const files = w.finish();
  assert.equal(files.length, plan.length + 1);
  assert.ok(files.includes('model.safetensors.index.json'));
  const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number } };
  const ck = Checkpoint.open(out);
  assert.equal(index.metadata.total_size, ck.totalBytes);
  for (const s of specs) assert.deepEqual(ck.locate(s.name).file.bytes(s.name), data.get(s.name));
  ck.close();
});

test('one shard is written as model.safetensors without an index', () => {
  const out = join(dir, 'single');
  mkdirSync(out);
  const w = new CheckpointWriter(out, [{ name: 'a', dtype: 'F32', shape: [2] }]);
  w.write('a', new Float32Array([1, 2]));
  assert.deepEqual(w.finish(), ['model.safetensors']);
  assert.deepEqual(readdirSync(out), ['model.safetensors']);
});

test('a checkpoint writer that fails leaves no shard and no index', () => {
  const out = join(dir, 'failed');
  mkdirSync(out);
  const specs: TensorSpec[] = [{ name: 'a', dtype: 'F32', shape: [100] }, { name: 'b', dtype: 'F32', shape: [100] }];
  const w = new CheckpointWriter(out, specs, { shardSize: 400 });
  w.write('a', new Float32Array(100));
  assert.throws(() => w.finish(), { code: 'WriteFailed', message: /missing: b/ });
  assert.deepEqual(readdirSync(out), []);
});

// Python's safetensors must read our files identically. With a Python that has
// safetensors (the repo's .venv or $DFMERGE_PYTHON) the test runs it on a fresh
// file; without one it checks that our writer still produces, byte for byte, the
// committed file whose Python reading is recorded in python_read.json.
const committed = join(FIXTURES, 'safetensors', 'written_by_dfmerge.safetensors');
const committedRead = join(FIXTURES, 'safetensors', 'written_by_dfmerge.python_read.json');
const WRITER_FIXTURE_SEED = 99;

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

test('our writer is deterministic and matches the committed file Python read', () => {
  const path = join(dir, 'det.safetensors');
  writeAll(path, ALL, WRITER_FIXTURE_SEED, { origin: 'dfmerge' });
  if (process.env.DFMERGE_UPDATE_FIXTURES === '1') writeFileSync(committed, readFileSync(path));
  assert.equal(sha256(readFileSync(path)), sha256(readFileSync(committed)), 'writer output changed: regenerate with DFMERGE_UPDATE_FIXTURES=1 and re-run the Python check');
  const recorded = JSON.parse(readFileSync(committedRead, 'utf8')) as Record<string, { metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; sha256: string }> }>;
  const entry = Object.values(recorded)[0]!;
  const f = SafetensorsFile.open(path);
  assert.deepEqual(entry.metadata, { ...f.metadata });
  for (const t of f.tensors) {
    assert.deepEqual(entry.tensors[t.name], { dtype: t.dtype, shape: [...t.shape], sha256: sha256(f.bytes(t.name)) }, t.name);
  }
});

const python = pythonWithSafetensors();
test('Python safetensors reads files we write identically', { skip: python ? false : 'no Python with safetensors (set DFMERGE_PYTHON or create .venv); the committed check above covers it' }, () => {
  const path = join(dir, 'forpython.safetensors');
  writeAll(path, ALL, 1234, { origin: 'dfmerge' });
  const r = spawnSync(python!, [join(ROOT, 'scripts', 'fixtures', 'read_with_python.py'), path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const read = JSON.parse(r.stdout) as Record<string, { metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; sha256: string }> }>;
  const entry = read[path]!;
  const f = SafetensorsFile.open(path);
  assert.deepEqual(entry.metadata, { ...f.metadata });
  assert.equal(Object.keys(entry.tensors).length, ALL.length);
  for (const t of f.tensors) {
    assert.deepEqual(entry.tensors[t.name], { dtype: t.dtype, shape: [...t.shape], sha256: sha256(f.bytes(t.name)) }, t.name);
  }
  if (process.env.DFMERGE_UPDATE_FIXTURES === '1') {
    const r2 = spawnSync(python!, [join(ROOT, 'scripts', 'fixtures', 'read_with_python.py'), committed], { encoding: 'utf8' });
    assert.equal(r2.status, 0, r2.stderr);
    const parsed = JSON.parse(r2.stdout) as Record<string, unknown>;
    writeFileSync(committedRead, JSON.stringify({ 'written_by_dfmerge.safetensors': Object.values(parsed)[0] }, null, 2) + '\n');
  }
});
