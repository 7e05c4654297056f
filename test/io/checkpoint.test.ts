import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { FIXTURES, rawSafetensors, tempDir } from '../helpers.js';

const src = join(FIXTURES, 'safetensors', 'sharded');
const root = tempDir();
let n = 0;

function copy(): string {
  const d = join(root, `ck${n++}`);
  cpSync(src, d, { recursive: true });
  return d;
}

function editIndex(d: string, edit: (ix: { weight_map: Record<string, string> }) => void): void {
  const p = join(d, 'model.safetensors.index.json');
  const ix = JSON.parse(readFileSync(p, 'utf8')) as { weight_map: Record<string, string> };
  edit(ix);
  writeFileSync(p, JSON.stringify(ix));
}

test('a shard listed in the index must exist', () => {
  const d = copy();
  rmSync(join(d, 'model-00002-of-00002.safetensors'));
  assert.throws(() => Checkpoint.open(d), { code: 'MissingShard', message: /model-00002-of-00002\.safetensors/ });
});

test('every tensor named in the index must exist in its shard', () => {
  const d = copy();
  editIndex(d, (ix) => { ix.weight_map['model.extra.weight'] = 'model-00001-of-00002.safetensors'; });
  assert.throws(() => Checkpoint.open(d), { code: 'MissingTensor', message: /"model\.extra\.weight" is mapped to model-00001-of-00002\.safetensors/ });
});

test('a tensor in a shard but mapped elsewhere or not at all is refused', () => {
  const d = copy();
  editIndex(d, (ix) => { delete ix.weight_map['model.norm.weight']; });
  assert.throws(() => Checkpoint.open(d), { code: 'UnlistedTensor', message: /"model\.norm\.weight"/ });
});

test('index that is not JSON, or has no weight_map, or maps to a path', () => {
  const d = copy();
  writeFileSync(join(d, 'model.safetensors.index.json'), '{ nope');
  assert.throws(() => Checkpoint.open(d), { code: 'InvalidJson', message: /model\.safetensors\.index\.json: not valid JSON/ });
  writeFileSync(join(d, 'model.safetensors.index.json'), '{"metadata": {}}');
  assert.throws(() => Checkpoint.open(d), { code: 'InvalidIndex', message: /missing "weight_map"/ });
  writeFileSync(join(d, 'model.safetensors.index.json'), '{"weight_map": {"a": "../x.safetensors"}}');
  assert.throws(() => Checkpoint.open(d), { code: 'InvalidIndex', message: /"\.\.\/x\.safetensors", not the name of a shard file/ });
  writeFileSync(join(d, 'model.safetensors.index.json'), '{"weight_map": {"a": ".."}}');
  assert.throws(() => Checkpoint.open(d), { code: 'InvalidIndex', message: /index\.json: weight_map entry for "a" is "\.\.", not the name of a shard file/ });
  writeFileSync(join(d, 'model.safetensors.index.json'), '{"weight_map": {}}');
  assert.throws(() => Checkpoint.open(d), { code: 'InvalidIndex', message: /index\.json: weight_map is empty/ });
  writeFileSync(join(d, 'model.safetensors.index.json'), '');
  assert.throws(() => Checkpoint.open(d), { code: 'InvalidJson', message: /index\.json: is empty/ });
});

test('a device or FIFO where a checkpoint is expected is refused, not read', () => {
  assert.throws(() => Checkpoint.open('/dev/null'), { code: 'NotACheckpoint', message: /^\/dev\/null: is neither a checkpoint folder/ });
  const d = tempDir();
  const fifo = join(d, 'model.safetensors');
  execFileSync('mkfifo', [fifo]);
  // opening a FIFO for reading would wait for a writer forever
  assert.throws(() => Checkpoint.open(d), { code: 'NotAFile', message: /model\.safetensors: is a FIFO/ });
});

test('a checkpoint with no tensors is refused', () => {
  const d = tempDir();
  writeFileSync(join(d, 'model.safetensors'), rawSafetensors({ __metadata__: { format: 'pt' } }));
  assert.throws(() => Checkpoint.open(d), { code: 'NoTensors', message: /holds no tensors/ });
});

test('a corrupt shard is reported with the shard file name', () => {
  const d = copy();
  const shard = join(d, 'model-00001-of-00002.safetensors');
  const b = readFileSync(shard);
  writeFileSync(shard, b.subarray(0, b.length - 10));
  assert.throws(() => Checkpoint.open(d), { name: 'SafetensorsError', message: /model-00001-of-00002\.safetensors: .*data section/ });
});

test('folders without weights, with ambiguous files, and missing paths', () => {
  const empty = join(root, 'empty');
  mkdirSync(empty);
  assert.throws(() => Checkpoint.open(empty), { code: 'NoWeights', message: /no model\.safetensors/ });
  const d = copy();
  rmSync(join(d, 'model.safetensors.index.json'));
  assert.throws(() => Checkpoint.open(d), { code: 'NoWeights', message: /2 \.safetensors files/ });
  assert.throws(() => Checkpoint.open(join(root, 'missing')), { code: 'NotFound' });
});

test('the same tensor in two files is refused', () => {
  const d = join(root, 'dup');
  mkdirSync(d);
  cpSync(join(src, 'model-00001-of-00002.safetensors'), join(d, 'a.safetensors'));
  cpSync(join(src, 'model-00001-of-00002.safetensors'), join(d, 'b.safetensors'));
  const names = Checkpoint.open(join(d, 'a.safetensors')).names;
  writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: Object.fromEntries(names.map((x) => [x, 'a.safetensors'])) }));
  // consistent index opens; a second file with the same tensors listed is a conflict
  assert.equal(Checkpoint.open(d).files.length, 1);
  const wm: Record<string, string> = Object.fromEntries(names.map((x) => [x, 'a.safetensors']));
  wm[names[0]!] = 'b.safetensors';
  writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: wm }));
  assert.throws(() => Checkpoint.open(d), { code: 'UnlistedTensor' });
});
