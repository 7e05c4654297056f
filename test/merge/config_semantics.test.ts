/**
 * mergekit's meaning of the config keys and parameters, and the refusals by name
 * of what dfmerge does not implement (never silently ignored).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { CheckpointWriter } from '../../src/io/writer.js';
import { loadConfigFile, parseMethod } from '../../src/merge/config.js';
import { runMerge } from '../../src/merge/run.js';
import { decode, encode } from './reference.js';
import { runCli, tempDir } from '../helpers.js';

const root = tempDir();
function tiny(name: string, scale: number): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', torch_dtype: 'float32' }));
  const w = new CheckpointWriter(dir, [{ name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [4] }, { name: 'model.norm.weight', dtype: 'F32', shape: [2] }]);
  w.write('model.layers.0.mlp.up_proj.weight', encode(Float64Array.of(1, 2, 3, 4).map((v) => v * scale), 'F32'));
  w.write('model.norm.weight', encode(Float64Array.of(1, -1).map((v) => v * scale), 'F32'));
  w.finish();
  return dir;
}
const a = tiny('a', 1);
const b = tiny('b', 3);

function yaml(name: string, text: string): string {
  const p = join(root, `${name}.yml`);
  writeFileSync(p, text);
  return p;
}

test('method names in the spellings users type', () => {
  assert.equal(parseMethod('task-arithmetic'), 'task_arithmetic');
  assert.equal(parseMethod('Task_Arithmetic'), 'task_arithmetic');
  assert.equal(parseMethod('breadcrumbs-ties'), 'breadcrumbs_ties');
  assert.throws(() => parseMethod('arcee_fusion'), /unknown merge method "arcee_fusion": choose one of .*slerp/);
});

test('unknown parameters, keys and unimplemented options are refused by name', () => {
  const base = `merge_method: linear\nmodels:\n  - model: ${a}\n    parameters: { weight: 1 }\n`;
  assert.throws(() => loadConfigFile(yaml('p1', base + 'parameters: { densty: 0.5 }\n')), /parameter "densty" is not used by this method/);
  assert.throws(() => loadConfigFile(yaml('p2', base + 'tokenizer: { source: union }\n')), /"tokenizer": vocabulary merging/);
  assert.throws(() => loadConfigFile(yaml('p3', base + 'chat_template: chatml\n')), /"chat_template": chat_template is not implemented/);
  assert.throws(() => loadConfigFile(yaml('p4', base + 'tokenizer_source: union\n')), /tokenizer_source: "union" is not implemented/);
  assert.throws(() => loadConfigFile(yaml('p5', base + 'modules: {}\n')), /"modules": per-module configs/);
  assert.throws(() => loadConfigFile(yaml('p6', base + 'tokenizer_source: base\n')), /tokenizer_source: base needs a base_model/);
  assert.throws(() => loadConfigFile(yaml('p7', `merge_method: ties\nbase_model: ${a}\nmodels:\n  - model: ${b}\n    parameters: { density: 0.5 }\n`)), /needs parameter "weight" for every model/);
  assert.throws(() => loadConfigFile(yaml('p8', `merge_method: ties\nbase_model: ${a}\nmodels:\n  - model: ${b}\n    parameters: { weight: 1, normalize: true }\n`)), /"normalize" is a method-level parameter/);
  assert.throws(() => loadConfigFile(yaml('p9', `merge_method: slerp\nbase_model: ${a}\nmodels:\n  - model: ${a}\n  - model: ${b}\n`)), /method slerp needs parameter "t"/);
  assert.throws(() => loadConfigFile(yaml('p10', `merge_method: karcher\nmodels:\n  - model: ${a}\n    parameters: { weight: 1 }\n`)), /parameter "weight" is not used by this method/);
});

test('relative paths resolve from the current folder, as in mergekit, and say so when they only exist beside the config', () => {
  const sub = join(root, 'sub');
  mkdirSync(sub, { recursive: true });
  tiny(join('sub', 'm'), 1);
  assert.throws(() => loadConfigFile(yaml(join('sub', 'rel'), 'merge_method: linear\nmodels:\n  - model: ./m\n    parameters: { weight: 1 }\n')),
    /resolved from the current folder \(as mergekit does\).*exists next to the config/);
});

test('filter "*" matches every tensor, a weight given at the top level applies to every model, out_dtype sets the output dtype', async () => {
  const out = join(root, 'star');
  await runMerge(loadConfigFile(yaml('star', `merge_method: task_arithmetic\nbase_model: ${a}\nmodels:\n  - model: ${b}\nparameters:\n  weight:\n    - filter: "*"\n      value: 0.5\ndtype: float32\nout_dtype: bfloat16\n`)), { out, quiet: true });
  const ck = Checkpoint.open(out);
  const { file, info } = ck.locate('model.layers.0.mlp.up_proj.weight');
  assert.equal(info.dtype, 'BF16');
  // 1 + 0.5·(3 − 1) = 2 per unit
  assert.deepEqual([...decode(file.bytes('model.layers.0.mlp.up_proj.weight'), 'BF16')], [2, 4, 6, 8]);
  ck.close();
});

test('with -c, flags the config decides are refused by name', () => {
  const p = yaml('cflags', `merge_method: linear\nmodels:\n  - model: ${a}\n    parameters: { weight: 1 }\n`);
  const r = runCli(['merge', '-c', p, '--method', 'ties', '--density', '0.5', '-w', '2', '-o', join(root, 'never')]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--method, --density, -w\/--weight: with -c the config file decides/);
});
