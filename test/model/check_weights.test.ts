// config.json against the weights: the expected tensor list agrees with the
// native runtime's (two implementations), and every mismatch is named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { checkConfigAgainstCheckpoint, expectedTensors } from '../../src/model/check_weights.js';
import { readModelConfig, type ModelConfig } from '../../src/model/config.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { FIXTURES } from '../helpers.js';

const FIXTURE_MODELS = ['gqa', 'mha', 'qwen2', 'tied'];

test('the tensors a config implies are exactly those the native runtime allocates, for every fixture', () => {
  for (const m of FIXTURE_MODELS) {
    const dir = join(FIXTURES, 'llama', m);
    const rt = LlamaRuntime.fromCheckpoint(dir, { tokenizer: false });
    const want = rt.params.map((p) => [p.name, [...p.shape]]);
    assert.deepEqual([...expectedTensors(readModelConfig(dir))].map(([n, s]) => [n, [...s]]), want, m);
    const ck = Checkpoint.open(dir);
    try {
      checkConfigAgainstCheckpoint(readModelConfig(dir), ck);
    } finally {
      ck.close();
    }
  }
});

test('each kind of mismatch is refused naming the checkpoint, the tensor and the field', () => {
  const dir = join(FIXTURES, 'llama', 'qwen2');
  const good = readModelConfig(dir);
  const ck = Checkpoint.open(dir);
  const check = (edit: Partial<ModelConfig>) => () => checkConfigAgainstCheckpoint({ ...good, ...edit }, ck);
  try {
    assert.throws(check({ layers: 1 }), { code: 'LayerCountMismatch', message: /qwen2 \(config .*config\.json\): num_hidden_layers is 1 but the checkpoint has tensors for 2 layer/ });
    assert.throws(check({ layers: 10_000_000 }), { code: 'LayerCountMismatch' });
    assert.throws(check({ vocab: 1e12 }), { code: 'ShapeMismatch', message: /"model\.embed_tokens\.weight" has shape .* vocab_size 1000000000000/ });
    assert.throws(check({ intermediate: good.intermediate + 2 }), { code: 'ShapeMismatch', message: /mlp\.gate_proj\.weight.*intermediate_size/ });
    assert.throws(check({ kvHeads: good.heads }), { code: 'ShapeMismatch', message: /k_proj\.weight.*num_key_value_heads/ });
    assert.throws(check({ attentionBias: false }), { code: 'UnusedTensor', message: /_proj\.bias" is not used/ });
  } finally {
    ck.close();
  }
  const tiedDir = join(FIXTURES, 'llama', 'tied');
  const tied = Checkpoint.open(tiedDir);
  try {
    assert.throws(() => checkConfigAgainstCheckpoint({ ...readModelConfig(tiedDir), tieEmbeddings: false }, tied), { code: 'TensorNotFound', message: /no tensor "lm_head\.weight"/ });
  } finally {
    tied.close();
  }
});
