/**
 * mergekit's own example configs (its examples/ folder: bio-merge, gradient-slerp,
 * linear, orcamini-platy-44layer, ties), unchanged but for the model paths, run on
 * tiny 40-layer llama-shaped checkpoints; selected output tensors are checked
 * against the float64 references with the parameters mergekit resolves for them
 * (gradients over layer depth, filters, per-model fallbacks). mega.yml (several
 * documents) is refused by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { CheckpointWriter, type TensorSpec } from '../../src/io/writer.js';
import { loadConfigFile } from '../../src/merge/config.js';
import { runMerge } from '../../src/merge/run.js';
import type { ComputeDtype } from '../../src/native/addon.js';
import { Rng, compare, decode, deltas, encode, refLinear, refSignElect, trimTies } from './reference.js';
import { refSlerp } from './reference_methods.js';
import { tempDir } from '../helpers.js';

const root = tempDir();
const LAYERS = 40;
const specs: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [8, 4] },
  ...Array.from({ length: LAYERS }, (_, i) => [
    { name: `model.layers.${i}.self_attn.q_proj.weight`, dtype: 'BF16', shape: [4, 4] },
    { name: `model.layers.${i}.mlp.up_proj.weight`, dtype: 'BF16', shape: [4, 6] },
    { name: `model.layers.${i}.input_layernorm.weight`, dtype: 'BF16', shape: [4] },
  ]).flat(),
  { name: 'model.norm.weight', dtype: 'BF16', shape: [4] },
  { name: 'lm_head.weight', dtype: 'BF16', shape: [8, 4] },
];
const rng = new Rng(5);
const base = new Map<string, Float64Array>();
for (const s of specs) base.set(s.name, Float64Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.1));

/** A model folder named after a Hugging Face id: base values plus noise (or the base itself). */
function model(id: string, noise: number): { dir: string; values: Map<string, Float64Array> } {
  const dir = join(root, id.replace('/', '__'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', num_hidden_layers: LAYERS, torch_dtype: 'bfloat16' }));
  const values = new Map<string, Float64Array>();
  const w = new CheckpointWriter(dir, specs);
  for (const s of specs) {
    const v = base.get(s.name)!.map((x) => x + noise * rng.normal());
    const bytes = encode(decode(encode(v, 'F32'), 'F32').map((x) => Math.fround(x)), 'F32');
    const exact = decode(encode(decode(bytes, 'F32').map((x) => x), 'F32'), 'F32');
    // store as BF16: round through the encoder's exact-value contract
    const bf = Float64Array.from(exact, (x) => { const f = new Float32Array([x]); const u = new Uint32Array(f.buffer); u[0] = u[0]! & 0xffff0000; return f[0]!; });
    values.set(s.name, bf);
    w.write(s.name, encode(bf, 'BF16'));
  }
  w.finish();
  return { dir, values };
}

const M = new Map([
  ['mistralai/Mistral-7B-v0.1', 0], ['mistralai/Mistral-7B-Instruct-v0.2', 0.02], ['BioMistral/BioMistral-7B', 0.02],
  ['psmathur/orca_mini_v3_13b', 0.02], ['garage-bAInd/Platypus2-13B', 0.02], ['WizardLM/WizardLM-13B-V1.2', 0.02],
  ['TheBloke/Llama-2-13B-fp16', 0], ['WizardLM/WizardMath-13B-V1.0', 0.02],
].map(([id, noise]) => [id as string, model(id as string, noise as number)]));
const dir = (id: string) => M.get(id)!.dir;
const val = (id: string, name: string) => M.get(id)!.values.get(name)!;

/** The example's text with each model id replaced by its local folder. */
function example(name: string, text: string): string {
  let t = text;
  for (const id of M.keys()) t = t.split(id).join(dir(id));
  const p = join(root, `${name}.yml`);
  writeFileSync(p, t);
  return p;
}

async function run(name: string, text: string): Promise<{ ck: Checkpoint; out: string }> {
  const out = join(root, `out-${name}`);
  await runMerge(loadConfigFile(example(name, text)), { out, quiet: true });
  return { ck: Checkpoint.open(out), out };
}

function expect(ck: Checkpoint, name: string, dtype: ComputeDtype, ref: ReturnType<typeof refLinear>): void {
  const { file, info } = ck.locate(name);
  assert.equal(info.dtype, dtype, name);
  const r = compare(file.bytes(name), dtype, ref);
  assert.equal(r.badCount, 0, `${name}: ${JSON.stringify(r.bad)}`);
}

/** mergekit's gradient: t·(len − 1) interpolated linearly. */
function grad(v: number[], t: number): number {
  const s = t * (v.length - 1);
  const i0 = Math.floor(s);
  const i1 = Math.min(v.length - 1, i0 + 1);
  return (1 - (s - i0)) * v[i0]! + (s - i0) * v[i1]!;
}

test('examples/linear.yml', async () => {
  const { ck } = await run('linear', `models:
  - model: psmathur/orca_mini_v3_13b
    parameters:
      weight: 1.0
  - model: WizardLM/WizardLM-13B-V1.2
    parameters:
      weight: 0.3
  - model: garage-bAInd/Platypus2-13B
    parameters:
      weight: 0.5
merge_method: linear
dtype: float16
`);
  const ids = ['psmathur/orca_mini_v3_13b', 'WizardLM/WizardLM-13B-V1.2', 'garage-bAInd/Platypus2-13B'];
  for (const name of ['model.embed_tokens.weight', 'model.layers.7.mlp.up_proj.weight', 'lm_head.weight']) {
    expect(ck, name, 'F16', refLinear(ids.map((id) => val(id, name)), [1, 0.3, 0.5], true));
  }
  ck.close();
});

test('examples/bio-merge.yml (TIES, per-model density, normalize false, int8_mask)', async () => {
  const { ck } = await run('bio', `models:
  - model: mistralai/Mistral-7B-Instruct-v0.2
    parameters:
      density: 0.5
      weight: 0.5
  - model: BioMistral/BioMistral-7B
    parameters:
      density: 0.5
      weight: 0.5
merge_method: ties
base_model: mistralai/Mistral-7B-v0.1
parameters:
  normalize: false
  int8_mask: true
dtype: float16
`);
  const b = 'mistralai/Mistral-7B-v0.1';
  for (const name of ['model.layers.3.self_attn.q_proj.weight', 'model.norm.weight']) {
    const ts = deltas(val(b, name), [val('mistralai/Mistral-7B-Instruct-v0.2', name), val('BioMistral/BioMistral-7B', name)]);
    expect(ck, name, 'F16', refSignElect(val(b, name), ts.map((t) => trimTies(t, 0.5)), [0.5, 0.5], false));
  }
  ck.close();
});

test('examples/ties.yml (density and weight gradients, weight filters, the base listed apart)', async () => {
  const { ck } = await run('ties', `models:
  - model: psmathur/orca_mini_v3_13b
    parameters:
      density: [1, 0.7, 0.1] # density gradient
      weight: 1.0
  - model: garage-bAInd/Platypus2-13B
    parameters:
      density: 0.5
      weight: [0, 0.3, 0.7, 1] # weight gradient
  - model: WizardLM/WizardMath-13B-V1.0
    parameters:
      density: 0.33
      weight:
        - filter: mlp
          value: 0.5
        - value: 0
merge_method: ties
base_model: TheBloke/Llama-2-13B-fp16
parameters:
  normalize: true
  int8_mask: true
dtype: float16
`);
  const b = 'TheBloke/Llama-2-13B-fp16';
  const ids = ['psmathur/orca_mini_v3_13b', 'garage-bAInd/Platypus2-13B', 'WizardLM/WizardMath-13B-V1.0'];
  for (const [name, depth] of [['model.layers.13.mlp.up_proj.weight', 13 / 39], ['model.layers.30.self_attn.q_proj.weight', 30 / 39], ['model.embed_tokens.weight', 0]] as const) {
    const dens = [grad([1, 0.7, 0.1], depth), 0.5, 0.33];
    const w = [1, grad([0, 0.3, 0.7, 1], depth), name.includes('mlp') ? 0.5 : 0];
    const ts = deltas(val(b, name), ids.map((id) => val(id, name)));
    expect(ck, name, 'F16', refSignElect(val(b, name), ts.map((t, k) => trimTies(t, dens[k]!)), w.map((x) => Math.fround(x)), true));
  }
  ck.close();
});

test('examples/gradient-slerp.yml (slices, t gradients by filter)', async () => {
  const { ck } = await run('gslerp', `slices:
  - sources:
      - model: psmathur/orca_mini_v3_13b
        layer_range: [0, 40]
      - model: garage-bAInd/Platypus2-13B
        layer_range: [0, 40]
# or, the equivalent models: syntax:
# models:
#   - model: psmathur/orca_mini_v3_13b
#   - model: garage-bAInd/Platypus2-13B
merge_method: slerp
base_model: psmathur/orca_mini_v3_13b
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5 # fallback for rest of tensors
dtype: float16
`);
  const a = 'psmathur/orca_mini_v3_13b';
  const b = 'garage-bAInd/Platypus2-13B';
  for (const [name, t] of [
    ['model.layers.10.self_attn.q_proj.weight', grad([0, 0.5, 0.3, 0.7, 1], 10 / 39)],
    ['model.layers.25.mlp.up_proj.weight', grad([1, 0.5, 0.7, 0.3, 0], 25 / 39)],
    ['model.layers.25.input_layernorm.weight', 0.5],
    ['lm_head.weight', 0.5],
  ] as const) {
    expect(ck, name, 'F16', refSlerp(Math.fround(t), val(a, name), val(b, name)));
  }
  ck.close();
});

test('examples/orcamini-platy-44layer.yml (passthrough frankenmerge)', async () => {
  const { ck, out } = await run('franken', `slices:
  - sources:
    - model: psmathur/orca_mini_v3_13b
      layer_range: [0, 24]
  - sources:
    - model: garage-bAInd/Platypus2-13B
      layer_range: [20, 40]
merge_method: passthrough
dtype: float16
`);
  const a = 'psmathur/orca_mini_v3_13b';
  const b = 'garage-bAInd/Platypus2-13B';
  const same = (name: string, id: string, src: string) => {
    const got = decode(ck.locate(name).file.bytes(name), 'F16');
    const want = val(id, src);
    assert.ok(got.every((g, i) => g === decode(encode(Float64Array.of(want[i]!), 'F32'), 'F32')[0]! || Math.abs(g - want[i]!) <= Math.abs(want[i]!) * 2 ** -11), `${name} is ${id}'s ${src}`);
  };
  same('model.layers.3.mlp.up_proj.weight', a, 'model.layers.3.mlp.up_proj.weight');
  same('model.layers.23.self_attn.q_proj.weight', a, 'model.layers.23.self_attn.q_proj.weight');
  same('model.layers.24.self_attn.q_proj.weight', b, 'model.layers.20.self_attn.q_proj.weight');
  same('model.layers.43.input_layernorm.weight', b, 'model.layers.39.input_layernorm.weight');
  same('model.embed_tokens.weight', a, 'model.embed_tokens.weight');
  same('lm_head.weight', b, 'lm_head.weight');
  assert.equal(ck.names.filter((n) => n.endsWith('q_proj.weight')).length, 44);
  assert.equal((JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { num_hidden_layers: number }).num_hidden_layers, 44);
  ck.close();
});

test('examples/mega.yml (several YAML documents) is refused by name', () => {
  const p = example('mega', `models:
  - model: psmathur/orca_mini_v3_13b
merge_method: linear
name: first
---
models:
  - model: garage-bAInd/Platypus2-13B
merge_method: linear
`);
  assert.throws(() => loadConfigFile(p), /holds 2 YAML documents \(a mergekit-mega config\)/);
});
