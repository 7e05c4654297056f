// What a resumed DF-Merge run refuses: the base's or a model's weights rewritten in
// place since the journal was written (same paths), or another dtype; and what
// every run refuses up front: a model holding NaN or ±Inf.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { optimize, type OptimizeOptions } from '../../src/dfmerge/optimize.js';
import { makeTinyRun, type TinyRun } from './support.js';
import { tempDir } from '../helpers.js';

const root = tempDir();
const run = await makeTinyRun(root, 2, 0.05);

function opts(out: string, extra: Partial<OptimizeOptions> = {}): OptimizeOptions {
  return {
    base: run.base, models: run.models, tasks: run.tasks.map((validation) => ({ validation })),
    out, initPoints: 2, iterations: 0, fisherSamples: 2, seed: 3, baselines: false, ...extra,
  };
}

/** Rewrites a folder's weights in place: same path, same size, the first float of the data section changed. */
function rewriteInPlace(dir: string): void {
  const p = join(dir, 'model.safetensors');
  const b = readFileSync(p);
  const start = 8 + Number(b.readBigUInt64LE(0));
  b.writeFloatLE(b.readFloatLE(start) + 0.5, start);
  writeFileSync(p, b);
  const t = new Date(Date.now() + 60_000);
  utimesSync(p, t, t);
}

for (const [what, change] of [
  ['base', (r: TinyRun) => { rewriteInPlace(r.base); return {}; }],
  ['models', (r: TinyRun) => { rewriteInPlace(r.models[1]!); return {}; }],
  ['dtype', () => ({ dtype: 'BF16' as const })],
] as const) {
  test(`resume refuses when the ${what} changed since the journal was written, and leaves the journal as it was`, async () => {
    const r = await makeTinyRun(tempDir(), 2, 0.05);
    const out = join(tempDir(), 'out');
    const first = await optimize(opts(out, { base: r.base, models: r.models }));
    const saved = readFileSync(first.journal, 'utf8');
    const extra = change(r);
    await assert.rejects(optimize(opts(out, { base: r.base, models: r.models, resume: true, force: true, iterations: 1, ...extra })),
      { code: 'ConfigChanged', message: new RegExp(`differs in: ${what}\\)`) });
    assert.equal(readFileSync(first.journal, 'utf8'), saved);
  });
}

test('a model holding NaN is refused before any evaluation, naming file and tensor, and no output is left', async () => {
  const bad = join(root, 'bad');
  const good = run.models[0]!;
  mkdirSync(bad);
  for (const f of readdirSync(good)) copyFileSync(join(good, f), join(bad, f));
  const p = join(bad, 'model.safetensors');
  const b = readFileSync(p);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
  const [name, info] = [...Object.entries(header)].filter(([k]) => k !== '__metadata__').at(-1)!;
  b.writeFloatLE(Number.NaN, 8 + n + info.data_offsets![0] + 4);
  writeFileSync(p, b);
  const out = join(root, 'nan-out');
  await assert.rejects(optimize(opts(out, { models: [good, bad] })), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'NonFinite');
    assert.ok(e.message.includes(p), e.message);
    assert.ok(e.message.includes(`"${name}"`), e.message);
    assert.match(e.message, /first at element 1\b/);
    return true;
  });
  const left = readdirSync(root).filter((f) => f.startsWith('nan-out') || f.startsWith('.nan-out'));
  assert.deepEqual(left, []);
});

test('a fine-tuned model of another family than the base is refused naming the field, even with equal shapes', async () => {
  const other = join(root, 'other-family');
  const good = run.models[0]!;
  mkdirSync(other);
  for (const f of readdirSync(good)) copyFileSync(join(good, f), join(other, f));
  const cfgPath = join(other, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: null }));
  await assert.rejects(optimize(opts(join(root, 'family-out'), { models: [good, other] })),
    { code: 'ModelMismatch', message: /other-family: does not share the base model's architecture \(architecture: mistral vs base llama\)/ });
});
