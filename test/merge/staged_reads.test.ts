/**
 * Every read a merge makes of a mapped input goes through its InputStage
 * (pread into reused buffers: docs/design.md §11, native/kernels/merge_staging.h),
 * for large tensors and for the small ones (under 64 Ki elements) whose selection
 * (TIES, SCE) reads them whole: an input truncated under the merge is then an
 * error naming the file and tensor, never SIGBUS (which would end this test
 * process), and an input's NaN/±Inf are reported naming file, tensor and element.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { truncateSync } from 'node:fs';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { SafetensorsWriter } from '../../src/io/writer.js';
import { mergeTensor, type MergeTensorRequest, type TensorInput } from '../../src/merge/kernels.js';
import { tempDir } from '../helpers.js';
import { Rng, randomTensor } from './reference.js';

const BIG = (1 << 20) + 333;  // several chunks, a ragged end
const SMALL = 4000;           // below the selections' 64 Ki threshold: selected whole

/** base and model files, each holding 'big' then 'small' (BF16); with `nanAt`, the model's 'big' holds a NaN there. */
function files(dir: string, nanAt?: number): { base: string; model: string } {
  const rng = new Rng(5);
  const write = (path: string, shift: number, nan?: number) => {
    const big = randomTensor(rng, BIG, 'BF16', () => 0.05 * rng.normal() + shift);
    const small = randomTensor(rng, SMALL, 'BF16', () => 0.05 * rng.normal() + shift);
    if (nan !== undefined) new DataView(big.bytes.buffer, big.bytes.byteOffset).setUint16(2 * nan, 0x7fc0, true);
    const w = new SafetensorsWriter(path, [{ name: 'big', dtype: 'BF16', shape: [BIG] }, { name: 'small', dtype: 'BF16', shape: [SMALL] }]);
    w.write('big', big.bytes);
    w.write('small', small.bytes);
    w.finish();
  };
  const base = join(dir, 'base.safetensors');
  const model = join(dir, 'model.safetensors');
  write(base, 0);
  write(model, 0.01, nanAt);
  return { base, model };
}

type Method = 'task_arithmetic' | 'ties' | 'sce';
function request(method: Method, tensor: string, base: TensorInput, model: TensorInput, out: Float32Array): MergeTensorRequest {
  const common = { tensor, base, models: [model, model], out: { kind: 'memory' as const, data: out, dtype: 'F32' as const } };
  if (method === 'ties') return { method, ...common, weights: [0.5, 0.5], density: 0.3 };
  if (method === 'sce') return { method, ...common, selectTopk: 0.5 };
  return { method, ...common, weights: [0.5, 0.5] };
}

async function merge(method: Method, base: string, model: string, tensor: 'big' | 'small', cut?: number): Promise<void> {
  const fb = SafetensorsFile.open(base);
  const fm = SafetensorsFile.open(model);
  try {
    const b = { data: fb.bytes(tensor), dtype: 'BF16' as const };
    const m = { data: fm.bytes(tensor), dtype: 'BF16' as const };
    if (cut !== undefined) truncateSync(model, cut);  // another program cuts the file under the open mapping
    const out = new Float32Array(tensor === 'big' ? BIG : SMALL);
    await mergeTensor(request(method, tensor, b, m, out));
  } finally {
    fb.close();
    fm.close();
  }
}

describe('merge inputs read through the stage', () => {
  for (const method of ['task_arithmetic', 'ties', 'sce'] as const) {
    for (const tensor of ['big', 'small'] as const) {
      test(`${method}, ${tensor} tensor: an input truncated under the merge is InputTruncated naming file and tensor`, async () => {
        const { base, model } = files(tempDir());
        const cut = SafetensorsFile.open(model);
        // keep the header and the first 4 KiB of data: every tensor's data (past it) is gone
        const keep = cut.dataStart + 4096;
        cut.close();
        await assert.rejects(merge(method, base, model, tensor, keep), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'InputTruncated', e.message);
          assert.ok(e.message.includes(model), `names the file: ${e.message}`);
          assert.ok(e.message.includes(`tensor "${tensor}"`), `names the tensor: ${e.message}`);
          return true;
        });
      });
    }
    test(`${method}: NaN in an input is refused naming file, tensor and element`, async () => {
      const { base, model } = files(tempDir(), 700_001);
      await assert.rejects(merge(method, base, model, 'big'), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'NonFinite', e.message);
        assert.ok(e.message.includes(model) && e.message.includes('"big"'), e.message);
        assert.match(e.message, /first at element 700001/);
        return true;
      });
    });
  }
});
