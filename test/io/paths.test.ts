// "Is the output an input?" by device + inode: symlinks, `.`, a file's folder, hard links.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertOutputFileNotInput, assertOutputFolderNotInput, sameFile } from '../../src/io/paths.js';
import { tempDir } from '../helpers.js';

function model(root: string, name: string): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'model.safetensors'), 'weights');
  writeFileSync(join(d, 'config.json'), '{}');
  return d;
}

test('an output folder that is an input however it is spelled is refused', () => {
  const root = tempDir();
  const base = model(root, 'base');
  const expert = model(root, 'expert');
  symlinkSync(base, join(root, 'link-to-base'));
  for (const out of [base, join(root, 'link-to-base'), join(base, '.'), join(root, 'expert', '..', 'base')]) {
    assert.throws(() => assertOutputFolderNotInput(out, [base, expert]), { code: 'Usage', message: /is one of the input models or holds one/ }, out);
  }
  // the folder of an input given as a file, and a folder above an input
  assert.throws(() => assertOutputFolderNotInput(base, [join(base, 'model.safetensors')]), { code: 'Usage' });
  assert.throws(() => assertOutputFolderNotInput(root, [expert]), { code: 'Usage' });
  // a checkpoint whose weights are symlinks into the output folder (the Hugging Face cache layout)
  const cached = join(root, 'cached');
  mkdirSync(cached);
  symlinkSync(join(base, 'model.safetensors'), join(cached, 'model.safetensors'));
  assert.throws(() => assertOutputFolderNotInput(base, [cached]), { message: /resolves to/ });
  // elsewhere is fine, existing or not
  assertOutputFolderNotInput(join(root, 'merged'), [base, expert]);
  mkdirSync(join(root, 'merged2'));
  assertOutputFolderNotInput(join(root, 'merged2'), [base, expert]);
});

test('an output file that is an input file (symlink, hard link) is refused even with force; an existing one needs force', () => {
  const root = tempDir();
  const expert = model(root, 'expert');
  const weights = join(expert, 'model.safetensors');
  symlinkSync(weights, join(root, 'sym.safetensors'));
  linkSync(weights, join(root, 'hard.safetensors'));
  for (const out of [weights, join(root, 'sym.safetensors'), join(root, 'hard.safetensors')]) {
    assert.throws(() => assertOutputFileNotInput(out, [expert], true), { code: 'Usage', message: /is the input file .*would destroy it/ }, out);
  }
  writeFileSync(join(root, 'old.safetensors'), 'old');
  assert.throws(() => assertOutputFileNotInput(join(root, 'old.safetensors'), [expert], false), { message: /already exists; pass --force/ });
  assertOutputFileNotInput(join(root, 'old.safetensors'), [expert], true);
  assertOutputFileNotInput(join(root, 'new.safetensors'), [expert], false);
  assert.throws(() => assertOutputFileNotInput(root, [expert], true), { message: /is a folder/ });
  assert.equal(sameFile(weights, join(root, 'hard.safetensors')), true);
  assert.equal(sameFile(weights, join(root, 'old.safetensors')), false);
});
