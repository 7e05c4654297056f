/** Bad merge arguments give typed MergeErrors (with a code), never a crash. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MergeError } from '../../src/errors.js';
import { accumulateFisher, mergeTensor, sumOfSquares, streamCopy, type MergeTensorRequest } from '../../src/merge/kernels.js';
import { addon } from '../../src/native/addon.js';

const n = 16;
const f32 = (len = n) => new Float32Array(len);
const t = (len = n) => ({ data: f32(len), dtype: 'F32' as const });
const out = (len = n) => ({ kind: 'memory' as const, data: f32(len), dtype: 'F32' as const });

async function rejectsWith(req: unknown, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(mergeTensor(req as MergeTensorRequest), (e: unknown) => {
    assert.ok(e instanceof MergeError, `expected MergeError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

test('unknown method', async () => {
  await rejectsWith({ method: 'slerp', models: [t()], weights: [1], out: out() }, 'UnknownMethod', /slerp/);
  // the raw addon throws argument errors synchronously, with a code
  assert.throws(() => addon().mergeTensor({ method: 'nope' as never, n, models: [], out: { data: f32(), dtype: 'F32' } }),
    (e: unknown) => (e as { code?: string }).code === 'UnknownMethod');
});

test('wrong input length names the input', async () => {
  await rejectsWith({ method: 'linear', n, models: [t(), t(n - 1)], weights: [1, 1], out: out() }, 'InvalidArgument', /models\[1\]/);
  await rejectsWith({ method: 'task_arithmetic', n, base: t(n + 1), models: [t()], weights: [1], out: out() }, 'InvalidArgument', /base/);
});

test('wrong output length', async () => {
  await rejectsWith({ method: 'linear', models: [t()], weights: [1], out: out(n + 2) }, 'InvalidArgument', /out/);
});

test('weights do not match models', async () => {
  await rejectsWith({ method: 'linear', models: [t(), t()], weights: [1], out: out() }, 'InvalidArgument', /weights/);
  await rejectsWith({ method: 'linear', models: [t()], weights: [NaN], out: out() }, 'InvalidArgument', /finite/);
  await rejectsWith({ method: 'linear', models: [t(), t()], weights: [1, -1], out: out() }, 'InvalidArgument', /zero/);
});

test('missing base, fishers, bad density', async () => {
  await rejectsWith({ method: 'ties', models: [t()], weights: [1], density: 0.5, out: out() }, 'InvalidArgument', /base/);
  await rejectsWith({ method: 'fisher', models: [t(), t()], fishers: [t()], out: out() }, 'InvalidArgument', /Fisher/);
  await rejectsWith({ method: 'ties', base: t(), models: [t()], weights: [1], density: 1.5, out: out() }, 'InvalidArgument', /density/);
  await rejectsWith({ method: 'dare_linear', tensor: 'x', seed: 1, base: t(), models: [t()], weights: [1], density: 0, out: out() }, 'InvalidArgument', /density/);
  await rejectsWith({ method: 'dare_ties', base: t(), seed: 1, models: [t()], weights: [1], density: 0.5, out: out() }, 'InvalidArgument', /tensor/);
  await rejectsWith({ method: 'dare_ties', tensor: 'x', base: t(), seed: -1, models: [t()], weights: [1], density: 0.5, out: out() }, 'InvalidArgument', /seed/);
});

test('bad dtypes, devices and outputs', async () => {
  await rejectsWith({ method: 'linear', models: [{ data: f32(), dtype: 'F64' }], weights: [1], out: out() }, 'InvalidArgument', /dtype/);
  await rejectsWith({ method: 'linear', models: [t()], weights: [1], device: 'tpu', out: out() }, 'InvalidArgument', /device/);
  await rejectsWith({ method: 'linear', models: [t()], weights: [1], out: { kind: 'pipe' } }, 'InvalidArgument', /out/);
  await rejectsWith({ method: 'linear', models: [{ data: 'abc', dtype: 'F32' }], weights: [1], n: 1, out: out(1) }, 'InvalidArgument', /TypedArray/);
  const shared = f32(2 * n);
  await rejectsWith({ method: 'linear', models: [{ data: shared.subarray(0, n), dtype: 'F32' }], weights: [1], out: { kind: 'memory', data: shared.subarray(n / 2, n / 2 + n), dtype: 'F32' } }, 'InvalidArgument', /overlap/);
});

test('a bad file descriptor is a WriteFailed error', async () => {
  await rejectsWith({ method: 'linear', models: [t()], weights: [1], out: { kind: 'file', fd: 987654, offset: 0, dtype: 'F32' } }, 'WriteFailed', /pwrite/);
});

test('accumulate, sumOfSquares and streamCopy check their arguments', async () => {
  await assert.rejects(accumulateFisher({ s: f32(), w: f32(n - 1), fisher: t(), model: t(), lambda: 1 }), MergeError);
  await assert.rejects(accumulateFisher({ s: f32(), w: f32(), fisher: t(n - 1), model: t(), lambda: 1 }), (e: unknown) => e instanceof MergeError && /fisher/.test(e.message));
  await assert.rejects(sumOfSquares({ data: new Uint8Array(3), dtype: 'F16' }), MergeError);
  assert.throws(() => streamCopy(new Uint8Array(4), new Uint8Array(5)), MergeError);
});

test('in place (out is an input) works', async () => {
  const x = new Float32Array([1, 2, 3, 4]);
  const y = new Float32Array([3, 2, 1, 0]);
  await mergeTensor({ method: 'linear', models: [{ data: x, dtype: 'F32' }, { data: y, dtype: 'F32' }], weights: [1, 1], out: { kind: 'memory', data: x, dtype: 'F32' } });
  assert.deepEqual([...x], [2, 2, 2, 2]);
});
