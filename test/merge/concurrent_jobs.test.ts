/**
 * Native jobs submitted together: every async job runs on one compute thread,
 * one after another (native/util/compute_thread.h, docs/design.md §11). Many
 * merges started at once must each give what it gives alone, and a job that
 * fails must reject its own promise only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { SafetensorsWriter } from '../../src/io/writer.js';
import { mergeTensor, type MergeTensorRequest, type TensorInput } from '../../src/merge/kernels.js';
import { Rng, randomTensor, type RefTensor } from './reference.js';

const N = 300_001;

function request(base: TensorInput, models: TensorInput[], weights: number[], out: Uint16Array, tensor: string): MergeTensorRequest {
  return { method: 'task_arithmetic', tensor, weights, base, models, out: { kind: 'memory', data: out, dtype: 'BF16' }, threads: 2 };
}

/** Each role's tensors t0, t1, ... in one safetensors file, read back as mapped views (read by the staged path, which scans for NaN). */
function mapped(dir: string, role: string, tensors: RefTensor[]): { file: SafetensorsFile; inputs: TensorInput[] } {
  const path = join(dir, `${role}.safetensors`);
  const w = new SafetensorsWriter(path, tensors.map((t, j) => ({ name: `t${j}`, dtype: t.dtype, shape: [t.values.length] })));
  tensors.forEach((t, j) => w.write(`t${j}`, t.bytes));
  w.finish();
  const file = SafetensorsFile.open(path);
  return { file, inputs: tensors.map((t, j) => ({ data: file.bytes(`t${j}`), dtype: t.dtype })) };
}

test('merges started together each give their result alone; a failing one rejects only itself', async () => {
  const rng = new Rng(17);
  const jobs = Array.from({ length: 12 }, (_, j) => {
    const base = randomTensor(rng, N, 'BF16', () => 0.05 * rng.normal());
    const m1 = randomTensor(rng, N, 'BF16', (i) => base.values[i]! + 0.01 * rng.normal());
    const m2 = randomTensor(rng, N, j % 3 === 0 ? 'F32' : 'BF16', (i) => base.values[i]! + 0.01 * rng.normal());
    return { base, models: [m1, m2], weights: [0.3 + 0.05 * j, 0.7 - 0.02 * j] };
  });
  // one job's model holds a NaN: it must fail, naming its own tensor
  const bad = 5;
  const poisoned = jobs[bad]!.models[0]!;
  new Uint16Array(poisoned.bytes.buffer, poisoned.bytes.byteOffset, N)[1234] = 0x7fc0;
  const dir = mkdtempSync(join(tmpdir(), 'dfmerge-jobs-'));
  const files = [mapped(dir, 'base', jobs.map((j) => j.base)), mapped(dir, 'm1', jobs.map((j) => j.models[0]!)), mapped(dir, 'm2', jobs.map((j) => j.models[1]!))];
  const input = (j: number) => ({ base: files[0]!.inputs[j]!, models: [files[1]!.inputs[j]!, files[2]!.inputs[j]!] });
  try {
    // alone, one after another
    const alone: Uint16Array[] = [];
    for (const [j, job] of jobs.entries()) {
      const out = new Uint16Array(N);
      const { base, models } = input(j);
      if (j === bad) await assert.rejects(mergeTensor(request(base, models, job.weights, out, `t${j}`)), { code: 'NonFinite' });
      else await mergeTensor(request(base, models, job.weights, out, `t${j}`));
      alone.push(out);
    }
    // all at once
    const outs = jobs.map(() => new Uint16Array(N));
    const settled = await Promise.allSettled(jobs.map((job, j) => mergeTensor(request(input(j).base, input(j).models, job.weights, outs[j]!, `t${j}`))));
    for (const [j, s] of settled.entries()) {
      if (j === bad) {
        assert.equal(s.status, 'rejected', `job ${j} must fail`);
        const e = (s as PromiseRejectedResult).reason as { code?: string; tensor?: string; message: string };
        assert.equal(e.code, 'NonFinite');
        assert.match(e.message, /t5/);
        continue;
      }
      assert.equal(s.status, 'fulfilled', `job ${j}: ${s.status === 'rejected' ? String(s.reason) : ''}`);
      assert.deepEqual(outs[j], alone[j], `job ${j}: the same bytes as alone`);
    }
  } finally {
    for (const f of files) f.file.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
