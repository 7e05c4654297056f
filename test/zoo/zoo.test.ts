/**
 * The --fast zoo end to end: files and manifest, every expert beats the base on
 * its own task's validation split, the manifest's accuracies are what
 * `dfmerge eval`'s code computes from the saved folders, reuse, and the tokenizer
 * and task formats.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildZoo, resolveZoo, zooConfig, type ZooBuild } from '../../src/zoo/zoo.js';
import { TASKS, makeSplits, makeExample, CIPHER } from '../../src/zoo/tasks.js';
import { charTokenizerJson } from '../../src/zoo/tokenizer.js';
import { zooTable } from '../../src/cli/zoo.js';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { loadTask, tokenizeTask } from '../../src/eval/task.js';
import { ZOO_DELIMITER } from '../../src/zoo/tasks.js';
import { evaluateTasks } from '../../src/eval/accuracy.js';
import { Rng } from '../../src/util/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'dfmerge-zoo-'));
let built: ZooBuild | undefined;
const lines: string[] = [];

async function zoo(): Promise<ZooBuild> {
  built ??= await buildZoo({ out: dir, fast: true, seed: 0, onProgress: (l) => lines.push(l) });
  return built;
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('tasks: 4 distinct same-length choices, gold correct, disjoint splits, deterministic', () => {
  const rng = new Rng(1);
  for (const spec of TASKS) {
    for (let i = 0; i < 200; i++) {
      const e = makeExample(spec, rng);
      assert.equal(e.choices.length, 4);
      assert.equal(new Set(e.choices).size, 4);
      assert.ok(e.choices.every((c) => c.length === e.choices[0]!.length));
      const input = /:(.*)=$/.exec(e.prompt)![1]!;
      const gold = e.choices[e.answer]!;
      if (spec.name === 'reverse') assert.equal(gold, [...input].reverse().join(''));
      if (spec.name === 'sort') assert.equal(gold, [...input].sort().join(''));
      if (spec.name === 'modadd') {
        const k = Number(/^add(\d):/.exec(e.prompt)![1]);
        assert.equal(gold, [...input].map((d) => String((Number(d) + k) % 10)).join(''));
      }
      if (spec.name === 'charmap') assert.equal(gold, [...input].map((c) => CIPHER[c.charCodeAt(0) - 97]).join(''));
    }
    const s = makeSplits(spec, { train: 300, validation: 50, test: 50 }, 3);
    const prompts = [...s.train, ...s.validation, ...s.test].map((e) => e.prompt);
    assert.equal(new Set(prompts).size, prompts.length, `${spec.name}: a prompt is in two splits`);
    assert.deepEqual(makeSplits(spec, { train: 300, validation: 50, test: 50 }, 3), s);
  }
});

test('the char tokenizer.json is a real tokenizer (loaded by @huggingface/tokenizers)', async () => {
  const b = await zoo();
  const tok = ModelTokenizer.load(b.dir, 64);
  const ids = tok.encodePrompt('rev:abc=');
  assert.equal(ids[0], 1);
  assert.equal(ids.length, 9);
  assert.equal(tok.decode(tok.encodeChoice('add3:0123=3456')), 'add3:0123=3456');
  assert.deepEqual(JSON.parse(readFileSync(join(b.dir, 'tokenizer.json'), 'utf8')), charTokenizerJson());
});

test('--fast zoo: every expert beats the base on its own validation split', async () => {
  const b = await zoo();
  const m = b.manifest;
  console.log(`fast zoo built in ${m.seconds.toFixed(1)} s; validation accuracy (%):\n` + zooTable(m, 'validation'));
  assert.equal(b.reused, false);
  assert.deepEqual(m.config, zooConfig(0, true));
  assert.ok(m.config.tasks.length >= 4);
  const paths = resolveZoo(b.dir, m);
  for (const p of [paths.base, paths.multitask, ...Object.values(paths.experts)]) {
    for (const f of ['config.json', 'tokenizer.json', 'model.safetensors']) assert.ok(existsSync(join(p, f)), `${p}/${f}`);
  }
  for (const t of m.config.tasks) {
    for (const s of ['train', 'validation', 'test'] as const) assert.ok(existsSync(paths.tasks[t]![s]));
    const base = m.accuracy.base![t]!.validation, expert = m.accuracy[t]![t]!.validation;
    console.log(`${t}: base ${(100 * base).toFixed(1)}% -> expert ${(100 * expert).toFixed(1)}% (multi-task ${(100 * m.accuracy.multitask![t]!.validation).toFixed(1)}%)`);
    assert.ok(expert > base + 0.1, `expert ${t} (${expert}) does not beat the base (${base}) by 10 points`);
  }
  assert.ok(lines.some((l) => l.includes('base: step')), 'progress lines');
});

test('saved zoo models reload identically and the manifest accuracies are reproducible from the files', async () => {
  const b = await zoo();
  const paths = resolveZoo(b.dir, b.manifest);
  const t = b.manifest.config.tasks[0]!;
  const rt = LlamaRuntime.fromCheckpoint(paths.experts[t]!);
  const task = tokenizeTask(loadTask(paths.tasks[t]!.validation), rt.tokenizer!, rt.config.maxPositions, { delimiter: ZOO_DELIMITER });
  const res = await evaluateTasks(rt, [task]);
  assert.equal(res.meanAccuracy, b.manifest.accuracy[t]![t]!.validation);
  // Two fresh loads give equal logits (fresh: a runtime's prefix cache changes the last bits).
  const ids = task.examples[0]!.prompt;
  const a = await LlamaRuntime.fromCheckpoint(paths.experts[t]!).logits(ids);
  const b2 = await LlamaRuntime.fromCheckpoint(paths.experts[t]!).logits(ids);
  assert.deepEqual(a, b2);
});

test('an existing zoo with the same configuration is reused; another seed is not', async () => {
  const b = await zoo();
  const again = await buildZoo({ out: dir, fast: true, seed: 0 });
  assert.equal(again.reused, true);
  assert.deepEqual(again.manifest, b.manifest);
  const cfg = zooConfig(1, true);
  assert.notDeepEqual(cfg, b.manifest.config);
});
