/** Tiny DF-Merge setups for tests: "fine-tuned" models made by perturbing a fixture model with seeded task vectors. */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { saveFlatCheckpoint } from '../../src/dfmerge/save.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { FIXTURES } from '../helpers.js';

export interface TinyRun { base: string; models: string[]; tasks: string[] }

/** base = the GQA fixture; model k = base + seeded noise of the given scale; two copies of the fixture task. */
export async function makeTinyRun(root: string, m = 2, scale = 0.05): Promise<TinyRun> {
  const src = join(FIXTURES, 'llama', 'gqa');
  const base = join(root, 'base');
  mkdirSync(base, { recursive: true });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(src, f), join(base, f));
  const rt = LlamaRuntime.fromCheckpoint(base);
  const flat = readFlat(rt, base);
  let s = 12345;
  const models: string[] = [];
  for (let k = 0; k < m; k++) {
    const x = new Float32Array(flat);
    for (let i = 0; i < x.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      x[i] = x[i]! + (s / 4294967296 - 0.5) * 2 * scale;
    }
    const dir = join(root, `model${k}`);
    await saveFlatCheckpoint(rt, x, base, dir);
    models.push(dir);
  }
  const lines = readFileSync(join(FIXTURES, 'llama', 'task.jsonl'), 'utf8');
  const tasks = Array.from({ length: m }, (_, k) => {
    const p = join(root, `task${k}.jsonl`);
    writeFileSync(p, lines);
    return p;
  });
  return { base, models, tasks };
}

/** A checkpoint's runtime parameters as one flat f32 array (read with the plain safetensors reader, for checks). */
export function readFlat(rt: LlamaRuntime, dir: string): Float32Array {
  const flat = new Float32Array(rt.numParams);
  const ck = Checkpoint.open(dir);
  try {
    for (const p of rt.params) flat.set(ck.locate(p.name).file.toFloat32(p.name), p.offset);
  } finally {
    ck.close();
  }
  return flat;
}
