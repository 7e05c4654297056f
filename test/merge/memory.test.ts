// Out-of-core: merging checkpoints much larger than a forced memory budget works
// and the merging process's peak resident memory stays bounded (a few chunks),
// because inputs are mmapped and released chunk by chunk and the output is
// written straight into its file slots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeSyntheticModels } from '../../benchmarks/merge/synthetic.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { ROOT, tempDir } from '../helpers.js';

const MB = 1024 * 1024;

test('a 3 x 128 MB merge runs with a 48 MB JS heap and a peak RSS far below the model size', () => {
  const root = tempDir();
  // 2 layers of hidden 1024 / intermediate 4096 plus 8192-token embeddings: ~64 Mi bf16 values = 128 MB per model
  const { base, models } = makeSyntheticModels(root, { layers: 2, hidden: 1024, intermediate: 4096, vocab: 8192 * 2, dtype: 'BF16' }, 2, 3);
  const ck = Checkpoint.open(base);
  const modelBytes = ck.totalBytes;
  ck.close();
  assert.ok(modelBytes > 100 * MB, `model is ${modelBytes} bytes`);
  const out = join(root, 'out');
  const script = `
    const { main } = await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'cli', 'main.js'))});
    const { peakRssBytes } = await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'util', 'memory.js'))});
    const code = await main(process.argv.slice(1));
    process.stdout.write(JSON.stringify({ code, peak: peakRssBytes() }));`;
  // TIES and SCE keep their selections' candidates, DELLA its drop mask: all bounded by budgets
  // (SCE's select_topk is a config parameter: a mergekit YAML, written as JSON)
  const sceConfig = join(root, 'sce.yaml');
  writeFileSync(sceConfig, JSON.stringify({ merge_method: 'sce', base_model: base, models: models.slice(0, 2).map((m) => ({ model: m })), parameters: { select_topk: 0.5 } }));
  const flags = (method: string, extra: string[]) => ['--method', method, '--base', base, '-m', models[0]!, '-m', models[1]!, ...extra];
  const methods: [string, string[]][] = [
    ['ties', flags('ties', ['--density', '0.5'])], ['dare_linear', flags('dare_linear', ['--density', '0.5'])],
    ['della', flags('della', ['--density', '0.5'])], ['sce', ['-c', sceConfig]]];
  for (const [method, args] of methods) {
    const r = spawnSync(process.execPath, ['--max-old-space-size=48', '--input-type=module', '-e', script, '--',
      'merge', ...args, '-o', join(out, method), '-q'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const { code, peak } = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{'))) as { code: number; peak: number };
    assert.equal(code, 0, r.stderr);
    // inputs 3 x 128 MB are read, 128 MB written: RSS must stay well under one model
    assert.ok(peak < 0.9 * modelBytes, `${method}: peak RSS ${(peak / MB).toFixed(0)} MB for ${(3 * modelBytes / MB).toFixed(0)} MB of inputs`);
    process.stderr.write(`${method}: peak RSS ${(peak / MB).toFixed(0)} MB while merging ${(3 * modelBytes / MB).toFixed(0)} MB of inputs\n`);
    const merged = Checkpoint.open(join(out, method));
    assert.equal(merged.totalBytes, modelBytes);
    merged.close();
  }
});
