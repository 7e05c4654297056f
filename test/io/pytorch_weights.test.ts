// Folders holding PyTorch pickles only (pytorch_model.bin, its shards, *.pt, consolidated.*.pth)
// are refused by every command that reads a model, naming the folder and saying how to convert.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { FIXTURES, runCli, tempDir } from '../helpers.js';

const root = tempDir('dfmerge-pt-');
const GQA = join(FIXTURES, 'llama', 'gqa');

/** A model folder with the fixture's config and tokenizer and the given (dummy) PyTorch weight files. */
function ptFolder(name: string, files: string[]): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(GQA, f), join(dir, f));
  for (const f of files) writeFileSync(join(dir, f), f.endsWith('.json') ? '{"weight_map":{}}' : 'PK\x03\x04 not a safetensors file');
  return dir;
}

const HOW = /safe_serialization=True/;

test('Checkpoint.open refuses PyTorch-only folders and files, naming them and the conversion', () => {
  const cases: [string, string[]][] = [
    ['single', ['pytorch_model.bin']],
    ['sharded', ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin', 'pytorch_model.bin.index.json']],
    ['pt', ['model.pt']],
    ['meta', ['consolidated.00.pth', 'params.json']],
  ];
  for (const [name, files] of cases) {
    const dir = ptFolder(name, files);
    assert.throws(() => Checkpoint.open(dir), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'PytorchWeights', e.message);
      assert.ok(e.message.startsWith(dir), e.message);
      assert.match(e.message, HOW);
      assert.match(e.message, /AutoModelForCausalLM/);
      assert.ok(e.message.includes(files.find((f) => !f.endsWith('params.json'))!), e.message);
      return true;
    });
  }
  const file = join(ptFolder('file', ['pytorch_model.bin']), 'pytorch_model.bin');
  assert.throws(() => Checkpoint.open(file), (e: Error) => e.message.startsWith(file) && HOW.test(e.message));
  // safetensors present: used, the .bin beside it ignored
  const both = join(root, 'both');
  mkdirSync(both);
  for (const f of ['config.json', 'tokenizer.json', 'model.safetensors']) copyFileSync(join(GQA, f), join(both, f));
  writeFileSync(join(both, 'pytorch_model.bin'), 'x');
  Checkpoint.open(both).close();
});

test('inspect, eval, fisher, merge and optimize all refuse a PyTorch-only model folder with the conversion', () => {
  const dir = ptFolder('cli', ['pytorch_model.bin']);
  const task = join(FIXTURES, 'llama', 'task.jsonl');
  const runs: string[][] = [
    ['inspect', dir],
    ['eval', '--model', dir, '--task', task],
    ['fisher', '--model', dir, '--task', task, '--out', join(root, 'f.safetensors')],
    ['merge', '--method', 'task_arithmetic', '--base', GQA, '-m', dir, '-w', '1', '-o', join(root, 'merged')],
    ['optimize', '--base', dir, '-m', GQA, '-m', GQA, '--task', task, '--task', task, '-o', join(root, 'opt'), '--iterations', '0', '--init-points', '1', '--no-baselines', '-q'],
  ];
  for (const args of runs) {
    const r = runCli(args);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.ok(r.stderr.includes(dir) && r.stderr.includes('PyTorch weights (pytorch_model.bin)') && HOW.test(r.stderr), `${args[0]}: ${r.stderr}`);
  }
});
