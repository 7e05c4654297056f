/**
 * The config families beyond plain Llama/Qwen2 against transformers (golden
 * outputs of scripts/fixtures/make_family_fixtures.py): Llama with the llama3,
 * linear, dynamic, yarn and longrope rope scalings (sequences past
 * original_max_position_embeddings; for dynamic past max_position_embeddings),
 * Mistral's sliding window (window 5, prompts of 10+ tokens), Qwen2 with a
 * sliding window on one layer, Qwen3's q_norm / k_norm with explicit head_dim.
 * Logits, ℓ(y|x), full gradients and the expected-mode Fisher, elementwise to
 * 1e-4 relative with a small absolute floor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { readModelConfig } from '../../src/model/config.js';
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
