/**
 * transformers loads what the trainer saves: config.json, tokenizer.json and
 * model.safetensors read by AutoModelForCausalLM / AutoTokenizer give the same
 * token ids and logits as the native runtime. Runs when a Python with torch and
 * transformers is found (.venv/bin/python in the repository, or $DFMERGE_PYTHON);
 * skipped otherwise (the tests never need Python).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { initialWeights } from '../../src/train/init.js';
import { saveModel } from '../../src/train/checkpoint.js';
import { flatWeights, nextTokenSequence, train } from '../../src/train/trainer.js';
import { charTokenizerConfig, charTokenizerJson, charVocab, encodeChars, SPECIAL_IDS } from '../../src/zoo/tokenizer.js';
import { zooModelConfig } from '../../src/zoo/zoo.js';
import { makeCorpus } from '../../src/zoo/corpus.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const python = process.env.DFMERGE_PYTHON ?? (existsSync(join(ROOT, '.venv', 'bin', 'python')) ? join(ROOT, '.venv', 'bin', 'python') : undefined);

test('transformers loads a trained, saved model and computes the same logits', { skip: python === undefined ? 'no Python venv (.venv or $DFMERGE_PYTHON)' : false }, async () => {
  const cfg = zooModelConfig({ hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64, maxPositions: 32, vocab: 64 });
  const layout = LlamaRuntime.fromWeights(cfg, (_n, s) => new Float32Array(s.reduce((a, b) => a * b, 1)));
  const rt = LlamaRuntime.fromWeights(cfg, layout.tensorViews(initialWeights(layout.params, layout.numParams, 2, 11)));
  const vocab = charVocab();
  await train(rt, makeCorpus(100, 1).map((l) => nextTokenSequence(encodeChars(l, vocab, true))), { steps: 10, batchSize: 4, lr: 3e-3, seed: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'dfmerge-hf-'));
  try {
    saveModel(dir, {
      config: cfg, params: rt.params, theta: flatWeights(rt), tokenizer: charTokenizerJson(), tokenizerConfig: charTokenizerConfig(32),
      special: { bos: SPECIAL_IDS.bos, eos: SPECIAL_IDS.eos },
    });
    const text = 'rev:abcd=dcba';
    const out = JSON.parse(execFileSync(python!, [join(ROOT, 'scripts', 'check', 'hf_logits.py'), dir, text], { encoding: 'utf8' })) as
      { ids: number[]; logits: number[]; class: string };
    assert.equal(out.class, 'LlamaForCausalLM');
    const ids = encodeChars(text, vocab, true);
    assert.deepEqual(out.ids, [...ids]);
    const ours = await rt.logits(ids);
    let err = 0, scale = 0;
    for (let i = 0; i < ours.length; i++) {
      err = Math.max(err, Math.abs(ours[i]! - out.logits[i]!));
      scale = Math.max(scale, Math.abs(out.logits[i]!));
    }
    console.log(`max |logit difference| ${err.toExponential(2)} (max |logit| ${scale.toFixed(2)})`);
    assert.ok(err <= 1e-4 * Math.max(1, scale), `logits differ by ${err}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
