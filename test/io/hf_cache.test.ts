// Hugging Face cache paths (docs/design.md §10): snapshot folders whose files are symlinks
// into ../../blobs/ are read like any folder and never written through, and org/name
// (org/name@REV) resolves to its snapshot through refs/, offline, in $HF_HUB_CACHE,
// $HF_HOME/hub or ~/.cache/huggingface/hub; a local folder of the same name wins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { resolveModelDir } from '../../src/io/hf_cache.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { FIXTURES, runCli, tempDir } from '../helpers.js';

const root = tempDir('dfmerge-hfcache-');
const GQA = join(FIXTURES, 'llama', 'gqa');
const TASK = join(FIXTURES, 'llama', 'task.jsonl');
const FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];

/** A cache holding models--org--name with one snapshot per commit (files as symlinks into blobs/) and refs. */
function fakeCache(hub: string, org: string, name: string, commits: string[], refs: Record<string, string>): string {
  const repo = join(hub, `models--${org}--${name}`);
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(join(repo, 'refs'), { recursive: true });
  for (const c of commits) {
    const snap = join(repo, 'snapshots', c);
    mkdirSync(snap, { recursive: true });
    for (const f of FILES) {
      const bytes = readFileSync(join(GQA, f));
      const blob = createHash('sha256').update(bytes).digest('hex');
      writeFileSync(join(repo, 'blobs', blob), bytes);
      try { symlinkSync(join('..', '..', 'blobs', blob), join(snap, f)); } catch { /* shared blob */ }
    }
  }
  for (const [ref, commit] of Object.entries(refs)) writeFileSync(join(repo, 'refs', ref), commit);
  return repo;
}

const hub = join(root, 'hub');
const repo = fakeCache(hub, 'acme', 'tiny', ['c0ffee1', 'beef002'], { main: 'c0ffee1', v2: 'beef002' });
const env = { HF_HUB_CACHE: hub, HF_HOME: join(root, 'nohome') };

test('org/name resolves through refs/main, @tag through refs/<tag>, @commit to its snapshot; HF_HOME/hub is the fallback', () => {
  assert.equal(resolveModelDir('acme/tiny', '--model', env).dir, join(repo, 'snapshots', 'c0ffee1'));
  assert.equal(resolveModelDir('acme/tiny@v2', '--model', env).dir, join(repo, 'snapshots', 'beef002'));
  assert.equal(resolveModelDir('acme/tiny@beef002', '--model', env).dir, join(repo, 'snapshots', 'beef002'));
  assert.match(resolveModelDir('acme/tiny', '--model', env).note!, /from the Hugging Face cache/);
  // no HF_HUB_CACHE: $HF_HOME/hub
  const home = join(root, 'hfhome');
  fakeCache(join(home, 'hub'), 'acme', 'other', ['aaa'], { main: 'aaa' });
  assert.equal(resolveModelDir('acme/other', '--base', { HF_HOME: home }).dir, join(home, 'hub', 'models--acme--other', 'snapshots', 'aaa'));
  // plain paths are left as given
  assert.equal(resolveModelDir('./x/y', '--model', env).dir, './x/y');
  assert.equal(resolveModelDir('/abs/a', '--model', env).dir, '/abs/a');
});

test('a missing model names every path tried; a local folder of the same name wins, and says so', () => {
  assert.throws(() => resolveModelDir('acme/nothere', '--model', env), (e: Error) => {
    assert.match(e.message, /--model acme\/nothere: no such folder, and not in the Hugging Face cache/);
    assert.ok(e.message.includes(join(hub, 'models--acme--nothere', 'refs', 'main')), e.message);
    assert.ok(e.message.includes(join(root, 'nohome', 'hub', 'models--acme--nothere', 'refs', 'main')), e.message);
    return true;
  });
  assert.throws(() => resolveModelDir('acme/tiny@nosuchrev', '--model', env), /refs\/nosuchrev/);
  const cwd = process.cwd();
  const work = join(root, 'work');
  mkdirSync(join(work, 'acme', 'tiny'), { recursive: true });
  process.chdir(work);
  try {
    const r = resolveModelDir('acme/tiny', '--model', env);
    assert.equal(r.dir, 'acme/tiny');
    assert.match(r.note!, /using the local folder .*acme\/tiny, not the Hugging Face cache's .*snapshots\/c0ffee1/);
  } finally {
    process.chdir(cwd);
  }
});

test('eval, inspect, fisher, merge (flags and YAML) and optimize read org/name and symlinked snapshots', () => {
  const snap = join(repo, 'snapshots', 'c0ffee1');
  assert.ok(lstatSync(join(snap, 'model.safetensors')).isSymbolicLink());
  const ev = runCli(['eval', '--model', 'acme/tiny', '--task', TASK, '--json'], env);
  assert.equal(ev.status, 0, ev.stderr);
  assert.match(ev.stderr, /note: --model acme\/tiny: using .*snapshots\/c0ffee1 from the Hugging Face cache/);
  const direct = runCli(['eval', '--model', GQA, '--task', TASK, '--json'], env);
  assert.equal((JSON.parse(ev.stdout) as { meanAccuracy: number }).meanAccuracy, (JSON.parse(direct.stdout) as { meanAccuracy: number }).meanAccuracy);
  assert.equal(runCli(['inspect', 'acme/tiny@v2'], env).status, 0);
  const fi = runCli(['fisher', '--model', snap, '--base', 'acme/tiny', '--task', TASK, '--samples', '2', '--out', join(root, 'f.safetensors')], env);
  assert.equal(fi.status, 0, fi.stderr);
  const yaml = join(root, 'm.yaml');
  writeFileSync(yaml, `merge_method: task_arithmetic\nbase_model: acme/tiny\nmodels:\n  - model: acme/tiny@v2\n    parameters: { weight: 0.5 }\n  - model: ${snap}\n    parameters: { weight: 0.5 }\n`);
  const me = runCli(['merge', '-c', yaml, '-o', join(root, 'merged')], env);
  assert.equal(me.status, 0, me.stderr);
  const fl = runCli(['merge', '--method', 'linear', '--base', 'acme/tiny', '-m', 'acme/tiny', '-m', 'acme/tiny@v2', '-o', join(root, 'merged2')], env);
  assert.equal(fl.status, 0, fl.stderr);
  const ck = Checkpoint.open(join(root, 'merged2'));
  ck.close();
  const tasks = ['a', 'b'].map((t) => { const p = join(root, `${t}.jsonl`); copyFileSync(TASK, p); return p; });
  const opt = runCli(['optimize', '--base', 'acme/tiny', '-m', 'acme/tiny@v2', '-m', snap, '--task', tasks[0]!, '--task', tasks[1]!, '-o', join(root, 'opt'),
    '--init-points', '1', '--iterations', '0', '--fisher-samples', '2', '--no-baselines', '-q'], env);
  assert.equal(opt.status, 0, opt.stderr);
  // the output files are new files, not symlinks into the cache
  assert.ok(!lstatSync(join(root, 'merged2', 'config.json')).isSymbolicLink());
  assert.ok(!lstatSync(join(root, 'opt', 'tokenizer.json')).isSymbolicLink());
});

test('outputs into the cache that would replace an input or its blobs are refused, and the cache is left untouched', () => {
  const snap = join(repo, 'snapshots', 'c0ffee1');
  const before = FILES.map((f) => readFileSync(join(snap, f)));
  for (const out of [snap, join(repo, 'blobs'), repo]) {
    const r = runCli(['merge', '--method', 'linear', '-m', 'acme/tiny', '-m', 'acme/tiny@v2', '-o', out, '--force'], env);
    assert.notEqual(r.status, 0, out);
    assert.match(r.stderr, /the output folder is one of the input models or holds one/, r.stderr);
  }
  const target = join(snap, 'model.safetensors');
  const f = runCli(['fisher', '--model', 'acme/tiny', '--task', TASK, '--out', target, '--force'], env);
  assert.notEqual(f.status, 0);
  assert.match(f.stderr, /is the input file/);
  FILES.forEach((name, i) => assert.deepEqual(readFileSync(join(snap, name)), before[i], name));
});
