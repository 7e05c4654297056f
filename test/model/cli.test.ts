/** `dfmerge eval` and `dfmerge fisher` end to end on the fixtures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { ROOT, FIXTURES, goldenTensors, assertClose } from './helpers.js';

const BIN = join(ROOT, 'bin', 'dfmerge.js');
const TASK = join(FIXTURES, 'task.jsonl');

test('dfmerge eval prints per-task accuracy (table and --json)', () => {
  const table = execFileSync(process.execPath, [BIN, 'eval', '--model', join(FIXTURES, 'gqa'), '--task', TASK, '--task', TASK], { encoding: 'utf8' });
  assert.match(table, /task\s+4\s+\d\s+\d+\.\d\d%/);
  assert.match(table, /mean/);
  const json = JSON.parse(execFileSync(process.execPath, [BIN, 'eval', '--model', join(FIXTURES, 'qwen2'), '--task', TASK, '--json'], { encoding: 'utf8' })) as { tasks: { examples: number }[] };
  assert.equal(json.tasks[0]!.examples, 4);
});

test('dfmerge fisher writes the expected-mode Fisher (matches PyTorch) as F32 safetensors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfm-cli-'));
  try {
    const out = join(dir, 'f.safetensors');
    execFileSync(process.execPath, [BIN, 'fisher', '--model', join(FIXTURES, 'mha'), '--task', TASK, '--samples', '30', '--mode', 'expected', '--seed', '0', '--out', out], { stdio: 'pipe' });
    const f = SafetensorsFile.open(out);
    const g = goldenTensors('mha');
    const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'mha'));
    try {
      assert.equal(f.metadata.dfmerge_fisher_mode, 'expected');
      // all 4 examples drawn (in some order): the mean is order-independent
      for (const p of rt.params) assertClose(f.toFloat32(p.name), g.get('fisher.' + p.name), 1e-4, p.name);
    } finally {
      f.close();
      g.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dfmerge eval on a malformed task exits 1 naming file and line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfm-cli-'));
  try {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "sky", "choices": ["blue"], "answer": 0}\n{"prompt": "sky", "choices": ["blue"], "answer": 3}\n');
    const r = spawnSync(process.execPath, [BIN, 'eval', '--model', join(FIXTURES, 'gqa'), '--task', bad], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.ok(r.stderr.includes(`${bad}:2:`), r.stderr);
    const u = spawnSync(process.execPath, [BIN, 'fisher', '--model', join(FIXTURES, 'gqa'), '--task', TASK, '--mode', 'bogus', '--out', join(dir, 'x.safetensors')], { encoding: 'utf8' });
    assert.equal(u.status, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
