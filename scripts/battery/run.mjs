#!/usr/bin/env node
// The bad-input battery: runs the CLI on malformed inputs, wrong flags and
// outputs that alias inputs, and classifies every run:
//   crash      exit 70 ("internal error"), death by a signal, or a hang (time limit)
//   unclear    exit 1/2 but the message does not name the file or flag at fault
//   data loss  an input changed, or a file or hidden folder left beside the output
// Exits 1 when any run is in one of these classes. `--quick` runs a bounded
// subset (CI); without it, every case. Needs `npm run build` first.
//   node scripts/battery/run.mjs [--quick]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'dfmerge.js');
const quick = process.argv.includes('--quick');
const fx = mkdtempSync(join(tmpdir(), 'dfmerge-battery-'));
const task = join(fx, 'tasks', 'add.jsonl');

function model(name, edit) {
  const d = join(fx, name);
  mkdirSync(d, { recursive: true });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) cpSync(join(ROOT, 'test', 'fixtures', 'llama', 'gqa', f), join(d, f));
  edit?.(d);
  return d;
}
const setConfig = (edit) => (d) => {
  const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
  edit(c);
  writeFileSync(join(d, 'config.json'), JSON.stringify(c));
};
const fifo = (f) => (d) => { rmSync(join(d, f)); spawnSync('mkfifo', [join(d, f)]); };
const write = (f, content) => (d) => writeFileSync(join(d, f), content);
function tamperWeights(d, fn) {
  const p = join(d, 'model.safetensors');
  const b = readFileSync(p);
  const n = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  fn(b, h, 8 + n);
  writeFileSync(p, b);
}

mkdirSync(join(fx, 'tasks'));
cpSync(join(ROOT, 'test', 'fixtures', 'llama', 'task.jsonl'), task);
const t2 = join(fx, 'tasks', 'add2.jsonl');  // DF-Merge names tasks after their files: two files
cpSync(task, t2);
const base = model('base');
const e0 = model('expert0');
const e1 = model('expert1');
symlinkSync(base, join(fx, 'link-to-base'));
spawnSync('mkfifo', [join(fx, 'tasks', 'fifo.jsonl')]);
writeFileSync(join(fx, 'tasks', 'bad.jsonl'), '{"prompt": "x", "choices": ["a"], "answer": 3}\n');
writeFileSync(join(fx, 'tasks', 'bin.jsonl'), Buffer.from([0, 1, 2, 0xff]));

// Bad model folders: [name, how it is broken, text the message must contain].
const badModels = [
  ['cfg-empty', write('config.json', ''), 'cfg-empty/config.json'],
  ['cfg-binary', write('config.json', Buffer.from([0, 0xff, 7])), 'cfg-binary/config.json'],
  ['cfg-array', write('config.json', '[1]'), 'cfg-array/config.json'],
  ['cfg-fifo', fifo('config.json'), 'cfg-fifo/config.json'],
  ['w-fifo', fifo('model.safetensors'), 'w-fifo/model.safetensors'],
  ['w-empty', write('model.safetensors', ''), 'w-empty/model.safetensors'],
  ['w-text', write('model.safetensors', 'not a safetensors file at all'), 'w-text/model.safetensors'],
  ['w-truncated', (d) => { const p = join(d, 'model.safetensors'); writeFileSync(p, readFileSync(p).subarray(0, 5000)); }, 'w-truncated/model.safetensors'],
  ['layers-1', setConfig((c) => { c.num_hidden_layers = 1; }), 'layers-1'],
  ['layers-huge', setConfig((c) => { c.num_hidden_layers = 10_000_000; }), 'layers-huge'],
  ['vocab-huge', setConfig((c) => { c.vocab_size = 1e12; }), 'vocab-huge'],
  ['hidden-odd', setConfig((c) => { c.hidden_size = 33; }), 'hidden-odd'],
  ['index-empty', write('model.safetensors.index.json', '{"weight_map": {}}'), 'index-empty/model.safetensors.index.json'],
  ['index-dotdot', write('model.safetensors.index.json', '{"weight_map": {"model.norm.weight": ".."}}'), 'index-dotdot/model.safetensors.index.json'],
  ['nan', (d) => tamperWeights(d, (b, h, start) => { const t = Object.entries(h).find(([k, v]) => k !== '__metadata__' && v.dtype === 'F32')[1]; b.writeFloatLE(NaN, start + t.data_offsets[0]); }), 'nan/model.safetensors'],
  ['inf', (d) => tamperWeights(d, (b, h, start) => { const t = Object.entries(h).find(([k, v]) => k !== '__metadata__' && v.dtype === 'F32')[1]; b.writeFloatLE(-Infinity, start + t.data_offsets[0]); }), 'inf/model.safetensors'],
  ['tok-empty', write('tokenizer.json', ''), 'tok-empty/tokenizer.json'],
];
const paths = new Map(badModels.map(([name, edit, names]) => [name, { dir: model(name, edit), names }]));
paths.set('devnull', { dir: '/dev/null', names: '/dev/null' });
paths.set('a-file', { dir: task, names: 'add.jsonl' });

const cases = [];
const out = () => join(fx, `out-${cases.length}`);
for (const [name, { dir, names }] of paths) {
  // the bad model first: the output's config and tokenizer come from the first model
  if (!name.startsWith('layers') && !name.startsWith('vocab') && !name.startsWith('hidden') && !name.startsWith('tok')) {
    cases.push({ args: ['merge', '--method', 'linear', '-m', dir, '-m', e0, '-o', out(), '-q'], names, status: [1] });
  }
  cases.push({ args: ['eval', '--model', dir, '--task', task], names, status: [1] });
  cases.push({ args: ['fisher', '--model', dir, '--task', task, '--samples', '2', '--out', join(fx, `f-${cases.length}.safetensors`)], names, status: [1] });
}
// DF-Merge on the same bad folders, as the base and as a fine-tuned model (every model is read, and checked,
// before any evaluation). A fine-tuned model's tokenizer is not read (the base's is used, as in merge).
const small = ['--init-points', '1', '--iterations', '0', '--fisher-samples', '1', '-q'];
for (const [name, { dir, names }] of paths) {
  if (!name.startsWith('tok')) cases.push({ args: ['optimize', '--base', base, '-m', dir, '-m', e1, '--task', task, '--task', t2, '-o', out(), ...small], names, status: [1, 2] });
  if (!name.startsWith('nan') && !name.startsWith('inf')) continue;
  cases.push({ args: ['optimize', '--base', dir, '-m', e0, '-m', e1, '--task', task, '--task', t2, '-o', out(), ...small], names, status: [1] });
}
for (const t of ['fifo.jsonl', 'bad.jsonl', 'bin.jsonl']) cases.push({ args: ['eval', '--model', e0, '--task', join(fx, 'tasks', t)], names: t, status: [1] });
// outputs that are inputs
const ta = ['merge', '--method', 'task_arithmetic', '-m', e0, '-m', e1, '--force', '-q'];
cases.push({ args: [...ta, '--base', base, '-o', join(fx, 'link-to-base')], names: '--out', status: [2] });
cases.push({ args: [...ta, '--base', join(base, 'model.safetensors'), '-o', base], names: '--out', status: [2] });
cases.push({ args: [...ta, '--base', base, '-o', fx], names: '--out', status: [2] });
cases.push({ args: ['fisher', '--model', e0, '--task', task, '--out', join(e0, 'model.safetensors'), '--force'], names: '--out', status: [2] });
const opt = ['optimize', '--base', base, '-m', e0, '-m', e1, '--task', task, '--task', t2, '-q'];
cases.push({ args: [...opt, '-o', base, '--force'], names: '--out', status: [2] });
// bad flags
const mm = ['merge', '--method', 'linear', '-m', e0, '-m', e1, '-o', join(fx, 'out-flags'), '-q'];
for (const [flag, v] of [['-w', ''], ['-w', 'abc'], ['--threads', '10000'], ['--threads', '0'], ['--seed', '-1'], ['--shard-size', 'lots']]) cases.push({ args: [...mm, flag, v], names: flag, status: [2] });
for (const [flag, v] of [['--xi', '-1'], ['--kappa', '-1'], ['-t', '10000'], ['-t', '-1'], ['--init-points', '0'], ['--iterations', '1e999'], ['--bounds', '1,0'], ['--validation-fraction', '2']]) {
  cases.push({ args: [...opt, '-o', join(fx, 'out-opt'), flag, v], names: flag.replace('-t', '--threads'), status: [2] });
}
cases.push({ args: [...opt, '-o', join(fx, 'out-opt'), '--no-fisher', '--evaluator', 'python eval.py'], names: '--evaluator', status: [2] });
cases.push({ args: ['fisher', '--model', e0, '--task', task, '--out', join(fx, 'f.safetensors'), '--samples', '1e999'], names: '--samples', status: [2] });
const yaml = join(fx, 'bad.yaml');
writeFileSync(yaml, `merge_method: linear\nmodels:\n  - model: ${e0}\n    parameters:\n      weight: [ { filter: "/([a-z/", value: 0 }, { value: 1 } ]\n  - model: ${e1}\n`);
cases.push({ args: ['merge', '-c', yaml, '-o', join(fx, 'out-yaml'), '-q'], names: 'bad.yaml', status: [2] });

// Outputs on a read-only filesystem and on a full one (tmpfs mounts: needs root; skipped with the reason otherwise).
// The message must name the output path; nothing may be left on the full filesystem.
const mounts = [];
function mountTmpfs(name, options) {
  const dir = join(fx, name);
  mkdirSync(dir);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    process.stdout.write(`skipped: ${name} output cases (mount -t tmpfs failed: ${(r.stderr || r.error?.message || '').trim()}; run as root to include them)\n`);
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  mounts.push(dir);
  return dir;
}
const ro = mountTmpfs('fs-readonly', 'ro,size=1m');
const full = mountTmpfs('fs-full', 'size=1m');
if (full) {  // filled to the last byte, so that even a journal line or a folder entry fails
  try { writeFileSync(join(full, 'filler'), Buffer.alloc(2 << 20)); } catch { /* ENOSPC: full */ }
}
// room for config.json and the tokenizer but not for the weights (the fixture's are 82 kB): the write fails mid-tensor
const tight = mountTmpfs('fs-small', 'size=60k');
if (tight) {
  cases.push({ args: ['merge', '--method', 'linear', '-m', e0, '-m', e1, '-o', join(tight, 'merged'), '-q'], names: join(tight, 'merged'), status: [1], empty: tight });
  cases.push({ args: [...opt, '-o', join(tight, 'opt'), '--journal', join(fx, `j-${cases.length}.jsonl`), ...small.slice(0, -1)], names: join(tight, 'opt'), status: [1], empty: tight });
}
for (const fs of [ro, full].filter(Boolean)) {
  cases.push({ args: ['merge', '--method', 'linear', '-m', e0, '-m', e1, '-o', join(fs, 'merged'), '-q'], names: join(fs, 'merged'), status: [1], empty: fs });
  cases.push({ args: ['fisher', '--model', e0, '--task', task, '--samples', '2', '--out', join(fs, 'f.safetensors')], names: join(fs, 'f.safetensors'), status: [1], empty: fs });
  // the journal elsewhere: the output write fails after the evaluations (the journal stays, for --resume)
  cases.push({ args: [...opt, '-o', join(fs, 'opt'), '--journal', join(fx, `j-${cases.length}.jsonl`), ...small.slice(0, -1)], names: join(fs, 'opt'), status: [1], empty: fs });
  cases.push({ args: [...opt, '-o', join(fx, `out-${cases.length}`), '--journal', join(fs, 'run.journal.jsonl'), ...small.slice(0, -1)], names: join(fs, 'run.journal.jsonl'), status: [1], empty: fs });
}

const selected = quick ? cases.filter((_, i) => i % 3 === 0) : cases;

function digest(dir) {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    const st = statSync(p);
    h.update(f);
    if (st.isFile()) h.update(readFileSync(p));
  }
  return h.digest('hex');
}
const guarded = [base, e0, e1];
const before = guarded.map(digest);
const entriesBefore = new Set(readdirSync(fx));

const counts = { ok: 0, crash: 0, unclear: 0, loss: 0 };
for (const c of selected) {
  const r = spawnSync(process.execPath, [BIN, ...c.args], { encoding: 'utf8', timeout: 120_000 });
  const label = c.args.map((a) => a.replace(fx, 'fx')).join(' ');
  let verdict = 'ok';
  if (r.signal || r.status === 70 || r.status === null || /internal error/.test(r.stderr)) verdict = 'crash';
  else if (!c.status.includes(r.status) || !r.stderr.includes(c.names)) verdict = 'unclear';
  const changed = guarded.filter((d, i) => digest(d) !== before[i]);
  const left = readdirSync(fx).filter((f) => !entriesBefore.has(f) && (f.startsWith('.') || f.startsWith('out-') || f.startsWith('f-')));
  if (c.empty) left.push(...readdirSync(c.empty).filter((f) => f !== 'filler').map((f) => join(c.empty, f)));
  if (changed.length > 0 || left.length > 0) verdict = 'loss';
  counts[verdict]++;
  if (verdict !== 'ok') {
    process.stdout.write(`${verdict.toUpperCase()}: ${label}\n  exit ${r.status} signal ${r.signal}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}\n`);
    if (changed.length) process.stdout.write(`  inputs changed: ${changed.join(', ')}\n`);
    if (left.length) process.stdout.write(`  left behind: ${left.join(', ')}\n`);
    for (const f of left) rmSync(f.startsWith('/') ? f : join(fx, f), { recursive: true, force: true });
  }
}
for (const m of mounts) spawnSync('umount', [m]);
rmSync(fx, { recursive: true, force: true });
process.stdout.write(`battery${quick ? ' (quick subset)' : ''}: ${selected.length} runs: ${counts.ok} ok, ${counts.crash} crashes, ${counts.unclear} unclear errors, ${counts.loss} data-loss cases\n`);
process.exitCode = counts.crash + counts.unclear + counts.loss > 0 ? 1 : 0;
