/** Native forward and backward against PyTorch golden outputs (test/fixtures/llama). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { VARIANTS, FIXTURES, goldenJson, goldenTensors, assertClose, relErr } from './helpers.js';

const TOL = 1e-4;

for (const variant of VARIANTS) {
  test(`${variant}: logits of a sequence match PyTorch`, async () => {
    const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, variant));
    const g = goldenTensors(variant);
    try {
      const logits = await rt.logits(g.tokens);
      assertClose(logits, g.get('seq_logits'), TOL, 'logits');
    } finally {
      g.close();
    }
  });

  test(`${variant}: per-choice length-normalised log-likelihoods match PyTorch`, async () => {
    const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, variant));
    const gj = goldenJson(variant);
    const ex = gj.examples.map((e) => ({ prompt: Int32Array.from(e.prompt), choices: e.choices.map((c) => Int32Array.from(c)), answer: e.answer }));
    const ll = await rt.score(ex);
    ll.forEach((row, i) => assertClose(row, gj.loglik[i]!, TOL, `example ${i} loglik`));
  });

  test(`${variant}: gradient of one choice's ℓ matches PyTorch for every parameter`, async () => {
    const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, variant));
    const gj = goldenJson(variant);
    const g = goldenTensors(variant);
    try {
      const e = gj.examples[gj.gradient.example]!;
      const { loglik, grad } = await rt.gradient(Int32Array.from(e.prompt), Int32Array.from(e.choices[gj.gradient.choice]!));
      assert.ok(Math.abs(loglik - gj.loglik[gj.gradient.example]![gj.gradient.choice]!) < 1e-4);
      const views = rt.tensorViews(grad);
      const goldenNames = g.names.filter((n) => n.startsWith('grad.')).map((n) => n.slice(5));
      assert.deepEqual([...views.keys()].sort(), goldenNames.sort(), 'same parameter set as PyTorch');
      for (const [name, v] of views) assertClose(v, g.get('grad.' + name), TOL, `grad ${name}`);
    } finally {
      g.close();
    }
  });
}

test('finite differences agree with the analytic gradient on a few parameters', async () => {
  const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'qwen2'));
  const gj = goldenJson('qwen2');
  const e = gj.examples[2]!;
  const prompt = Int32Array.from(e.prompt);
  const choice = Int32Array.from(e.choices[0]!);
  const { grad } = await rt.gradient(prompt, choice);
  const views = rt.tensorViews(grad);
  const probes: [string, number][] = [
    ['model.layers.0.self_attn.q_proj.weight', 5], ['model.layers.1.self_attn.k_proj.bias', 3],
    ['model.layers.0.mlp.down_proj.weight', 17], ['model.norm.weight', 4], ['model.embed_tokens.weight', e.prompt[1]! * 32 + 2],
    ['lm_head.weight', choice[0]! * 32 + 7], ['model.layers.1.input_layernorm.weight', 9], ['model.layers.1.self_attn.v_proj.weight', 40],
  ];
  for (const [name, j] of probes) {
    const w = rt.getWeight(name);
    const h = 1e-2 * Math.max(1, Math.abs(w[j]!));
    const orig = w[j]!;
    w[j] = orig + h; rt.setWeight(name, w);
    const [up] = await rt.score([{ prompt, choices: [choice], answer: 0 }]);
    w[j] = orig - h; rt.setWeight(name, w);
    const [down] = await rt.score([{ prompt, choices: [choice], answer: 0 }]);
    w[j] = orig; rt.setWeight(name, w);
    const fd = (up![0]! - down![0]!) / (2 * h);
    const an = views.get(name)![j]!;
    assert.ok(Math.abs(fd - an) <= 2e-3 * Math.max(1e-3, Math.abs(an)) + 2e-4, `${name}[${j}]: finite difference ${fd} vs analytic ${an}`);
  }
  void relErr;
});
