/**
 * The merge engine's I/O paths: inputs as zero-copy mmap views of safetensors
 * files (read by the driver with pread: docs/design.md §11), output pwrite()-n straight into
 * a SafetensorsWriter slot; plus the DF-Merge accumulate/combine pair, the Σx²
 * reduction and the bandwidth probe.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { SafetensorsWriter } from '../../src/io/writer.js';
import { accumulateFisher, dfCombine, mergeTensor, streamCopy, sumOfSquares } from '../../src/merge/kernels.js';
import { addon } from '../../src/native/addon.js';
import { Rng, compare, decode, deltas, randomTensor, refDeltaSum, refDfCombine, type RefTensor } from './reference.js';

const N = 3 * 1024 * 1024 + 5;
let dir: string;

function writeFile(path: string, tensors: Record<string, RefTensor>): void {
  const w = new SafetensorsWriter(path, Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: [t.values.length] })));
  for (const [name, t] of Object.entries(tensors)) w.write(name, t.bytes);
  w.finish();
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'dfmerge-merge-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('file to file', () => {
  test('task arithmetic from mmap views into a writer slot, read back equal to the in-memory merge', async () => {
    const rng = new Rng(5);
    const base = randomTensor(rng, N, 'BF16', () => 0.05 * rng.normal());
    const m1 = randomTensor(rng, N, 'BF16', (i) => base.values[i]! + 0.01 * rng.normal());
    const m2 = randomTensor(rng, N, 'F16', (i) => base.values[i]! + 0.01 * rng.normal());
    const small = randomTensor(rng, 7, 'F32', () => rng.normal());
    writeFile(join(dir, 'base.safetensors'), { w: base, small });
    writeFile(join(dir, 'm1.safetensors'), { small, w: m1 });
    writeFile(join(dir, 'm2.safetensors'), { w: m2 });
    const files = ['base', 'm1', 'm2'].map((f) => SafetensorsFile.open(join(dir, `${f}.safetensors`)));
    const [fb, f1, f2] = files as [SafetensorsFile, SafetensorsFile, SafetensorsFile];
    const views = [fb.bytes('w'), f1.bytes('w'), f2.bytes('w')];
    const before = views.map((v) => Buffer.from(v));

    const outPath = join(dir, 'out.safetensors');
    const writer = new SafetensorsWriter(outPath, [{ name: 'small', dtype: 'F32', shape: [7] }, { name: 'w', dtype: 'BF16', shape: [N] }]);
    writer.write('small', small.bytes);
    const lam = [0.6, 0.5];
    const req = {
      method: 'task_arithmetic' as const, tensor: 'w', weights: lam,
      base: { data: views[0]!, dtype: 'BF16' as const },
      models: [{ data: views[1]!, dtype: 'BF16' as const }, { data: views[2]!, dtype: 'F16' as const }],
    };
    await mergeTensor({ ...req, out: { kind: 'writer', writer, tensor: 'w' } });
    assert.deepEqual(writer.incomplete(), []);
    writer.finish();

    // the released input pages fault back in from the file, unchanged
    views.forEach((v, i) => assert.ok(Buffer.from(v).equals(before[i]!), `input ${i} changed after release`));

    const mem = new Uint8Array(N * 2);
    await mergeTensor({ ...req, out: { kind: 'memory', data: mem, dtype: 'BF16' }, releaseInputs: false });
    const out = SafetensorsFile.open(outPath);
    assert.ok(Buffer.from(out.bytes('w')).equals(Buffer.from(mem)));
    assert.ok(Buffer.from(out.bytes('small')).equals(Buffer.from(small.bytes)));
    const ref = refDeltaSum(base.values, deltas(base.values, [m1.values, m2.values]), lam, false);
    assert.equal(compare(mem, 'BF16', ref).badCount, 0);
    out.close();
    for (const f of files) f.close();
  });

  test('a team larger than the cores, its pwrites colliding, writes the same bytes as the in-memory merge', async () => {
    // 8 threads on few cores: a thread often finds the file taken by another and
    // keeps its pieces (DeferredWriter), writing them later as runs; a run put at
    // the wrong offset, or left unwritten, shows as a byte difference.
    const rng = new Rng(9);
    const n = 6 * 1024 * 1024 + 77;
    const base = randomTensor(rng, n, 'BF16', () => 0.05 * rng.normal());
    const m1 = randomTensor(rng, n, 'BF16', (i) => base.values[i]! + 0.01 * rng.normal());
    // inputs read from files, so the driver stages them in pieces of a few
    // pages: several pieces per thread and chunk, each one pwrite or one deferral
    writeFile(join(dir, 'team-base.safetensors'), { w: base });
    writeFile(join(dir, 'team-m1.safetensors'), { w: m1 });
    const files = ['team-base', 'team-m1'].map((f) => SafetensorsFile.open(join(dir, `${f}.safetensors`)));
    const req = {
      method: 'task_arithmetic' as const, tensor: 'w', weights: [0.7],
      base: { data: files[0]!.bytes('w'), dtype: 'BF16' as const }, models: [{ data: files[1]!.bytes('w'), dtype: 'BF16' as const }],
    };
    const mem = new Uint8Array(n * 2);
    await mergeTensor({ ...req, out: { kind: 'memory', data: mem, dtype: 'BF16' }, releaseInputs: false });
    const prev = addon().buildInfo().threads;
    addon().setThreads(8);
    try {
      for (let round = 0; round < 3; round++) {
        const path = join(dir, `team${round}.safetensors`);
        const writer = new SafetensorsWriter(path, [{ name: 'w', dtype: 'BF16', shape: [n] }]);
        await mergeTensor({ ...req, out: { kind: 'writer', writer, tensor: 'w' }, releaseInputs: false });
        writer.finish();
        const f = SafetensorsFile.open(path);
        assert.ok(Buffer.from(f.bytes('w')).equals(Buffer.from(mem)), `round ${round}: file output differs from memory`);
        f.close();
      }
    } finally {
      addon().setThreads(prev);
      for (const f of files) f.close();
    }
  });

  test('raw fd output at an offset', async () => {
    const rng = new Rng(6);
    const a = randomTensor(rng, 4097, 'F32', () => rng.normal());
    const writer = new SafetensorsWriter(join(dir, 'raw.safetensors'), [{ name: 'x', dtype: 'F16', shape: [4097] }]);
    await mergeTensor({
      method: 'linear', models: [{ data: a.bytes, dtype: 'F32' }], weights: [2], normalize: false,
      out: { kind: 'file', fd: writer.fd, offset: writer.slot('x').fileOffset, dtype: 'F16' },
    });
    writer.markWritten('x', 4097 * 2);
    writer.finish();
    const f = SafetensorsFile.open(join(dir, 'raw.safetensors'));
    const got = decode(f.bytes('x'), 'F16');
    got.forEach((v, i) => {
      if (Number.isFinite(v) || Math.abs(2 * a.values[i]!) >= 65520) assert.ok(Math.abs(v - 2 * a.values[i]!) <= Math.abs(2 * a.values[i]!) * 2 ** -11 + 2 ** -24);
    });
    f.close();
  });
});

describe('DF-Merge accumulate and combine', () => {
  test('two models accumulated then combined equal base + M·ΣFλτ/ΣF', async () => {
    const n = 4097 * 3;
    const rng = new Rng(8);
    const base = randomTensor(rng, n, 'BF16', () => 0.05 * rng.normal());
    const models = [0, 1].map(() => randomTensor(rng, n, 'BF16', (i) => base.values[i]! + 0.01 * rng.normal()));
    const fishers = [0, 1].map((k) => randomTensor(rng, n, k === 0 ? 'F32' : 'BF16', () => 1e-12 + rng.next() ** 2));
    const lam = [0.4, 0.9];
    const s = new Float32Array(n);
    const w = new Float32Array(n);
    for (let k = 0; k < 2; k += 1) {
      await accumulateFisher({ s, w, fisher: { data: fishers[k]!.bytes, dtype: fishers[k]!.dtype }, model: { data: models[k]!.bytes, dtype: 'BF16' }, base: { data: base.bytes, dtype: 'BF16' }, lambda: lam[k]! });
    }
    const sRef = new Float64Array(n);
    const wRef = new Float64Array(n);
    const taus = deltas(base.values, models.map((m) => m.values));
    for (let i = 0; i < n; i += 1) {
      for (let k = 0; k < 2; k += 1) {
        sRef[i] += fishers[k]!.values[i]!;
        wRef[i] += fishers[k]!.values[i]! * lam[k]! * taus[k]![i]!;
      }
      assert.ok(Math.abs(s[i]! - sRef[i]!) <= 4 * 2 ** -24 * sRef[i]!);
    }
    const out = new Uint8Array(n * 4);
    await dfCombine({ base: { data: base.bytes, dtype: 'BF16' }, w, s, m: 2, out: { kind: 'memory', data: out, dtype: 'F32' } });
    const r = refDfCombine(base.values, wRef, sRef, 2);
    assert.equal(compare(out, 'F32', r).badCount, 0);
  });
});

describe('reductions and probes', () => {
  test('sumOfSquares in every dtype', async () => {
    const rng = new Rng(9);
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const t = randomTensor(rng, N, dtype, () => rng.normal());
      const want = t.values.reduce((a, v) => a + v * v, 0);
      const got = await sumOfSquares({ data: t.bytes, dtype });
      assert.ok(Math.abs(got - want) <= 1e-5 * want, `${dtype}: ${got} vs ${want}`);
    }
    assert.equal(await sumOfSquares({ data: new Float32Array(0), dtype: 'F32' }), 0);
  });

  test('streamCopy copies every byte', () => {
    const src = new Uint8Array(5 * 1024 * 1024 + 3).map((_, i) => (i * 31) & 0xff);
    const dst = new Uint8Array(src.length);
    assert.equal(streamCopy(src, dst), src.length);
    assert.ok(Buffer.from(dst).equals(Buffer.from(src)));
  });
});

/** Resets the kernel's resident-set high-water mark (VmHWM) of this process. */
function resetPeakRss(): void {
  writeFileSync('/proc/self/clear_refs', '5');
}

/** This process's peak resident set since the last reset, in bytes. */
function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no VmHWM in /proc/self/status');
  return Number(m[1]) * 1024;
}

describe('bounded memory', () => {
  test('merging file-mapped inputs keeps resident memory at a few chunks', async () => {
    const n = 32 * 1024 * 1024; // 64 MiB of BF16 per input
    const rng = new Rng(10);
    const paths = ['rb', 'r1', 'r2'].map((f) => join(dir, `${f}.safetensors`));
    const page = new Uint16Array(1 << 20);
    for (const p of paths) {
      for (let i = 0; i < page.length; i += 1) page[i] = 0x3c00 + Math.floor(rng.next() * 256);
      const w = new SafetensorsWriter(p, [{ name: 'w', dtype: 'BF16', shape: [n] }]);
      for (let o = 0; o < n; o += page.length) w.write('w', page, o * 2);
      w.finish();
    }
    const files = paths.map((p) => SafetensorsFile.open(p));
    const writer = new SafetensorsWriter(join(dir, 'rout.safetensors'), [{ name: 'w', dtype: 'BF16', shape: [n] }]);
    // the peak during the merge, not the difference of two samples: reset the high-water mark first
    const rss0 = process.memoryUsage().rss;
    resetPeakRss();
    await mergeTensor({
      method: 'ties', tensor: 'w', density: 0.3, weights: [1, 1],
      base: { data: files[0]!.bytes('w'), dtype: 'BF16' },
      models: [{ data: files[1]!.bytes('w'), dtype: 'BF16' }, { data: files[2]!.bytes('w'), dtype: 'BF16' }],
      out: { kind: 'writer', writer, tensor: 'w' },
    });
    const grown = peakRss() - rss0;
    writer.finish();
    for (const f of files) f.close();
    // 192 MiB of inputs were read three times; what stays resident is a few chunks and the scratch
    assert.ok(grown < 48 * 1024 * 1024, `resident memory grew by ${(grown / 1048576).toFixed(1)} MiB`);
  });
});
