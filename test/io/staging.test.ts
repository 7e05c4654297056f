// Output folders complete or absent; leftovers of dead runs removed by PID, those of live runs kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StagedFolder } from '../../src/io/staging.js';
import { processAlive, removeDeadLeftovers, temporarySibling } from '../../src/io/leftovers.js';
import { tempDir } from '../helpers.js';

/** A PID that is certainly not running: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(r.stdout);
  assert.equal(processAlive(pid), false);
  return pid;
}

test('commit replaces the whole earlier output: no stale file survives', () => {
  const root = tempDir();
  const out = join(root, 'merged');
  mkdirSync(out);
  writeFileSync(join(out, 'model-00001-of-00002.safetensors'), 'stale shard');
  writeFileSync(join(out, 'model.safetensors.index.json'), 'stale index');
  const s = StagedFolder.create(out);
  writeFileSync(join(s.dir, 'model.safetensors'), 'new');
  assert.deepEqual(readdirSync(out).sort(), ['model-00001-of-00002.safetensors', 'model.safetensors.index.json'], 'nothing visible before commit');
  s.commit();
  assert.deepEqual(readdirSync(out), ['model.safetensors']);
  assert.equal(readFileSync(join(out, 'model.safetensors'), 'utf8'), 'new');
  assert.deepEqual(readdirSync(root), ['merged'], 'no staging or replaced folder is left');
});

test('abort leaves nothing, and the earlier output untouched', () => {
  const root = tempDir();
  const out = join(root, 'merged');
  mkdirSync(out);
  writeFileSync(join(out, 'keep'), 'x');
  const s = StagedFolder.create(out);
  writeFileSync(join(s.dir, 'half'), 'y');
  s.abort();
  s.abort();
  assert.deepEqual(readdirSync(root), ['merged']);
  assert.deepEqual(readdirSync(out), ['keep']);
});

test('a staged folder is removed when the process exits without committing', () => {
  const root = tempDir();
  const script = `
    import { StagedFolder } from ${JSON.stringify(new URL('../../src/io/staging.js', import.meta.url).href)};
    const s = StagedFolder.create(${JSON.stringify(join(root, 'out'))});
    process.stdout.write(s.dir);
    process.exit(3);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 3, r.stderr);
  assert.ok(r.stdout.includes('.out.staging-'), r.stdout);
  assert.equal(existsSync(r.stdout), false);
  assert.deepEqual(readdirSync(root), []);
});

test('leftovers of dead runs are removed; those of this (live) run and other names are kept', () => {
  const root = tempDir();
  const dead = deadPid();
  const names = [
    `.merged.partial-${dead}-1`, `.model.safetensors.partial-${dead}-7`, `.merged.staging-${dead}-2`, `.merged.candidates-${dead}-3`,
    `.merged.replaced-${dead}-4`,
  ];
  for (const n of names) {
    if (n.includes('partial')) writeFileSync(join(root, n), 'x');
    else mkdirSync(join(root, n));
  }
  const live = temporarySibling(join(root, 'merged'), 'staging');
  mkdirSync(live);
  writeFileSync(join(root, '.merged.partial-notapid-1'), 'x');
  writeFileSync(join(root, 'merged.partial-1-1'), 'not hidden: not ours');
  const removed = removeDeadLeftovers(root, 'merged').map((p) => p.slice(root.length + 1)).sort();
  assert.deepEqual(removed, names.filter((n) => n.startsWith('.merged.')).sort());
  assert.ok(existsSync(join(root, `.model.safetensors.partial-${dead}-7`)), 'another name is left alone');
  assert.ok(existsSync(live), 'a live run keeps its staging folder');
  removeDeadLeftovers(root);
  assert.deepEqual(readdirSync(root).sort(), [live.slice(root.length + 1), '.merged.partial-notapid-1', 'merged.partial-1-1'].sort());
});
