/** Training steps reduce the loss, are deterministic (any replica count), and saved models reload identically. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { readModelConfig } from '../../src/model/config.js';
import { initialWeights } from '../../src/train/init.js';
import { saveModel } from '../../src/train/checkpoint.js';
import { choiceSequence, flatWeights, nextTokenSequence, train } from '../../src/train/trainer.js';
import { charTokenizerJson, charTokenizerConfig, charVocab, encodeChars, SPECIAL_IDS } from '../../src/zoo/tokenizer.js';
import { zooModelConfig } from '../../src/zoo/zoo.js';
import { makeCorpus } from '../../src/zoo/corpus.js';
import { UsageError } from '../../src/errors.js';

const SHAPE = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64, maxPositions: 32, vocab: 64 };

function freshModel(seed: number): LlamaRuntime {
  const cfg = zooModelConfig(SHAPE);
  const layout = LlamaRuntime.fromWeights(cfg, (_n, s) => new Float32Array(s.reduce((a, b) => a * b, 1)));
  const theta = initialWeights(layout.params, layout.numParams, cfg.layers, seed);
  return LlamaRuntime.fromWeights(cfg, layout.tensorViews(theta));
}

const vocab = charVocab();
const corpus = makeCorpus(200, 5).map((l) => nextTokenSequence(encodeChars(l, vocab, true)));

test('a few AdamW steps of next-token training reduce the loss', async () => {
  const rt = freshModel(1);
  const res = await train(rt, corpus, { steps: 40, batchSize: 8, lr: 3e-3, warmup: 4, seed: 2, weightDecay: 0.01 });
  const first = res.losses.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
  assert.equal(res.losses.length, 40);
  assert.ok(first > 3.5, `initial loss ${first} should be near ln(64) = 4.16`);
  assert.ok(res.finalLoss < first - 0.5, `loss ${first.toFixed(3)} -> ${res.finalLoss.toFixed(3)} did not drop by 0.5 nat`);
  console.log(`loss ${first.toFixed(3)} -> ${res.finalLoss.toFixed(3)} in 40 steps (${res.seconds.toFixed(2)} s)`);
});

test('training is deterministic given a seed, whatever the number of replicas', async () => {
  const runs: Float32Array[] = [];
  for (const replicas of [1, 2, 3]) {
    const rt = freshModel(4);
    await train(rt, corpus, { steps: 6, batchSize: 5, lr: 1e-3, seed: 9, replicas });
    runs.push(flatWeights(rt));
  }
  assert.deepEqual(runs[1], runs[0]);
  assert.deepEqual(runs[2], runs[0]);
  const other = freshModel(4);
  await train(other, corpus, { steps: 6, batchSize: 5, lr: 1e-3, seed: 10 });
  assert.notDeepEqual(flatWeights(other), runs[0]);
});

test('supervised choice sequences and bad inputs', async () => {
  const s = choiceSequence({ prompt: Int32Array.of(1, 5), choices: [Int32Array.of(7), Int32Array.of(8, 9)], answer: 1 });
  assert.deepEqual([...s.prompt, ...s.target], [1, 5, 8, 9]);
  assert.throws(() => choiceSequence({ prompt: Int32Array.of(1), choices: [Int32Array.of(7)], answer: 3 }), UsageError);
  assert.throws(() => nextTokenSequence(Int32Array.of(1)), UsageError);
  const rt = freshModel(1);
  await assert.rejects(train(rt, [], { steps: 1, batchSize: 1, lr: 1e-3, seed: 0 }), UsageError);
  await assert.rejects(train(rt, corpus, { steps: 1, batchSize: 0, lr: 1e-3, seed: 0 }), UsageError);
  await assert.rejects(train(rt, [nextTokenSequence(new Int32Array(40).fill(4))], { steps: 1, batchSize: 1, lr: 1e-3, seed: 0 }), /context/);
});

test('a saved model reloads identically (logits equal) with an HF config.json and a working tokenizer', async () => {
  const rt = freshModel(3);
  await train(rt, corpus, { steps: 5, batchSize: 4, lr: 1e-3, seed: 1 });
  const dir = mkdtempSync(join(tmpdir(), 'dfmerge-train-'));
  try {
    saveModel(dir, {
      config: rt.config, params: rt.params, theta: flatWeights(rt), tokenizer: charTokenizerJson(),
      tokenizerConfig: charTokenizerConfig(32), special: { bos: SPECIAL_IDS.bos, eos: SPECIAL_IDS.eos },
    });
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(cfg.architectures, ['LlamaForCausalLM']);
    assert.equal(cfg.torch_dtype, 'float32');
    assert.equal(cfg.num_key_value_heads, 2);
    const back = readModelConfig(dir);
    assert.deepEqual({ ...back, source: '' }, { ...rt.config, source: '' });
    const re = LlamaRuntime.fromCheckpoint(dir);
    const tokens = ModelTokenizer.load(dir, 64).encodePrompt('cpy:abc=abc');
    assert.deepEqual([...tokens], [...encodeChars('cpy:abc=abc', vocab, true)]);
    assert.deepEqual(await re.logits(tokens), await rt.logits(tokens));
    assert.deepEqual(flatWeights(re), flatWeights(rt));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
