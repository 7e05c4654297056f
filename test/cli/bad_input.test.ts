// The CLI under bad input: exit 1 (bad data) or 2 (bad usage) with a message naming
// the file, never an internal error, a hang, or an input touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { FIXTURES, ROOT, tempDir } from '../helpers.js';

const root = tempDir();
const gqa = join(FIXTURES, 'llama', 'gqa');
const task = join(FIXTURES, 'llama', 'task.jsonl');

function model(name: string, edit?: (cfg: Record<string, unknown>) => void): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) cpSync(join(gqa, f), join(d, f));
  if (edit) {
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
    edit(cfg);
    writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
  }
  return d;
}

/** Runs the CLI with a time limit: a hang is a failure, not a stuck suite. */
function cli(args: string[]): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'dfmerge.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

function refused(args: string[], status: 1 | 2, message: RegExp): void {
  const r = cli(args);
  assert.equal(r.signal, null, `${args.join(' ')}: killed by ${r.signal} (a hang?)`);
  assert.doesNotMatch(r.stderr, /internal error/, args.join(' '));
  assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr, message, args.join(' '));
}

const digest = (dir: string) => readdirSync(dir).sort().map((f) => `${f}:${createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')}`).join('\n');

test('no command writes over an input, however the output is spelled', () => {
  const base = model('base');
  const e0 = model('e0');
  const e1 = model('e1');
  symlinkSync(base, join(root, 'link-to-base'));
  const before = [base, e0, e1].map(digest);
  refused(['fisher', '--model', e0, '--task', task, '--out', join(e0, 'model.safetensors'), '--samples', '2', '--force'], 2, /is the input file .*model\.safetensors/);
  refused(['fisher', '--model', e0, '--task', task, '--out', task, '--samples', '2', '--force'], 2, /is the input file/);
  const ta = ['merge', '--method', 'task_arithmetic', '-m', e0, '-m', e1, '--force', '-q'];
  refused([...ta, '--base', base, '-o', join(root, 'link-to-base')], 2, /one of the input models/);
  refused([...ta, '--base', join(base, 'model.safetensors'), '-o', base], 2, /one of the input models/);
  refused([...ta, '--base', base, '-o', join(base, '.')], 2, /one of the input models/);
  refused([...ta, '--base', base, '-o', root], 2, /one of the input models/);
  const opt = ['optimize', '--base', base, '-m', e0, '-m', e1, '--task', task, '--task', task, '--force', '-q'];
  refused([...opt, '-o', base], 2, /one of the input models/);
  refused([...opt, '-o', join(root, 'link-to-base')], 2, /one of the input models/);
  assert.deepEqual([base, e0, e1].map(digest), before);
  // an existing Fisher output needs --force
  writeFileSync(join(root, 'f.safetensors'), 'old');
  refused(['fisher', '--model', e0, '--task', task, '--out', join(root, 'f.safetensors'), '--samples', '2'], 2, /already exists; pass --force/);
});

test('bad files in model folders: exit 1 naming the file, no hang, no internal error', () => {
  const good = model('good');
  const empty = model('empty-config');
  writeFileSync(join(empty, 'config.json'), '');
  const binary = model('binary-config');
  writeFileSync(join(binary, 'config.json'), Buffer.from([0x00, 0xff, 0x13, 0x37]));
  const fifoCfg = model('fifo-config');
  spawnSync('sh', ['-c', `rm "${join(fifoCfg, 'config.json')}" && mkfifo "${join(fifoCfg, 'config.json')}"`]);
  const fifoW = model('fifo-weights');
  spawnSync('sh', ['-c', `rm "${join(fifoW, 'model.safetensors')}" && mkfifo "${join(fifoW, 'model.safetensors')}"`]);
  const layers = model('layers-1', (c) => { c.num_hidden_layers = 1; });
  const huge = model('layers-huge', (c) => { c.num_hidden_layers = 10_000_000; });
  const vocab = model('vocab-huge', (c) => { c.vocab_size = 1e12; });
  const emptyIndex = model('empty-index');
  writeFileSync(join(emptyIndex, 'model.safetensors.index.json'), '{"weight_map": {}}');
  const dotdot = model('dotdot-index');
  writeFileSync(join(dotdot, 'model.safetensors.index.json'), '{"weight_map": {"model.norm.weight": ".."}}');
  // the bad model first: the output's config.json and tokenizer come from the first (reference) model
  const merge = (m: string) => ['merge', '--method', 'linear', '-m', m, '-m', good, '-o', join(root, 'out-bad'), '-q'];
  for (const [dir, msg] of [[empty, /empty-config\/config\.json: config\.json is empty/], [binary, /binary-config\/config\.json: config\.json is not valid JSON/],
    [fifoCfg, /fifo-config\/config\.json: config\.json is a FIFO/], [fifoW, /fifo-weights\/model\.safetensors: is a FIFO/],
    [emptyIndex, /empty-index\/model\.safetensors\.index\.json: weight_map is empty/], [dotdot, /dotdot-index\/model\.safetensors\.index\.json: weight_map entry for "model\.norm\.weight" is "\.\."/],
    ['/dev/null', /\/dev\/null: is neither a checkpoint folder nor a \.safetensors file/], [task, /task\.jsonl: header length/]] as const) {
    refused(merge(dir), 1, msg);
  }
  for (const [dir, msg] of [[layers, /layers-1 .*num_hidden_layers is 1 but the checkpoint has tensors for 2 layer/],
    [huge, /num_hidden_layers is 10000000 but the checkpoint has tensors for 2 layer/],
    [vocab, /tensor "model\.embed_tokens\.weight" has shape \[\d+, \d+\], but vocab_size 1000000000000/],
    [fifoCfg, /config\.json is a FIFO/], ['/dev/null', /\/dev\/null: --model expects a model folder/], [task, /task\.jsonl: --model expects a model folder/]] as const) {
    refused(['eval', '--model', dir, '--task', task], 1, msg);
    refused(['fisher', '--model', dir, '--task', task, '--out', join(root, 'fx.safetensors'), '--samples', '2'], 1, msg);
  }
  const fifoTask = join(root, 'fifo.jsonl');
  spawnSync('mkfifo', [fifoTask]);
  refused(['eval', '--model', good, '--task', fifoTask], 1, /fifo\.jsonl: task file is a FIFO/);
  assert.equal(existsSync(join(root, 'out-bad')), false);
  assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('.')), [], 'no hidden leftovers');
});

test('bad flags and filters: exit 2 naming the flag', () => {
  const a = model('fa');
  const b = model('fb');
  const m = ['merge', '--method', 'linear', '-m', a, '-m', b, '-o', join(root, 'out-flags'), '-q'];
  refused([...m, '-w', ''], 2, /--weight expects a number, got ""/);
  refused([...m, '--threads', '10000'], 2, /--threads must be an integer in \[1, 1024\]/);
  refused([...m, '--threads', '0'], 2, /--threads/);
  const yaml = join(root, 'bad-regex.yaml');
  writeFileSync(yaml, `merge_method: linear\nmodels:\n  - model: ${a}\n    parameters:\n      weight: [ { filter: "/([a-z/", value: 0 }, { value: 1 } ]\n  - model: ${b}\n`);
  refused(['merge', '-c', yaml, '-o', join(root, 'out-flags'), '-q'], 2, /bad-regex\.yaml: .*filter \/\(\[a-z\/ of "weight" is not a valid regular expression/);
  refused(['fisher', '--model', a, '--task', task, '--out', join(root, 'x.safetensors'), '--samples', '1e999'], 2, /--samples must be an integer ≥ 1, got "1e999"/);
  refused(['eval', '--model', a, '--task', task, '--limit', '2.5'], 2, /--limit/);
  const opt = ['optimize', '--base', a, '-m', a, '-m', b, '--task', task, '--task', task, '-o', join(root, 'out-opt'), '-q'];
  refused([...opt, '--xi', '-1'], 2, /--xi must be ≥ 0/);
  refused([...opt, '--kappa', '-1'], 2, /--kappa must be ≥ 0/);
  refused([...opt, '-t', '10000'], 2, /--threads must be an integer in \[1, 1024\]/);
  refused([...opt, '-t', '-1'], 2, /--threads/);
  refused([...opt, '--init-points', '2.5'], 2, /--init-points/);
  refused([...opt, '--no-fisher', '--evaluator', 'python eval.py'], 2, /--evaluator must contain \{dir\}/);
  assert.equal(existsSync(join(root, 'out-opt.journal.jsonl')), false, 'refused before any journal is written');
});

test('NaN weights are refused naming the tensor; a UTF-8 BOM task is accepted', () => {
  const nan = model('nan');
  const p = join(nan, 'model.safetensors');
  const buf = readFileSync(p);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const [name, t] = Object.entries(header).find(([k, v]) => k !== '__metadata__' && v.dtype === 'F32')!;
  buf.writeFloatLE(Number.NaN, 8 + n + t.data_offsets[0]);
  writeFileSync(p, buf);
  refused(['eval', '--model', nan, '--task', task], 1, new RegExp(`nan/model\\.safetensors: tensor "${name.replace(/\./g, '\\.')}" holds 1 NaN`));
  refused(['merge', '--method', 'linear', '-m', nan, '-m', model('ok2'), '-o', join(root, 'out-nan'), '-q'], 1, /holds 1 NaN/);
  assert.equal(existsSync(join(root, 'out-nan')), false);
  const bom = join(root, 'bom.jsonl');
  writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), readFileSync(task)]));
  const r = cli(['eval', '--model', model('ok3'), '--task', bom, '--json']);
  assert.equal(r.status, 0, r.stderr);
});

test('SIGINT during a merge: exit 130, no partial file, no output folder; a kill -9 leftover is removed by the next run', async () => {
  // 2 x 64 MB of zeros (sparse on disk): long enough to be interrupted mid-merge
  const big = (name: string) => {
    const d = join(root, name);
    mkdirSync(d);
    const nElem = 16 * 1024 * 1024;
    const json = JSON.stringify({ w: { dtype: 'F32', shape: [nElem], data_offsets: [0, 4 * nElem] } });
    const h = Buffer.alloc(8 + json.length);
    h.writeBigUInt64LE(BigInt(json.length), 0);
    h.write(json, 8);
    writeFileSync(join(d, 'model.safetensors'), h);
    spawnSync('truncate', ['-s', String(h.length + 4 * nElem), join(d, 'model.safetensors')]);
    return d;
  };
  const a = big('big-a');
  const b = big('big-b');
  const work = join(root, 'sigint');
  mkdirSync(work);
  const args = [join(ROOT, 'bin', 'dfmerge.js'), 'merge', '--method', 'linear', '-m', a, '-m', b, '-o', join(work, 'merged'), '-q'];
  const stop = async (signal: NodeJS.Signals): Promise<number | null> => {
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    // interrupt once the staging folder holds a partial shard
    for (let i = 0; i < 3000; i++) {
      const staging = readdirSync(work).find((f) => f.startsWith('.merged.staging-'));
      if (staging && readdirSync(join(work, staging)).some((f) => f.includes('.partial-'))) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill(signal);
    return new Promise((r) => child.on('exit', (code) => r(code)));
  };
  assert.equal(await stop('SIGINT'), 130);
  assert.deepEqual(readdirSync(work), [], 'nothing left by an interrupted merge');
  await stop('SIGKILL');
  assert.ok(readdirSync(work).some((f) => f.startsWith('.merged.staging-')), 'kill -9 leaves its staging folder');
  const r = cli(args.slice(1));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(work), ['merged'], 'the next run removed the dead run\'s leftovers');
});
