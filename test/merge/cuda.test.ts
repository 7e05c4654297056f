/**
 * CUDA kernels against the CPU kernels and the float64 reference, where a GPU
 * answers (the loaded build reports cudaDevices > 0); skipped otherwise.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadAddon } from '../../src/native/addon.js';
import { MergeError } from '../../src/errors.js';
import { mergeTensor } from '../../src/merge/kernels.js';
import { DTYPES, SIZE, compare } from './reference.js';
import { CASES, inputsFor } from './cases.js';

const info = loadAddon().addon.buildInfo();
const skip = info.cudaDevices > 0 ? false
  : `no CUDA device (loaded ${loadAddon().variant} build, cuda compiled: ${info.cuda}, devices: ${info.cudaDevices})`;
if (skip) console.log(`# skipping CUDA merge tests: ${skip}`);

describe('CUDA merge kernels', () => {
  for (const n of [7, 4097, 3 * 1024 * 1024 + 5]) {
    for (const c of CASES) {
      test(`${c.name}, n = ${n}: CUDA matches the reference and the CPU`, { skip }, async () => {
        const inp = inputsFor(n, 'mixed');
        const ref = c.reference(inp);
        for (const dtype of DTYPES) {
          const gpu = new Uint8Array(n * SIZE[dtype]);
          const cpu = new Uint8Array(n * SIZE[dtype]);
          await mergeTensor({ ...c.request(inp, gpu, dtype), device: 'cuda', chunkElements: 1 << 20 });
          await mergeTensor({ ...c.request(inp, cpu, dtype), device: 'cpu' });
          const { badCount, bad } = compare(gpu, dtype, ref);
          assert.equal(badCount, 0, `${c.name} -> ${dtype}: ${badCount} elements off the reference, first ${JSON.stringify(bad)}`);
          if (dtype !== 'F32') {
            // after rounding to 16 bits, CPU and GPU agree except at rare rounding boundaries
            let differ = 0;
            for (let i = 0; i < gpu.length; i += 1) if (gpu[i] !== cpu[i]) differ += 1;
            assert.ok(differ <= Math.max(2, n * 1e-3), `${differ} bytes differ between CPU and GPU`);
          }
        }
      });
    }
  }
});

test('device cuda without a device is a typed error', { skip: info.cudaDevices > 0 ? 'a CUDA device is present' : false }, async () => {
  const x = new Float32Array(4);
  await assert.rejects(
    mergeTensor({ method: 'linear', models: [{ data: x, dtype: 'F32' }], weights: [1], device: 'cuda', out: { kind: 'memory', data: new Float32Array(4), dtype: 'F32' } }),
    (e: unknown) => e instanceof MergeError && e.code === 'CudaUnavailable' && /cpu/.test(e.message),
  );
});
