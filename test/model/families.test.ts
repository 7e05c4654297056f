/**
 * The config families beyond plain Llama/Qwen2 against transformers (golden
 * outputs of scripts/fixtures/make_family_fixtures.py): Llama with the llama3,
 * linear, dynamic, yarn and longrope rope scalings (sequences past
 * original_max_position_embeddings; for dynamic past max_position_embeddings),
 * Mistral's sliding window (window 5, prompts of 10+ tokens), Qwen2 with a
 * sliding window on one layer, Qwen3's q_norm / k_norm with explicit head_dim,
 * Gemma 2 and Gemma 3 (docs/design.md §9: (1 + w) norms, scaled embeddings,
 * GeGLU, post-norms, soft-capping, local/global layers with Gemma 3's two ropes).
 * Logits, ℓ(y|x), full gradients and the expected-mode Fisher, elementwise to
 * 1e-4 relative with a small absolute floor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { parseModelConfig, readModelConfig } from '../../src/model/config.js';
import { ConfigError } from '../../src/errors.js';
import { saveFlatCheckpoint } from '../../src/dfmerge/save.js';
import { readFlat } from '../dfmerge/support.js';
import { computeFisher } from '../../src/fisher/fisher.js';
import { argmax } from '../../src/eval/accuracy.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { runCli } from '../helpers.js';
import { FAMILIES, FAMILY_FIXTURES, familyGoldenJson, familyGoldenTensors, assertAllClose } from './helpers.js';

const RTOL = 1e-4;

function examplesOf(family: string) {
  return familyGoldenJson(family).examples.map((e) => ({
    prompt: Int32Array.from(e.prompt), choices: e.choices.map((c) => Int32Array.from(c)), answer: e.answer, u: 0,
  }));
}

/** Absolute floor: 1e-6 of the tensor's largest magnitude (rounding of the sums an element is made of). */
function floorOf(b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(b[i]!));
  return 1e-6 * m;
}

for (const family of FAMILIES) {
  const dir = join(FAMILY_FIXTURES, family);

  test(`${family}: logits of a ${'long'} sequence match transformers`, async () => {
    const rt = LlamaRuntime.fromCheckpoint(dir);
    const g = familyGoldenTensors(family);
    try {
      const want = g.get('seq_logits');
      assertAllClose(await rt.logits(g.tokens), want, RTOL, floorOf(want), 'logits');
    } finally {
      g.close();
    }
  });

  test(`${family}: per-choice ℓ(y|x) match transformers`, async () => {
    const rt = LlamaRuntime.fromCheckpoint(dir);
    const gj = familyGoldenJson(family);
    const ll = await rt.score(examplesOf(family));
    ll.forEach((row, i) => assertAllClose(row, gj.loglik[i]!, RTOL, 1e-6, `example ${i} loglik`));
  });

  test(`${family}: gradient of one choice's ℓ matches transformers for every parameter`, async () => {
    const rt = LlamaRuntime.fromCheckpoint(dir);
    const gj = familyGoldenJson(family);
    const g = familyGoldenTensors(family);
    try {
      const e = gj.examples[gj.gradient.example]!;
      const { grad } = await rt.gradient(Int32Array.from(e.prompt), Int32Array.from(e.choices[gj.gradient.choice]!));
      const views = rt.tensorViews(grad);
      const goldenNames = g.names.filter((n) => n.startsWith('grad.')).map((n) => n.slice(5));
      assert.deepEqual([...views.keys()].sort(), goldenNames.sort(), 'same parameter set as transformers');
      for (const [name, v] of views) {
        const want = g.get('grad.' + name);
        assertAllClose(v, want, RTOL, floorOf(want), `grad ${name}`);
      }
    } finally {
      g.close();
    }
  });

  test(`${family}: expected-mode Fisher matches transformers for every parameter`, async () => {
    const rt = LlamaRuntime.fromCheckpoint(dir);
    const g = familyGoldenTensors(family);
    try {
      const { fisher } = await computeFisher(rt, examplesOf(family), { mode: 'expected', batch: 3 });
      for (const [name, v] of rt.tensorViews(fisher)) {
        const want = g.get('fisher.' + name);
        assertAllClose(v, want, RTOL, floorOf(want), `fisher ${name}`);
      }
    } finally {
      g.close();
    }
  });
}

test('the fixtures reach the positions where each family differs from plain Llama', () => {
  const lengths = (f: string) => familyGoldenJson(f).sequenceLengths.flat();
  for (const f of ['llama3', 'yarn', 'longrope']) {
    const orig = readModelConfig(join(FAMILY_FIXTURES, f)).rope!.originalMax!;
    assert.ok(Math.max(...lengths(f)) > orig && Math.min(...lengths(f)) <= orig, `${f}: sequences on both sides of ${orig}`);
  }
  const dyn = readModelConfig(join(FAMILY_FIXTURES, 'dynamic'));
  assert.ok(Math.max(...lengths('dynamic')) > dyn.rope!.originalMax!, 'dynamic: sequences past max_position_embeddings');
  const mistral = readModelConfig(join(FAMILY_FIXTURES, 'mistral'));
  assert.deepEqual(mistral.layerWindows, [5, 5]);
  assert.ok(Math.min(...familyGoldenJson('mistral').examples.map((e) => e.prompt.length)) > 5, 'prompts longer than the window');
  assert.deepEqual(readModelConfig(join(FAMILY_FIXTURES, 'qwen2_window')).layerWindows, [0, 6]);
  const q3 = readModelConfig(join(FAMILY_FIXTURES, 'qwen3'));
  assert.deepEqual([q3.qkNorm, q3.headDim, q3.hidden / q3.heads], [true, 16, 8]);
  // Gemma: a local layer (window 5) and a global one, prompts past the window,
  // soft-capping on, attention scale and head_dim not the defaults.
  const g2 = readModelConfig(join(FAMILY_FIXTURES, 'gemma2'));
  assert.deepEqual([g2.layerWindows, g2.attnSoftcap, g2.finalSoftcap, g2.queryPreAttnScalar, g2.headDim, g2.tieEmbeddings],
    [[5, 0], 2, 3, 24, 16, true]);
  assert.deepEqual([g2.activation, g2.normOffset, g2.embedScale, g2.postNorms, g2.qkNorm], ['gelu_pytorch_tanh', 1, Math.sqrt(32), true, false]);
  const g3 = readModelConfig(join(FAMILY_FIXTURES, 'gemma3'));
  assert.deepEqual([g3.layerWindows, g3.attnSoftcap, g3.finalSoftcap, g3.qkNorm, g3.tieEmbeddings], [[5, 0, 5], 0, 3, true, true]);
  assert.deepEqual([g3.ropeTheta, g3.rope, g3.localRope], [1e5, { type: 'linear', factor: 2 }, { theta: 1e4, scaling: { type: 'default' }, layers: [true, false, true] }]);
  for (const f of ['gemma2', 'gemma3']) {
    assert.ok(Math.min(...familyGoldenJson(f).examples.map((e) => e.prompt.length)) > 5, `${f}: prompts longer than the window`);
  }
});

/** A Gemma config.json as the hub has them (transformers 4 field names), tiny sizes. */
function gemmaConfig(arch: 'Gemma2ForCausalLM' | 'Gemma3ForCausalLM', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: [arch], model_type: arch === 'Gemma2ForCausalLM' ? 'gemma2' : 'gemma3_text',
    hidden_size: 32, intermediate_size: 48, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 8,
    vocab_size: 72, max_position_embeddings: 64, ...extra,
  };
}

test('Gemma configs: transformers\' defaults for absent fields and the transformers 4 rope fields', () => {
  // Gemma 2: local and global layers alternate from a local one; window, soft-caps,
  // query_pre_attn_scalar, head_dim and tied embeddings default as in Gemma2Config.
  const g2 = parseModelConfig(gemmaConfig('Gemma2ForCausalLM'));
  assert.deepEqual(g2.layerWindows, [4096, 0, 4096, 0, 4096, 0, 4096, 0]);
  assert.deepEqual([g2.attnSoftcap, g2.finalSoftcap, g2.queryPreAttnScalar, g2.headDim, g2.tieEmbeddings, g2.ropeTheta],
    [50, 30, 256, 256, true, 10000]);
  assert.equal(g2.localRope, undefined);
  const nulls = parseModelConfig(gemmaConfig('Gemma2ForCausalLM', { attn_logit_softcapping: null, final_logit_softcapping: null, tie_word_embeddings: false }));
  assert.deepEqual([nulls.attnSoftcap, nulls.finalSoftcap, nulls.tieEmbeddings], [0, 0, false]);
  // Gemma 3 (transformers 4 fields): every 6th layer global; rope_scaling and
  // rope_theta for global layers, rope_local_base_freq for local ones.
  const g3 = parseModelConfig(gemmaConfig('Gemma3ForCausalLM', {
    sliding_window: 512, rope_theta: 1e6, rope_local_base_freq: 1e4, rope_scaling: { rope_type: 'linear', factor: 8 },
  }));
  assert.deepEqual(g3.layerWindows, [512, 512, 512, 512, 512, 0, 512, 512]);
  assert.deepEqual([g3.ropeTheta, g3.rope, g3.localRope!.theta, g3.localRope!.scaling, g3.localRope!.layers],
    [1e6, { type: 'linear', factor: 8 }, 1e4, { type: 'default' }, [true, true, true, true, true, false, true, true]]);
  assert.deepEqual([g3.attnSoftcap, g3.finalSoftcap, g3.qkNorm], [0, 0, true]);
  const pattern = parseModelConfig(gemmaConfig('Gemma3ForCausalLM', { sliding_window_pattern: 2 }));
  assert.deepEqual([pattern.layerWindows, pattern.ropeTheta, pattern.localRope!.theta], [[4096, 0, 4096, 0, 4096, 0, 4096, 0], 1e6, 1e4]);
  // transformers 5: rope_parameters per layer type, a rope_scaling updating full_attention.
  const v5 = parseModelConfig(gemmaConfig('Gemma3ForCausalLM', {
    rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 5e5 }, sliding_attention: { rope_type: 'default', rope_theta: 2e4 } },
    rope_scaling: { rope_type: 'linear', factor: 4 },
  }));
  assert.deepEqual([v5.ropeTheta, v5.rope, v5.localRope!.theta], [5e5, { type: 'linear', factor: 4 }, 2e4]);
});

test('Gemma configs the runtime does not implement are refused naming the field', () => {
  const refused = (c: Record<string, unknown>, field: string, message: RegExp) =>
    assert.throws(() => parseModelConfig(c, 'x/config.json'), (e: unknown) => e instanceof ConfigError && e.message.includes(field) && message.test(e.message));
  refused({ ...gemmaConfig('Gemma3ForCausalLM'), architectures: ['Gemma3ForConditionalGeneration'] }, 'architectures', /multimodal.*Gemma3ForCausalLM/);
  refused({ ...gemmaConfig('Gemma3ForCausalLM'), architectures: undefined, model_type: 'gemma3' }, 'architectures', /missing/);
  refused({ ...gemmaConfig('Gemma3ForCausalLM'), model_type: 'gemma3' }, 'model_type', /multimodal/);
  refused(gemmaConfig('Gemma2ForCausalLM', { hidden_activation: 'gelu' }), 'hidden_activation', /"gelu" is not supported/);
  refused(gemmaConfig('Gemma2ForCausalLM', { hidden_act: 'silu' }), 'hidden_act', /contradicts hidden_activation/);
  refused(gemmaConfig('Gemma3ForCausalLM', { use_bidirectional_attention: true }), 'use_bidirectional_attention', /not supported/);
  refused(gemmaConfig('Gemma2ForCausalLM', { attention_bias: true }), 'attention_bias', /not supported/);
  refused(gemmaConfig('Gemma2ForCausalLM', { sliding_window: null }), 'sliding_window', /positive integer/);
  refused(gemmaConfig('Gemma2ForCausalLM', { attn_logit_softcapping: -1 }), 'attn_logit_softcapping', /positive number or null/);
  refused(gemmaConfig('Gemma3ForCausalLM', { rope_parameters: { rope_type: 'default' } }), 'rope_parameters', /full_attention, sliding_attention/);
  refused(gemmaConfig('Gemma3ForCausalLM', { rope_parameters: { sliding_attention: { rope_type: 'su' } } }), 'rope_parameters.sliding_attention.rope_type', /not supported/);
});

test('dfmerge optimize runs on Gemma 2 and Gemma 3, and its best merge scores as dfmerge eval scores it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfm-gemma-opt-'));
  try {
    for (const family of ['gemma2', 'gemma3']) {
      const base = join(FAMILY_FIXTURES, family);
      const rt = LlamaRuntime.fromCheckpoint(base);
      const flat = readFlat(rt, base);
      let s = 7;
      const models = [0, 1].map((k) => join(dir, `${family}-m${k}`));
      for (const m of models) {  // "fine-tuned" models: the base plus seeded noise
        const x = new Float32Array(flat);
        for (let i = 0; i < x.length; i++) {
          s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
          x[i] = x[i]! + (s / 4294967296 - 0.5) * 0.1;
        }
        await saveFlatCheckpoint(rt, x, base, m);
      }
      const tasks = ['a', 'b'].map((t) => join(dir, `${t}.jsonl`));
      for (const t of tasks) copyFileSync(join(FAMILY_FIXTURES, 'task.jsonl'), t);
      const out = join(dir, `${family}-out`);
      const r = runCli(['optimize', '--base', base, ...models.flatMap((m) => ['-m', m]), ...tasks.flatMap((t) => ['--task', t]),
        '-o', out, '--init-points', '2', '--iterations', '1', '--fisher-samples', '2', '--no-baselines', '--json', '-q']);
      assert.equal(r.status, 0, r.stderr);
      const report = JSON.parse(r.stdout) as { rows: { name: string; validation: Record<string, number> }[]; best: { lambda: number[] } };
      assert.equal(report.best.lambda.length, 2);
      const merged = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { architectures: string[] };
      assert.deepEqual(merged.architectures, JSON.parse(readFileSync(join(base, 'config.json'), 'utf8')).architectures);
      const ev = runCli(['eval', '--model', out, '--task', tasks[0]!, '--json']);
      assert.equal(ev.status, 0, ev.stderr);
      const acc = (JSON.parse(ev.stdout) as { tasks: { accuracy: number }[] }).tasks[0]!.accuracy;
      assert.equal(acc, report.rows.find((row) => row.name === 'DF-Merge')!.validation.a, `${family}: merged model's accuracy`);
      const mergedFlat = readFlat(rt, out);
      assert.ok(mergedFlat.some((v, i) => v !== flat[i]), `${family}: the merge differs from the base`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dfmerge eval and dfmerge fisher run on every family from the command line and agree with transformers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dfm-families-'));
  try {
    const task = join(FAMILY_FIXTURES, 'task.jsonl');
    for (const family of FAMILIES) {
      const model = join(FAMILY_FIXTURES, family);
      const gj = familyGoldenJson(family);
      const ev = runCli(['eval', '--model', model, '--task', task, '--json']);
      assert.equal(ev.status, 0, ev.stderr);
      assert.deepEqual((JSON.parse(ev.stdout) as { tasks: { predictions: number[] }[] }).tasks[0]!.predictions, gj.loglik.map(argmax), `${family}: predictions`);
      const out = join(dir, `${family}.safetensors`);
      const fi = runCli(['fisher', '--model', model, '--task', task, '--out', out, '--samples', String(gj.examples.length)]);
      assert.equal(fi.status, 0, fi.stderr);
      const got = SafetensorsFile.open(out);
      const g = familyGoldenTensors(family);
      try {
        assert.deepEqual(got.tensors.map((t) => t.name).sort(), g.names.filter((n) => n.startsWith('fisher.')).map((n) => n.slice(7)).sort());
        for (const t of got.tensors) {
          const want = g.get('fisher.' + t.name);
          assertAllClose(got.toFloat32(t.name), want, RTOL, floorOf(want), `${family}: fisher ${t.name}`);
        }
      } finally {
        got.close();
        g.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
