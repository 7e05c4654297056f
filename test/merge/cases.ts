/**
 * The merge cases shared by the CPU and CUDA method tests: seeded inputs (base,
 * three models, Fisher tensors, DF-Merge accumulators) in any dtype pattern, and
 * for each method the request and its float64 reference.
 */
import type { ComputeDtype } from '../../src/native/addon.js';
import { fnv1a64, type MergeTensorRequest, type TensorInput } from '../../src/merge/kernels.js';
import {
  DTYPES, Rng, dareKeepMask, deltas, randomTensor, refDeltaSum, refDfCombine, refFisher, refLinear,
  refSignElect, trimTies, type RefResult, type RefTensor,
} from './reference.js';

export const K = 3;
export const SIZES = [1, 7, 4097, 3 * 1024 * 1024 + 5];
export type Pattern = ComputeDtype | 'mixed';

export interface Inputs {
  n: number;
  base: RefTensor;
  models: RefTensor[];
  fishers: RefTensor[];
  w: RefTensor;
  s: RefTensor;
}

function dtypeFor(p: Pattern, j: number): ComputeDtype {
  return p === 'mixed' ? DTYPES[j % 3]! : p;
}

function makeInputs(n: number, p: Pattern, seed: number): Inputs {
  const rng = new Rng(seed);
  const base = randomTensor(rng, n, dtypeFor(p, 0), () => 0.05 * rng.normal());
  const models = Array.from({ length: K }, (_, k) =>
    randomTensor(rng, n, dtypeFor(p, k + 1), (i) => base.values[i]! + 0.01 * rng.normal()));
  const fishers = Array.from({ length: K }, (_, k) =>
    randomTensor(rng, n, dtypeFor(p, k + 2), () => (rng.next() < 0.3 ? 0 : 1e-2 * rng.normal() ** 2)));
  const s = randomTensor(rng, n, dtypeFor(p, 1), () => (rng.next() < 0.1 ? 0 : 1e-2 * rng.next()));
  const w = randomTensor(rng, n, dtypeFor(p, 2), () => 1e-4 * rng.normal());
  return { n, base, models, fishers, w, s };
}

const input = (t: RefTensor): TensorInput => ({ data: t.bytes, dtype: t.dtype });

export interface Case {
  name: string;
  request(inp: Inputs, out: Uint8Array, dtype: ComputeDtype): MergeTensorRequest;
  reference(inp: Inputs): RefResult;
}

const LIN_W = [0.3, 0.5, 0.2];
const TA_W = [0.7, -0.3, 1.1];
const TIES_W = [1, 0.6, 0.8];
const DARE_W = [0.5, 0.4, 0.9];
const FISHER_L = [0.2, 0.3, 0.5];
const FISHER_C = [1, 2, 0.5];
const FLOOR = Math.fround(1e-3);
const SEED = 1234n;
const TENSOR = 'model.layers.0.mlp.down_proj.weight';

export const CASES: Case[] = [
  {
    name: 'linear',
    request: (inp, out, dtype) => ({ method: 'linear', tensor: TENSOR, models: inp.models.map(input), weights: LIN_W, out: { kind: 'memory', data: out, dtype } }),
    reference: (inp) => refLinear(inp.models.map((m) => m.values), LIN_W, true),
  },
  {
    name: 'linear (no normalise)',
    request: (inp, out, dtype) => ({ method: 'linear', models: inp.models.map(input), weights: TA_W, normalize: false, out: { kind: 'memory', data: out, dtype } }),
    reference: (inp) => refLinear(inp.models.map((m) => m.values), TA_W, false),
  },
  {
    name: 'task_arithmetic',
    request: (inp, out, dtype) => ({ method: 'task_arithmetic', base: input(inp.base), models: inp.models.map(input), weights: TA_W, out: { kind: 'memory', data: out, dtype } }),
    reference: (inp) => refDeltaSum(inp.base.values, deltas(inp.base.values, inp.models.map((m) => m.values)), TA_W, false),
  },
  {
    name: 'ties',
    request: (inp, out, dtype) => ({ method: 'ties', base: input(inp.base), models: inp.models.map(input), weights: TIES_W, density: 0.4, out: { kind: 'memory', data: out, dtype } }),
    reference: (inp) => refSignElect(inp.base.values, deltas(inp.base.values, inp.models.map((m) => m.values)).map((t) => trimTies(t, 0.4)), TIES_W, true),
  },
  {
    name: 'dare_linear',
    request: (inp, out, dtype) => ({ method: 'dare_linear', tensor: TENSOR, seed: SEED, base: input(inp.base), models: inp.models.map(input), weights: DARE_W, density: 0.7, out: { kind: 'memory', data: out, dtype } }),
    reference: (inp) => refDeltaSum(inp.base.values, dareDeltas(inp, 0.7), DARE_W, false),
  },
  {
    name: 'dare_ties',
    request: (inp, out, dtype) => ({ method: 'dare_ties', tensor: TENSOR, seed: SEED, base: input(inp.base), models: inp.models.map(input), weights: DARE_W, density: 0.7, normalize: true, out: { kind: 'memory', data: out, dtype } }),
    reference: (inp) => refSignElect(inp.base.values, dareDeltas(inp, 0.7), DARE_W, true),
  },
  {
    name: 'fisher',
    request: (inp, out, dtype) => ({ method: 'fisher', models: inp.models.map(input), fishers: inp.fishers.map(input), weights: FISHER_L, fisherScale: FISHER_C, out: { kind: 'memory', data: out, dtype } }),
    reference: (inp) => refFisher(inp.models.map((m) => m.values), inp.fishers.map((f) => f.values), FISHER_L, FISHER_C, -Infinity),
  },
  {
    name: 'fisher (floor)',
    request: (inp, out, dtype) => ({ method: 'fisher', models: inp.models.map(input), fishers: inp.fishers.map(input), weights: FISHER_L, fisherFloor: FLOOR, out: { kind: 'memory', data: out, dtype } }),
    reference: (inp) => refFisher(inp.models.map((m) => m.values), inp.fishers.map((f) => f.values), FISHER_L, [1, 1, 1], FLOOR),
  },
  {
    name: 'dfmerge combine',
    request: (inp, out, dtype) => ({ method: 'dfmerge', base: input(inp.base), w: input(inp.w), s: input(inp.s), m: 3, out: { kind: 'memory', data: out, dtype } }),
    reference: (inp) => refDfCombine(inp.base.values, inp.w.values, inp.s.values, 3),
  },
];

function dareDeltas(inp: Inputs, density: number): Float64Array[] {
  const tid = fnv1a64(TENSOR);
  return deltas(inp.base.values, inp.models.map((m) => m.values)).map((t, k) => {
    const keep = dareKeepMask(SEED, tid, k, inp.n, density);
    return t.map((v, i) => (keep[i] ? v / density : 0));
  });
}

const inputCache = new Map<string, Inputs>();
export function inputsFor(n: number, p: Pattern): Inputs {
  const key = `${n}/${p}`;
  let inp = inputCache.get(key);
  if (!inp) {
    inp = makeInputs(n, p, n * 7 + p.length);
    inputCache.set(key, inp);
  }
  return inp;
}

