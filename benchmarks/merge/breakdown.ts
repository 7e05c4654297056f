/**
 * Where a file-to-file merge spends its time: task arithmetic over the same
 * checkpoints (base + 2 models) along four paths, each as GB/s of
 * (3 inputs + 1 output): the kernel alone (RAM to RAM), mmap'd inputs kept
 * mapped, mmap'd inputs released per chunk (what bounds RSS), and the full path
 * into a new output file. Run benchmarks/merge/bench.js first (it makes the data).
 *
 *   node dist/benchmarks/merge/breakdown.js benchmarks/.data/<tag>
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { mergeTensor, streamCopy, type TensorInput } from '../../src/merge/kernels.js';
import { runMerge } from '../../src/merge/run.js';
import { validateConfig } from '../../src/merge/config.js';
import { isComputeDtype } from '../../src/io/dtypes.js';
import { addon } from '../../src/native/addon.js';

const dir = process.argv[2];
const threadsArg = process.argv.indexOf('--threads');
if (threadsArg > 0) addon().setThreads(Number(process.argv[threadsArg + 1]));
if (!dir) throw new Error('usage: breakdown.js DATA_DIR (a folder with base/, model0/, model1/)');
const cks = ['base', 'model0', 'model1'].map((m) => Checkpoint.open(join(dir, m)));
const names = cks[0]!.names;
const input = (ck: Checkpoint, n: string): TensorInput => {
  const { file, info } = ck.locate(n);
  if (!isComputeDtype(info.dtype)) throw new Error(`${n}: not a float tensor`);
  return { data: file.bytes(n), dtype: info.dtype };
};
const bytesOf = (n: string) => cks[0]!.locate(n).file.bytes(n).byteLength;
const total = names.reduce((a, n) => a + 4 * bytesOf(n), 0);
const out = new Uint8Array(Math.max(...names.map(bytesOf)));

async function time(label: string, f: () => Promise<void>, bytes = total): Promise<void> {
  await f(); // warm
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await f();
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  console.log(`${label.padEnd(58)} ${(bytes / best / 1e9).toFixed(2).padStart(6)} GB/s`);
}

const copySrc = new Uint8Array(512 * 1024 * 1024).fill(1);
const copyDst = new Uint8Array(copySrc.length).fill(2);
await time('(baseline) threaded copy, read + write', async () => { streamCopy(copySrc, copyDst); }, 2 * copySrc.length);
const inMemory = names.map((n) => cks.map((ck) => { const x = input(ck, n); return { data: new Uint8Array(x.data as Uint8Array), dtype: x.dtype }; }));
const ta = async (inputs: TensorInput[], n: string, release: boolean) => {
  const [b, m0, m1] = inputs as [TensorInput, TensorInput, TensorInput];
  await mergeTensor({ method: 'task_arithmetic', tensor: n, base: b, models: [m0, m1], weights: [0.5, 0.5],
    out: { kind: 'memory', data: out.subarray(0, bytesOf(n)), dtype: b.dtype }, releaseInputs: release });
};
await time('inputs in RAM -> RAM (the kernel alone)', async () => { for (const [i, n] of names.entries()) await ta(inMemory[i]!, n, false); });
addon().setInputStaging(false);
await time("mmap'd inputs, pages kept mapped -> RAM", async () => { for (const n of names) await ta(cks.map((ck) => input(ck, n)), n, false); });
await time("mmap'd inputs released per chunk (bounded RSS) -> RAM", async () => { for (const n of names) await ta(cks.map((ck) => input(ck, n)), n, true); });
addon().setInputStaging(true);
await time('inputs pread into reused buffers (bounded RSS) -> RAM', async () => { for (const n of names) await ta(cks.map((ck) => input(ck, n)), n, true); });
const finite = async () => { for (const n of names) for (const ck of cks) ck.locate(n).file.assertFinite(n); };
await time('(cost) NaN/Inf scan of the mapped inputs, as run.ts did', finite, names.reduce((a, n) => a + 3 * bytesOf(n), 0));
const tmp = mkdtempSync(join(tmpdir(), 'dfm-breakdown-'));
const config = validateConfig({ method: 'task_arithmetic', base: join(dir, 'base'), models: [0, 1].map((k) => ({ path: join(dir, `model${k}`), parameters: { weight: 0.5 } })), parameters: {}, seed: 0 });
await time('full path: runMerge into a new output file', async () => { await runMerge(config, { out: join(tmp, 'out'), force: true, quiet: true }); });
rmSync(tmp, { recursive: true, force: true });
for (const ck of cks) ck.close();
