import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, rawSafetensors, runCli, tempDir } from '../helpers.js';

test('inspect --json on a sharded folder written by Python', () => {
  const r = runCli(['inspect', join(FIXTURES, 'safetensors', 'sharded'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { parameters: number; bytes: number; shards: unknown[]; dtypes: Record<string, { parameters: number }>; tensors: { name: string; shape: number[] }[] };
  assert.equal(s.parameters, 6736);
  assert.equal(s.bytes, 13472);
  assert.equal(s.shards.length, 2);
  assert.equal(s.dtypes.BF16?.parameters, 6736);
  assert.deepEqual(s.tensors.find((t) => t.name === 'lm_head.weight')?.shape, [64, 16]);
});

test('inspect prints a readable summary, with --filter', () => {
  const r = runCli(['inspect', join(FIXTURES, 'safetensors', 'all_dtypes.safetensors'), '--filter', '^f']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /15 tensors/);
  assert.match(r.stdout, /BF16 +1 tensors/);
  assert.match(r.stdout, /f8_e4m3 +F8_E4M3 +\[2, 5\]/);
  assert.doesNotMatch(r.stdout, /\bi32\b/);
});

test('inspect of a bad file exits non-zero naming the file and the problem', () => {
  const p = join(tempDir(), 'bad.safetensors');
  writeFileSync(p, rawSafetensors({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)));
  const r = runCli(['inspect', p]);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^dfmerge: ${p.replace(/[.]/g, '\\.')}: tensor "w" has 4 bytes but shape and dtype F32 need 8`));
});

test('inspect of a missing path, and a missing argument', () => {
  const r = runCli(['inspect', '/nonexistent/model']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\/nonexistent\/model: no such file or folder/);
  const r2 = runCli(['inspect']);
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /missing required argument 'path'/);
});

test('--version reports version, build, threads and CUDA devices', () => {
  const r = runCli(['--version']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^dfmerge \d+\.\d+\.\d+/);
  assert.match(r.stdout, /build: (cpu|cuda) \(/);
  assert.match(r.stdout, /threads: \d+/);
  assert.match(r.stdout, /devices: \d+/);
});

test('--help teaches the commands', () => {
  const r = runCli(['--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /inspect/);
});

const cudaBuild = join(ROOT, 'build-cuda', 'Release', 'dfmerge.node');
test('the CUDA build loads (static cudart) and reads files on a machine without a GPU', { skip: existsSync(cudaBuild) ? false : 'no CUDA build (run npm run build:cuda where nvcc exists)' }, () => {
  const v = runCli(['--version'], { DFMERGE_BUILD: 'cuda' });
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /build: cuda/);
  assert.match(v.stdout, /cuda: compiled in/);
  const r = runCli(['inspect', join(FIXTURES, 'safetensors', 'sharded'), '--json'], { DFMERGE_BUILD: 'cuda' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { parameters: number }).parameters, 6736);
});
