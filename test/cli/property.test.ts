// Property-based (fast-check): whatever bytes a model folder's config.json or
// weights, or a task file, hold, the CLI either succeeds or exits 1/2 with a
// message naming the file, never crashes or hangs, and leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { FIXTURES, ROOT, tempDir } from '../helpers.js';

const root = tempDir();
const gqa = join(FIXTURES, 'llama', 'gqa');
const weights = readFileSync(join(gqa, 'model.safetensors'));
const good = join(root, 'good');
mkdirSync(good);
for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) cpSync(join(gqa, f), join(good, f));

function cli(args: string[]): { status: number | null; signal: string | null; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'dfmerge.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

function assertClean(r: ReturnType<typeof cli>, names: string, work: string): void {
  assert.equal(r.signal, null, `killed by ${r.signal}`);
  assert.doesNotMatch(r.stderr, /internal error/);
  assert.ok(r.status === 0 || r.status === 1 || r.status === 2, `exit ${r.status}: ${r.stderr}`);
  if (r.status !== 0) assert.ok(r.stderr.includes(names), `the message names ${names}: ${r.stderr}`);
  assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('.')), [], 'no hidden leftovers');
}

/** A mutation of the fixture's weights: bytes overwritten, the file cut, or the header length changed. */
const mutatedWeights = fc.oneof(
  fc.record({ at: fc.nat({ max: weights.length - 1 }), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }).map(({ at, bytes }) => {
    const b = Buffer.from(weights);
    b.set(bytes.subarray(0, Math.min(bytes.length, b.length - at)), at);
    return b;
  }),
  fc.nat({ max: weights.length - 1 }).map((n) => weights.subarray(0, n)),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((len) => { const b = Buffer.from(weights); b.writeBigUInt64LE(len, 0); return b; }),
);

/** config.json contents: arbitrary bytes, arbitrary JSON, or the real config with a field replaced by an arbitrary JSON value. */
const config = JSON.parse(readFileSync(join(gqa, 'config.json'), 'utf8')) as Record<string, unknown>;
const mutatedConfig = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc.json().map((s) => Buffer.from(s)),
  fc.record({ key: fc.constantFrom(...Object.keys(config)), value: fc.jsonValue() }).map(({ key, value }) => Buffer.from(JSON.stringify({ ...config, [key]: value }))),
);

let n = 0;
test('merge and eval on a model folder with mutated weights or config.json: clean exit naming the file', () => {
  fc.assert(fc.property(fc.oneof(mutatedWeights.map((w) => ({ w, c: undefined as Buffer | undefined })), mutatedConfig.map((c) => ({ w: undefined as Buffer | undefined, c }))), ({ w, c }) => {
    const work = join(root, `w${n++}`);
    const bad = join(work, 'bad');
    mkdirSync(bad, { recursive: true });
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) cpSync(join(gqa, f), join(bad, f));
    if (w) writeFileSync(join(bad, 'model.safetensors'), w);
    if (c) writeFileSync(join(bad, 'config.json'), c);
    const names = w ? 'bad/model.safetensors' : 'bad';
    const out = join(work, 'out');
    const merged = cli(['merge', '--method', 'linear', '-m', bad, '-m', good, '-o', out, '-q']);
    assertClean(merged, names, work);
    if (merged.status !== 0) assert.deepEqual(readdirSync(work), ['bad'], 'a failed merge leaves no output folder');
    assertClean(cli(['eval', '--model', bad, '--task', join(FIXTURES, 'llama', 'task.jsonl')]), names, work);
    rmSync(work, { recursive: true, force: true });
  }), { numRuns: 12, seed: 20261201 });
});

test('eval on a mutated task file: clean exit naming the file and line', () => {
  const lines = readFileSync(join(FIXTURES, 'llama', 'task.jsonl'), 'utf8').split('\n').filter(Boolean);
  const mutatedLine = fc.oneof(
    fc.string(),
    fc.json(),
    fc.record({ key: fc.constantFrom('prompt', 'choices', 'answer'), value: fc.jsonValue() })
      .map(({ key, value }) => JSON.stringify({ ...(JSON.parse(lines[0]!) as object), [key]: value })),
  );
  fc.assert(fc.property(fc.array(mutatedLine, { minLength: 1, maxLength: 3 }), fc.boolean(), (extra, bom) => {
    const work = join(root, `t${n++}`);
    mkdirSync(work);
    const file = join(work, 'task.jsonl');
    writeFileSync(file, (bom ? '\ufeff' : '') + [...lines, ...extra].join('\n') + '\n');
    assertClean(cli(['eval', '--model', good, '--task', file]), 'task.jsonl', work);
    rmSync(work, { recursive: true, force: true });
  }), { numRuns: 12, seed: 7 });
});
