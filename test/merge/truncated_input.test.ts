/**
 * An input truncated while a merge reads it (docs/design.md §11): the inputs are
 * read with pread, so the merge fails with an error naming the file and the tensor
 * (never SIGBUS, which would kill the process and leave its staging folder), and
 * nothing of the output is left: no output folder, no staging folder, no partial file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { makeSyntheticModels } from '../../benchmarks/merge/synthetic.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { SafetensorsWriter } from '../../src/io/writer.js';
import { runMerge } from '../../src/merge/run.js';
import { validateConfig } from '../../src/merge/config.js';
import { tempDir } from '../helpers.js';

const SHAPE = { layers: 2, hidden: 256, intermediate: 1024, vocab: 1024, dtype: 'BF16' as const };

for (const method of ['task_arithmetic', 'ties'] as const) {
  test(`${method}: an input truncated mid-merge is an error naming file and tensor, and leaves nothing behind`, async () => {
    const root = tempDir();
    const { base, models } = makeSyntheticModels(join(root, 'in'), SHAPE, 2, 7);
    const victim = join(models[1]!, 'model.safetensors');
    const size = statSync(victim).size;
    const config = validateConfig({
      method, base, seed: 0, parameters: {},
      models: models.map((m) => ({ path: m, parameters: { weight: 0.5, ...(method === 'ties' ? { density: 0.5 } : {}) } })),
    });
    const outParent = join(root, 'merged');
    const out = join(outParent, 'out');
    let tensors = 0;
    await assert.rejects(
      runMerge(config, {
        out, quiet: true,
        onTensor: () => {
          if (++tensors === 1) truncateSync(victim, Math.floor(size / 2));  // another program cuts the file
        },
      }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'InputTruncated', e.message);
        assert.ok(e.message.includes(victim), `names the file: ${e.message}`);
        assert.match(e.message, /tensor "model\.[^"]+"/, 'names the tensor');
        assert.match(e.message, /truncated or rewritten/);
        return true;
      },
    );
    assert.ok(tensors >= 1, 'the merge was under way when the file was cut');
    assert.equal(existsSync(out), false, 'no output folder');
    assert.deepEqual(readdirSync(outParent), [], 'no staging folder or partial file beside it');
  });
}

test('a tensor copied unchanged from a truncated input is an error naming file and tensor, never SIGBUS', () => {
  const root = tempDir();
  const src = join(root, 'src.safetensors');
  const n = 1 << 20;
  const w = new SafetensorsWriter(src, [{ name: 'ids', dtype: 'I32', shape: [n] }]);
  w.write('ids', new Int32Array(n).fill(7));
  w.finish();
  const f = SafetensorsFile.open(src);
  const view = f.bytes('ids');
  truncateSync(src, 4096);
  const out = new SafetensorsWriter(join(root, 'out.safetensors'), [{ name: 'ids', dtype: 'I32', shape: [n] }]);
  try {
    assert.throws(() => out.copyFrom('ids', view), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'InputTruncated', e.message);
      assert.ok(e.message.includes(src) && e.message.includes('tensor "ids"'), e.message);
      return true;
    });
  } finally {
    out.abort();
    f.close();
  }
});
