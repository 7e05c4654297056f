/** Fisher (expected mode) against PyTorch; sampled/empirical modes against gradients; scaled models. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaRuntime, finalizeFisher } from '../../src/model/runtime.js';
import { computeFisher, drawFisherExamples, writeFisher } from '../../src/fisher/fisher.js';
import { CheckpointWriter } from '../../src/io/writer.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { VARIANTS, FIXTURES, goldenJson, goldenTensors, assertClose, assertAllClose } from './helpers.js';

/** Elementwise within 1e-4 relative, with an absolute floor of 1e-6 of the tensor's largest value (entries zero up to rounding). */
function assertFisherClose(a: Float32Array, b: Float32Array, what: string): void {
  let mx = 0;
  for (const x of b) mx = Math.max(mx, Math.abs(x));
  assertAllClose(a, b, TOL, 1e-6 * mx, what);
}

const TOL = 1e-4;

function examplesOf(variant: string) {
  return goldenJson(variant).examples.map((e) => ({
    prompt: Int32Array.from(e.prompt), choices: e.choices.map((c) => Int32Array.from(c)), answer: e.answer, u: 0,
  }));
}

for (const variant of VARIANTS) {
  test(`${variant}: expected-mode Fisher matches PyTorch per tensor`, async () => {
    const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, variant));
    const g = goldenTensors(variant);
    try {
      const { fisher } = await computeFisher(rt, examplesOf(variant), { mode: 'expected', batch: 3 });
      for (const [name, v] of rt.tensorViews(fisher)) assertFisherClose(v, g.get('fisher.' + name), `fisher ${name}`);
    } finally {
      g.close();
    }
  });
}

test('the Fisher is the same without stashed choice rows (each choice re-run before its backward)', async () => {
  const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'gqa'));
  const g = goldenTensors('gqa');
  process.env.DFMERGE_FISHER_NO_STASH = '1';
  try {
    const { fisher } = await computeFisher(rt, examplesOf('gqa'), { mode: 'expected' });
    for (const [name, v] of rt.tensorViews(fisher)) assertFisherClose(v, g.get('fisher.' + name), `fisher ${name}`);
  } finally {
    delete process.env.DFMERGE_FISHER_NO_STASH;
    g.close();
  }
});

test('probabilities p(y|x) returned by the Fisher pass match PyTorch', async () => {
  const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'gqa'));
  const gj = goldenJson('gqa');
  const res = await rt.accumulateFisher(rt.newAccumulator(), examplesOf('gqa'), 'expected');
  res.forEach((r, i) => assertClose(r.prob, gj.prob[i]!, TOL, `p of example ${i}`));
});

test('empirical mode = squared gradient of the gold choice; sampled mode = squared gradient of one drawn choice', async () => {
  const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'mha'));
  const ex = examplesOf('mha')[2]!;  // 4 choices
  const acc = rt.newAccumulator();
  await rt.accumulateFisher(acc, [ex], 'empirical');
  const { grad } = await rt.gradient(ex.prompt, ex.choices[ex.answer]!);
  assertClose(acc, grad.map((x) => x * x), 1e-6, 'empirical');
  // sampled: u picks y by the cumulative p
  const prob = (await rt.accumulateFisher(rt.newAccumulator(), [ex], 'expected'))[0]!.prob;
  const u = prob[0]! + 0.5 * prob[1]!;  // falls in choice 1's interval
  const acc2 = rt.newAccumulator();
  await rt.accumulateFisher(acc2, [{ ...ex, u }], 'sampled');
  const g1 = (await rt.gradient(ex.prompt, ex.choices[1]!)).grad;
  assertClose(acc2, g1.map((x) => x * x), 1e-6, 'sampled');
});

test('Fisher examples are drawn reproducibly from the seed', () => {
  const ex = examplesOf('gqa');
  const a = drawFisherExamples(ex, 3, 7), b = drawFisherExamples(ex, 3, 7), c = drawFisherExamples(ex, 3, 8);
  assert.deepEqual(a.map((e) => [e.answer, e.u, e.prompt[1]]), b.map((e) => [e.answer, e.u, e.prompt[1]]));
  assert.equal(drawFisherExamples(ex, 30, 0).length, ex.length);
  assert.ok(a.some((e, i) => e.u !== c[i]!.u));
});

test('finalizeFisher divides by N and adds ε; writeFisher stores F32 tensors with HF names', async () => {
  const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'tied'));
  const acc = rt.newAccumulator();
  acc.fill(2);
  finalizeFisher(acc, 4);
  assert.ok(Math.abs(acc[0]! - 0.5) < 1e-7);
  const dir = mkdtempSync(join(tmpdir(), 'dfm-fisher-'));
  try {
    const path = join(dir, 'f.safetensors');
    writeFisher(rt, acc, path);
    const f = SafetensorsFile.open(path);
    assert.deepEqual(f.tensors.map((t) => t.name).sort(), rt.params.map((p) => p.name).sort());
    assert.ok(!f.has('lm_head.weight'), 'tied embeddings: one tensor');
    assert.equal(f.info('model.embed_tokens.weight').dtype, 'F32');
    f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a scaled model θ_base + λ(θ − θ_base) from disk equals the same weights given in memory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfm-base-'));
  try {
    const model = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'gqa'));
    // a "pre-trained" base: the model's weights, perturbed
    const base = new Map<string, Float32Array>();
    for (const p of model.params) base.set(p.name, model.getWeight(p.name).map((x, i) => x * 0.7 + 0.01 * Math.sin(i)));
    const w = new CheckpointWriter(dir, model.params.map((p) => ({ name: p.name, dtype: 'F32', shape: p.shape })));
    for (const [n, t] of base) w.write(n, t);
    w.finish();
    for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(FIXTURES, 'gqa', f), join(dir, f));
    const lambda = 0.6;
    const scaled = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'gqa'), { base: dir, scale: lambda });
    const mem = new Map<string, Float32Array>();
    for (const p of model.params) {
      const t = model.getWeight(p.name), b = base.get(p.name)!;
      mem.set(p.name, t.map((x, i) => b[i]! + lambda * (x - b[i]!)));
    }
    const inMemory = LlamaRuntime.fromWeights(model.config, mem);
    const tokens = Int32Array.from(goldenJson('gqa').examples[1]!.prompt);
    assertClose(await scaled.logits(tokens), await inMemory.logits(tokens), 1e-6, 'scaled logits');
    // setWeights replaces everything in place
    inMemory.setWeights((name) => model.getWeight(name));
    assertClose(await inMemory.logits(tokens), await model.logits(tokens), 0, 'after setWeights');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
