/**
 * The rope frequencies (native/model/rope.cc, from the parameters
 * src/model/rope_config.ts reads) against transformers' modeling_rope_utils at
 * the shapes of real checkpoints (test/fixtures/rope/frequencies.json,
 * scripts/fixtures/make_rope_fixtures.py): llama3, linear, dynamic NTK below
 * and beyond max_position_embeddings, yarn (with mscale and truncate), longrope
 * below and beyond original_max_position_embeddings; both config spellings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addon } from '../../src/native/addon.js';
import { parseModelConfig } from '../../src/model/config.js';
import { ROOT, assertAllClose } from './helpers.js';

interface Case { name: string; config: Record<string, unknown>; T: number; invFreq: number[]; attentionScaling: number }
const CASES = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'rope', 'frequencies.json'), 'utf8')) as Case[];

for (const c of CASES) {
  test(`rope frequencies equal transformers: ${c.name}, ${c.T} tokens`, () => {
    const cfg = parseModelConfig(c.config, 'config.json');
    const got = addon().ropeFrequencies(cfg, c.T);
    assertAllClose(got.invFreq, c.invFreq, 2e-6, 0, 'inv_freq');
    assert.ok(Math.abs(got.attentionScaling - c.attentionScaling) <= 1e-6 * c.attentionScaling,
      `attention scaling ${got.attentionScaling} vs ${c.attentionScaling}`);
  });
}
