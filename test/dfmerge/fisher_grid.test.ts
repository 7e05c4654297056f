/** --fisher-grid: grid points, bracketing, reuse of stored grid files, interpolated merges against an independent computation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FisherGrid, bracket, gridPoints } from '../../src/dfmerge/fisher_grid.js';
import { DfMergeObjective } from '../../src/dfmerge/objective.js';
import { loadSetup } from '../../src/dfmerge/setup.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { makeTinyRun, readFlat } from './support.js';
import { tempDir } from '../helpers.js';

const root = tempDir();
const run = await makeTinyRun(root, 2, 0.05);
const setupOptions = { base: run.base, models: run.models, tasks: run.tasks.map((t) => ({ validation: t })), fisherSamples: 3, validationFraction: 1, seed: 5, needFisher: true };

test('grid points span the bounds; bracket finds the two points around λ and the weight of the upper one', () => {
  assert.deepEqual(gridPoints(3, [0, 1]), [0, 0.5, 1]);
  assert.deepEqual(gridPoints(5, [0.2, 1]).map((x) => +x.toFixed(6)), [0.2, 0.4, 0.6, 0.8, 1]);
  assert.throws(() => gridPoints(1, [0, 1]), /K ≥ 2/);
  const p = [0, 0.5, 1];
  assert.deepEqual(bracket(p, 0.25), { k: 0, t: 0.5 });
  assert.deepEqual(bracket(p, 0.5), { k: 0, t: 1 });
  assert.deepEqual(bracket(p, 0.75), { k: 1, t: 0.5 });
  assert.deepEqual(bracket(p, 1), { k: 1, t: 1 });
  assert.deepEqual(bracket(p, 0), { k: 0, t: 0 });
});

test('a grid merge at λ between points equals θ_pre + M·Σ F̃_i λ_i τ_i / Σ F̃_i with F̃ interpolated from the stored files', async () => {
  for (const interpolation of ['linear', 'log'] as const) {
    const setup = loadSetup(setupOptions);
    const dir = join(root, `grid-${interpolation}`);
    const grid = await FisherGrid.open(setup, { dir, points: [0, 0.5, 1], interpolation, fisherMode: 'expected' });
    const obj = new DfMergeObjective(setup, { fisher: true, fisherMode: 'expected', grid });
    const lambda = [0.3, 0.8];
    const { merged } = await obj.merge(lambda);
    const base = readFlat(setup.rt, run.base);
    const thetas = run.models.map((m) => readFlat(setup.rt, m));
    const M = lambda.length;
    for (const p of setup.rt.params) {
      const num = new Float64Array(p.numel), den = new Float64Array(p.numel);
      for (let i = 0; i < M; i++) {
        const { k, t } = bracket([0, 0.5, 1], lambda[i]!);
        const f0 = SafetensorsFile.open(join(dir, `model${i}-point${k}.safetensors`)).toFloat32(p.name);
        const f1 = SafetensorsFile.open(join(dir, `model${i}-point${k + 1}.safetensors`)).toFloat32(p.name);
        for (let j = 0; j < p.numel; j++) {
          const f = interpolation === 'linear' ? (1 - t) * f0[j]! + t * f1[j]! : Math.exp((1 - t) * Math.log(f0[j]!) + t * Math.log(f1[j]!));
          num[j] += f * lambda[i]! * (thetas[i]![p.offset + j]! - base[p.offset + j]!);
          den[j] += f;
        }
      }
      const got = merged.view(p.offset, p.numel);
      for (let j = 0; j < p.numel; j++) {
        const want = base[p.offset + j]! + (M * num[j]!) / den[j]!;
        assert.ok(Math.abs(got[j]! - want) <= 1e-5 * (1 + Math.abs(want)), `${interpolation} ${p.name}[${j}]: ${got[j]} vs ${want}`);
      }
    }
    grid.close();
    setup.close();
  }
});

test('at a grid point the grid merge equals the exact one; stored grid files are reused, and recomputed when the mode changes', async () => {
  const setup = loadSetup(setupOptions);
  const dir = join(root, 'grid-reuse');
  const grid = await FisherGrid.open(setup, { dir, points: [0, 0.5, 1], interpolation: 'linear', fisherMode: 'expected' });
  const exact = new DfMergeObjective(setup, { fisher: true, fisherMode: 'expected' });
  const viaGrid = new DfMergeObjective(setup, { fisher: true, fisherMode: 'expected', grid });
  const lambda = [0.5, 1];
  const a = (await exact.merge(lambda)).merged, b = (await viaGrid.merge(lambda)).merged;
  for (const p of setup.rt.params) {
    const x = a.view(p.offset, p.numel), y = b.view(p.offset, p.numel);
    for (let j = 0; j < p.numel; j++) assert.ok(Math.abs(x[j]! - y[j]!) <= 1e-5 * (1 + Math.abs(x[j]!)), `${p.name}[${j}]: ${x[j]} vs ${y[j]}`);
  }
  grid.close();
  const mtimes = () => new Map(readdirSync(dir).map((f) => [f, statSync(join(dir, f)).mtimeMs]));
  const before = mtimes();
  assert.equal(before.size, 6, 'one file per model and grid point');
  (await FisherGrid.open(setup, { dir, points: [0, 0.5, 1], interpolation: 'linear', fisherMode: 'expected' })).close();
  assert.deepEqual(mtimes(), before, 'a second open computes nothing');
  (await FisherGrid.open(setup, { dir, points: [0, 0.5, 1], interpolation: 'linear', fisherMode: 'empirical' })).close();
  for (const [f, t] of mtimes()) assert.notEqual(t, before.get(f), `${f} recomputed for another mode`);
  setup.close();
});
