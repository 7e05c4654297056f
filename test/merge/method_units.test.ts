/**
 * The methods built on the lincomb, gta, sce and nearswap kernels, each through its
 * descriptor (src/merge/methods/: coefficients, counts, defaults) and the native
 * kernel, against an independent float64 reference of its published definition
 * (test/merge/reference_methods.ts), on awkward sizes and shapes (1, 7, 4097,
 * 33×129 and 3 Mi + 5, which crosses chunk and reduction-block boundaries) and
 * every input/output dtype.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fnv1a64, mergeTensor, type TensorInput } from '../../src/merge/kernels.js';
import { loadAddon } from '../../src/native/addon.js';
import { methodDescriptor } from '../../src/merge/methods/index.js';
import type { MethodInputs } from '../../src/merge/methods/index.js';
import type { TensorPlan } from '../../src/merge/plan.js';
import type { ComputeDtype } from '../../src/native/addon.js';
import { DTYPES, Rng, SIZE, compare, randomTensor, type RefResult, type RefTensor } from './reference.js';
import { inputsFor, type Inputs, type Pattern } from './cases.js';
import {
  bandMask, dareKey, dellaMask, l1Factor, refGta, refKarcher, refModelStock, refMultislerp, refNearswap, refNuslerp, refSce, refSlerp,
} from './reference_methods.js';

const TENSOR = 'model.layers.3.self_attn.o_proj.weight';
const SEED = 99;

type P = Record<string, number | boolean>;

/** A one-tensor plan with the descriptor's defaults filled in. */
function planFor(method: string, shape: number[], global: P, perModel: P[], dtype: ComputeDtype): TensorPlan {
  const d = methodDescriptor(method);
  const defaults = (specs: typeof d.global) => Object.fromEntries(Object.entries(specs).filter(([, s]) => s.default !== undefined).map(([k, s]) => [k, s.default!]));
  const modelParams = perModel.map((p) => ({ ...defaults(d.perModel), ...p }));
  return {
    name: TENSOR, shape, numel: shape.reduce((a, b) => a * b, 1), kind: 'merge', outDtype: dtype,
    sources: [], copyFrom: { model: 0, name: TENSOR }, weights: modelParams.map((p) => (p.weight === undefined ? 1 : Number(p.weight))),
    modelParams, params: { ...defaults(d.global), ...global }, depth: 0, ioBytes: 0,
  };
}

const input = (t: RefTensor): TensorInput => ({ data: t.bytes, dtype: t.dtype });

async function runMethod(method: string, shape: number[], global: P, perModel: P[], inp: Inputs, k: number, withBase: boolean, dtype: ComputeDtype, device: 'cpu' | 'cuda' = 'cpu'): Promise<Uint8Array> {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(n * SIZE[dtype]);
  const t = planFor(method, shape, global, perModel, dtype);
  const inputs: MethodInputs = {
    base: withBase ? input(inp.base) : undefined, models: inp.models.slice(0, k).map(input), fishers: [], fisherScale: [], seed: SEED,
  };
  const req = await methodDescriptor(method).request(t, inputs, { kind: 'memory', data: out, dtype });
  await mergeTensor({ ...req, device, ...(device === 'cuda' ? { chunkElements: 1 << 20 } : {}) });
  return out;
}

interface UnitCase {
  name: string;
  method: string;
  k: number;
  base: boolean;
  global: P;
  perModel: P[];
  /** 2-D only (row/column modes); default: any shape. */
  matrix?: boolean;
  big?: boolean;
  /** Models far apart (the Fisher-like non-negative tensors of cases.ts) instead of base + noise. */
  spread?: boolean;
  reference(inp: Inputs, shape: number[]): RefResult;
}

const xs = (inp: Inputs, k: number) => inp.models.slice(0, k).map((m) => m.values);
const taus = (inp: Inputs, k: number) => xs(inp, k).map((x) => x.map((v, i) => Math.fround(v - inp.base.values[i]!)));
const last = (shape: number[]) => (shape.length >= 2 ? shape[shape.length - 1]! : shape.reduce((a, b) => a * b, 1));
const W3 = [0.6, 0.3, 0.8];
const W10 = [0.6, 0.3, 0.8, -0.2, 1.1, 0.5, 0.9, 0.4, 0.7, 0.25];
const keyOf = (q: number) => dareKey(BigInt(SEED), fnv1a64(TENSOR), q);

const CASES: UnitCase[] = [
  { name: 'slerp t=0.3', method: 'slerp', k: 1, base: true, global: { t: 0.3 }, perModel: [{}], big: true,
    reference: (inp) => refSlerp(0.3, inp.base.values, inp.models[0]!.values) },
  { name: 'nuslerp (flattened, task vectors)', method: 'nuslerp', k: 2, base: true, global: {}, perModel: [{ weight: 0.4 }, { weight: 1.1 }],
    reference: (inp) => refNuslerp([0.4, 1.1], [inp.models[0]!.values, inp.models[1]!.values], inp.base.values, 'whole', 1) },
  { name: 'nuslerp (rows, no base)', method: 'nuslerp', k: 2, base: false, global: { nuslerp_flatten: false }, perModel: [{ weight: 1 }, { weight: 3 }], matrix: true,
    reference: (inp, shape) => refNuslerp([1, 3], [inp.models[0]!.values, inp.models[1]!.values], undefined, 'rows', last(shape)) },
  { name: 'nuslerp (columns, task vectors)', method: 'nuslerp', k: 2, base: true, global: { nuslerp_flatten: false, nuslerp_row_wise: true }, perModel: [{ weight: 2 }, { weight: 1 }], matrix: true,
    reference: (inp, shape) => refNuslerp([2, 1], [inp.models[0]!.values, inp.models[1]!.values], inp.base.values, 'cols', last(shape)) },
  { name: 'multislerp (task vectors)', method: 'multislerp', k: 3, base: true, global: {}, perModel: W3.map((weight) => ({ weight })),
    reference: (inp) => refMultislerp(W3, xs(inp, 3), inp.base.values) },
  { name: 'multislerp (weights, no base)', method: 'multislerp', k: 3, base: false, global: { normalize_weights: false }, perModel: W3.map((weight) => ({ weight })),
    reference: (inp) => refMultislerp(W3, xs(inp, 3), undefined, false) },
  { name: 'karcher', method: 'karcher', k: 3, base: false, global: {}, perModel: [{}, {}, {}],
    reference: (inp) => refKarcher(xs(inp, 3)) },
  { name: 'karcher (spread inputs: several iterations)', method: 'karcher', k: 3, base: false, global: { max_iter: 20, tol: 1e-9 }, perModel: [{}, {}, {}], spread: true,
    reference: (inp) => refKarcher(xs(inp, 3), 20, 1e-9) },
  { name: 'model_stock', method: 'model_stock', k: 3, base: true, global: {}, perModel: [{}, {}, {}], big: true,
    reference: (inp) => refModelStock(inp.base.values, xs(inp, 3), 'whole', 1) },
  { name: 'model_stock (filter_wise)', method: 'model_stock', k: 3, base: true, global: { filter_wise: true }, perModel: [{}, {}, {}], matrix: true,
    reference: (inp, shape) => refModelStock(inp.base.values, xs(inp, 3), 'rows', last(shape)) },
  { name: 'task_arithmetic with lambda', method: 'task_arithmetic', k: 3, base: true, global: { lambda: 0.7, normalize: true }, perModel: W3.map((weight) => ({ weight })),
    reference: (inp) => refGta(inp.base.values, xs(inp, 3), [1, 1, 1].map(() => new Uint8Array(inp.n).fill(1)), [1, 1, 1], W3, false, true, Math.fround(0.7)) },
  { name: 'ties, per-model densities, L1 rescale', method: 'ties', k: 3, base: true, global: { rescale: true }, perModel: [{ weight: 1, density: 0.2 }, { weight: 0.5, density: 0.7 }, { weight: 0.8, density: 1 }],
    reference: (inp) => {
      const ts = taus(inp, 3);
      const keeps = ts.map((t, q) => bandMask(t, [0.2, 0.7, 1].map((d) => (d >= 1 ? inp.n : Math.round(d * inp.n)))[q]!, 0));
      return refGta(inp.base.values, xs(inp, 3), keeps, ts.map((t, q) => l1Factor(t, keeps[q]!)), [1, 0.5, 0.8], true, true, 1);
    } },
  { name: 'dare_ties, per-model densities (normalize false: mergekit default)', method: 'dare_ties', k: 3, base: true, global: {}, perModel: [{ weight: 1, density: 0.3 }, { weight: 0.5, density: 0.9 }, { weight: 0.8, density: 0.5 }],
    reference: (inp) => {
      const ds = [0.3, 0.9, 0.5];
      const keeps = ds.map((d, q) => Uint8Array.from({ length: inp.n }, (_, i) => (u24Keep(keyOf(q), i, d) ? 1 : 0)));
      return refGta(inp.base.values, xs(inp, 3), keeps, ds.map((d) => Math.fround(1 / d)), [1, 0.5, 0.8], true, false, 1);
    } },
  { name: 'breadcrumbs', method: 'breadcrumbs', k: 3, base: true, global: {}, perModel: [{ weight: 1, density: 0.5, gamma: 0.1 }, { weight: 0.5, density: 0.95, gamma: 0.2 }, { weight: 0.8, density: 0.3 }],
    reference: (inp) => {
      const ts = taus(inp, 3);
      const keeps = ts.map((t, q) => {
        const [d, g] = [[0.5, 0.1], [0.95, 0.2], [0.3, 0.01]][q]!;
        const n = inp.n;
        const target = Math.floor(d! * n);
        let top = Math.floor(g! * n);
        let bottom = n - target - top;
        if (bottom < 0) { top += bottom; bottom = 0; }
        return bandMask(t, n - top - bottom, top);
      });
      return refGta(inp.base.values, xs(inp, 3), keeps, [1, 1, 1], [1, 0.5, 0.8], false, false, 1);
    } },
  { name: 'breadcrumbs_ties with lambda', method: 'breadcrumbs_ties', k: 3, base: true, global: { lambda: 1.5, normalize: true }, perModel: W3.map((weight) => ({ weight, density: 0.6, gamma: 0.05 })), big: true,
    reference: (inp) => {
      const n = inp.n;
      const target = Math.floor(0.6 * n);
      const top = Math.floor(0.05 * n);
      const keeps = taus(inp, 3).map((t) => bandMask(t, target, top));
      return refGta(inp.base.values, xs(inp, 3), keeps, [1, 1, 1], W3, true, true, 1.5);
    } },
  { name: 'della', method: 'della', k: 3, base: true, global: {}, perModel: [{ weight: 1, density: 0.5, epsilon: 0.2 }, { weight: 0.5, density: 0.7 }, { weight: 0.8, density: 1 }], matrix: true,
    reference: (inp, shape) => {
      const ts = taus(inp, 3);
      const keeps = ts.map((t, q) => dellaMask(t, last(shape), [0.5, 0.7, 1][q]!, [0.2, 0.15, 0.15][q]!, keyOf(q)));
      return refGta(inp.base.values, xs(inp, 3), keeps, ts.map((t, q) => l1Factor(t, keeps[q]!)), [1, 0.5, 0.8], true, true, 1);
    } },
  { name: 'della_linear (1-D rows)', method: 'della_linear', k: 3, base: true, global: {}, perModel: W3.map((weight) => ({ weight, density: 0.4, epsilon: 0.1 })), big: true,
    reference: (inp, shape) => {
      const ts = taus(inp, 3);
      const keeps = ts.map((t, q) => dellaMask(t, last(shape), 0.4, 0.1, keyOf(q)));
      return refGta(inp.base.values, xs(inp, 3), keeps, ts.map((t, q) => l1Factor(t, keeps[q]!)), W3, false, false, 1);
    } },
  // more than 8 models: the model-outer loops of gta_tile (1..8 go through the fused loop)
  { name: 'ties, 10 models', method: 'ties', k: 10, base: true, global: {}, perModel: W10.map((weight, q) => ({ weight, density: [0.2, 0.7, 1][q % 3]! })),
    reference: (inp) => {
      const ts = taus(inp, 10);
      const keeps = ts.map((t, q) => bandMask(t, [0.2, 0.7, 1].map((d) => (d >= 1 ? inp.n : Math.round(d * inp.n)))[q % 3]!, 0));
      return refGta(inp.base.values, xs(inp, 10), keeps, ts.map(() => 1), W10, true, true, 1);
    } },
  { name: 'della_linear, 10 models', method: 'della_linear', k: 10, base: true, global: {}, perModel: W10.map((weight) => ({ weight, density: 0.4, epsilon: 0.1 })),
    reference: (inp, shape) => {
      const ts = taus(inp, 10);
      const keeps = ts.map((t, q) => dellaMask(t, last(shape), 0.4, 0.1, keyOf(q)));
      return refGta(inp.base.values, xs(inp, 10), keeps, ts.map((t, q) => l1Factor(t, keeps[q]!)), W10, false, false, 1);
    } },
  { name: 'sce (select_topk 0.4)', method: 'sce', k: 3, base: true, global: { select_topk: 0.4 }, perModel: [{}, {}, {}], big: true,
    reference: (inp) => refSce(inp.base.values, xs(inp, 3), 0.4) },
  { name: 'sce (no selection)', method: 'sce', k: 3, base: true, global: {}, perModel: [{}, {}, {}],
    reference: (inp) => refSce(inp.base.values, xs(inp, 3), 1) },
  // more than 8 models: the model-outer loops of sce_tile (1..8 go through the fused loop)
  { name: 'sce, 10 models (select_topk 0.4)', method: 'sce', k: 10, base: true, global: { select_topk: 0.4 }, perModel: W10.map(() => ({})),
    reference: (inp) => refSce(inp.base.values, xs(inp, 10), 0.4) },
  { name: 'nearswap t=0.01', method: 'nearswap', k: 1, base: true, global: { t: 0.01 }, perModel: [{}],
    reference: (inp) => refNearswap(Math.fround(0.01), inp.base.values, inp.models[0]!.values) },
  { name: 'passthrough with scale', method: 'passthrough', k: 1, base: false, global: {}, perModel: [{ scale: 0.5 }],
    reference: (inp) => ({ value: inp.models[0]!.values.map((v) => 0.5 * v), mag: inp.models[0]!.values.map((v) => Math.abs(v)) }) },
];

function u24Keep(key: bigint, i: number, density: number): boolean {
  const thr = Math.ceil((1 - density) * 16777216);
  return u24(key, i) >= thr;
}
import { u24 } from './reference_methods.js';

const SHAPES: number[][] = [[1], [7], [4097], [33, 129]];
const BIG = [3 * 1024 * 1024 + 5];

for (const c of CASES) {
  describe(`method ${c.name}`, () => {
    const shapes = [...SHAPES.filter((s) => !c.matrix || s.length === 2), ...(c.matrix ? [[1, 1], [7, 1]] : []), ...(c.big ? [BIG] : [])];
    for (const shape of shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      const patterns: Pattern[] = n > 1 << 20 ? ['mixed'] : ['F32', 'F16', 'BF16', 'mixed'];
      for (const p of patterns) {
        test(`[${shape.join('×')}] inputs ${p} -> F32/F16/BF16`, async () => {
          const raw = inputsFor(n, p);
          const own = c.spread ? { ...raw, models: raw.fishers } : raw;
          // more models than the inputs hold: the inputs again, in turn
          const inp = c.k > own.models.length ? { ...own, models: Array.from({ length: c.k }, (_, q) => own.models[q % own.models.length]!) } : own;
          const ref = c.reference(inp, shape);
          for (const dtype of DTYPES) {
            const out = await runMethod(c.method, shape, c.global, c.perModel, inp, c.k, c.base, dtype);
            const { bad, badCount, skipped } = compare(out, dtype, ref);
            assert.equal(badCount, 0, `${c.name} [${shape}] ${p} -> ${dtype}: ${badCount} of ${n} elements off, first: ${JSON.stringify(bad)}`);
            // BF16 task vectors take few distinct values, so exact cancellations in the sign election are more frequent
            assert.ok(skipped <= Math.max(1, n * 3e-3), `too many ambiguous sign elections: ${skipped}`);
          }
        });
      }
    }
  });
}

test('slerp falls back to lerp for colinear tensors, and interpolates gradients of t', async () => {
  const inp = inputsFor(4097, 'F32');
  const twice = { ...inp, models: [{ ...inp.base, values: inp.base.values.map((v) => 2 * v), bytes: new Uint8Array(new Float32Array(inp.base.values.map((v) => 2 * v)).buffer), dtype: 'F32' as const }] };
  const out = await runMethod('slerp', [4097], { t: 0.25 }, [{}], twice, 1, true, 'F32');
  const r = compare(out, 'F32', { value: inp.base.values.map((v) => 1.25 * v), mag: inp.base.values.map((v) => 3 * Math.abs(v)) });
  assert.equal(r.badCount, 0, JSON.stringify(r.bad));
});

/** DELLA merged whole and in blocks of rows (a mask over its budget) on `device`: the same bytes. */
async function dellaBlocksMatchWhole(device: 'cpu' | 'cuda'): Promise<void> {
  // 300 rows of 4099: the 3 models' mask is 3 × 153713 bytes; a 20000-byte budget
  // makes blocks of 8·⌊20000 / (3·4099/8) / 8⌋ = 8 rows (the last one shorter)
  const shape = [300, 4099];
  const n = shape[0]! * shape[1]!;
  const inp = inputsFor(n, 'mixed');
  for (const [name, global] of [['della', {}], ['della_linear', { rescale: false }]] as const) {
    const t = planFor(name, shape, global, W3.map((weight) => ({ weight, density: 0.4, epsilon: 0.1 })), 'F32');
    const inputs: MethodInputs = { base: input(inp.base), models: inp.models.slice(0, 3).map(input), fishers: [], fisherScale: [], seed: SEED };
    const whole = new Uint8Array(n * 4);
    const blocks = new Uint8Array(n * 4);
    const req = await methodDescriptor(name).request(t, inputs, { kind: 'memory', data: whole, dtype: 'F32' });
    await mergeTensor({ ...req, device });
    const reqB = await methodDescriptor(name).request(t, inputs, { kind: 'memory', data: blocks, dtype: 'F32' });
    await mergeTensor({ ...reqB, device, maskBudgetBytes: 20000 } as typeof reqB);
    assert.ok(Buffer.from(whole).equals(Buffer.from(blocks)), `${name} on ${device}: blockwise output differs from the whole-tensor one`);
    assert.ok(whole.some((b) => b !== 0));
  }
}

test('della merged in blocks of rows (mask over its budget) gives the whole-tensor output, bit for bit', () => dellaBlocksMatchWhole('cpu'));

// DELLA's keep decision (native/kernels/della_keep.cc) settles most elements by the
// rank range of their bucket, counts the exact rank of the few it cannot, and sorts
// rows where too many are left; each row kind below takes another of those paths,
// and all must give the reference's sorted ranks.
test('della: rows of distinct, tied, equal and zero |τ|, ε = 0 and rows of 9 all match the sorted-rank reference', async () => {
  const rng = new Rng(5);
  const kinds: { name: string; shape: number[]; eps: number; tau: (i: number) => number }[] = [
    { name: 'distinct |τ| (bucket ranges, a few exact ranks)', shape: [5, 4099], eps: 0.1, tau: () => 0.01 * rng.normal() },
    { name: 'five values, ε 0.3 (crowded buckets: the sort)', shape: [4, 3000], eps: 0.3, tau: () => 0.01 * (Math.floor(rng.next() * 5) - 2) },
    { name: 'one value', shape: [3, 2048], eps: 0.2, tau: () => 0.01 },
    { name: 'all zero', shape: [2, 1500], eps: 0.2, tau: () => 0 },
    { name: 'ε = 0', shape: [3, 1000], eps: 0, tau: () => 0.01 * rng.normal() },
    { name: 'rows of 9 (bytes shared between rows)', shape: [37, 9], eps: 0.25, tau: () => 0.01 * rng.normal() },
  ];
  for (const kind of kinds) {
    const n = kind.shape[0]! * kind.shape[1]!;
    const base = randomTensor(rng, n, 'F32', () => 0.05 * rng.normal());
    const models = [0, 1].map(() => randomTensor(rng, n, 'F32', (i) => base.values[i]! + kind.tau(i)));
    const inp: Inputs = { n, base, models, fishers: [], w: base, s: base };
    const ts = taus(inp, 2);
    const keeps = ts.map((t, q) => dellaMask(t, last(kind.shape), 0.5, kind.eps, keyOf(q)));
    const ref = refGta(base.values, xs(inp, 2), keeps, ts.map((t, q) => l1Factor(t, keeps[q]!)), [1, 0.5], true, true, 1);
    const out = await runMethod('della', kind.shape, {}, [{ weight: 1, density: 0.5, epsilon: kind.eps }, { weight: 0.5, density: 0.5, epsilon: kind.eps }], inp, 2, true, 'F32');
    const { bad, badCount } = compare(out, 'F32', ref);
    assert.equal(badCount, 0, `${kind.name}: ${badCount} of ${n} elements off, first: ${JSON.stringify(bad)}`);
  }
});

test('sce and della: the same bytes for 1, 2 and 3 threads', async () => {
  // SCE's one-pass cut-off and weights (n > 64 Ki: the sampled path) add their
  // per-model sums per fixed block, and DELLA ranks and sums per row: neither may
  // depend on how the elements are shared among threads.
  const cases: { name: string; shape: number[]; global: P; perModel: P[] }[] = [
    { name: 'sce', shape: [(1 << 20) + 77], global: { select_topk: 0.3 }, perModel: [{}, {}, {}] },
    { name: 'della', shape: [300, 4099], global: {}, perModel: W3.map((weight) => ({ weight, density: 0.4, epsilon: 0.1 })) },
  ];
  for (const c of cases) {
    const n = c.shape.reduce((a, b) => a * b, 1);
    const inp = inputsFor(n, 'mixed');
    const t = planFor(c.name, c.shape, c.global, c.perModel, 'F32');
    const inputs: MethodInputs = { base: input(inp.base), models: inp.models.slice(0, 3).map(input), fishers: [], fisherScale: [], seed: SEED };
    const outs: Uint8Array[] = [];
    for (const threads of [1, 2, 3]) {
      const out = new Uint8Array(n * 4);
      const req = await methodDescriptor(c.name).request(t, inputs, { kind: 'memory', data: out, dtype: 'F32' });
      await mergeTensor({ ...req, threads });
      outs.push(out);
    }
    assert.ok(outs[0]!.some((b) => b !== 0), `${c.name}: empty output`);
    for (const [i, threads] of [[1, 2], [2, 3]] as const) {
      assert.ok(Buffer.from(outs[0]!).equals(Buffer.from(outs[i]!)), `${c.name}: ${threads} threads give other bytes than 1`);
    }
  }
});

test('sce: the variance cut-off is exact when the selection\'s sample misleads', async () => {
  // The models differ from the base only in one run of 30000 elements, 100× more
  // in 4000 of them around 2.008 Mi, where (for this n) one of the 48 sampled
  // blocks of the one-pass selection lies: the sample sees only the large
  // variances, its bracket misses the true cut-off, and the two-pass radix
  // selection finishes (native/kernels/merge.cc, kth_select). Whatever the
  // sampling, the output must equal the reference.
  const n = 3 * 1024 * 1024 + 5;
  const rng = new Rng(11);
  const base = randomTensor(rng, n, 'F32', () => 0.05 * rng.normal());
  const models = [0, 1, 2].map(() => randomTensor(rng, n, 'BF16', (i) => base.values[i]! + (i >= 2_000_000 && i < 2_030_000 ? (i >= 2_006_000 && i < 2_010_000 ? 1 : 0.01) * rng.normal() : 0)));
  const inp: Inputs = { n, base, models, fishers: [], w: base, s: base };
  const ref = refSce(base.values, models.map((m) => m.values), 0.4);
  for (const dtype of DTYPES) {
    const out = await runMethod('sce', [n], { select_topk: 0.4 }, [{}, {}, {}], inp, 3, true, dtype);
    const { bad, badCount } = compare(out, dtype, ref);
    assert.equal(badCount, 0, `sce -> ${dtype}: ${badCount} of ${n} elements off, first: ${JSON.stringify(bad)}`);
  }
});

const cuda = loadAddon().addon.buildInfo().cudaDevices > 0 ? false : 'no CUDA device: the element kernels\' CUDA twins are checked where one answers';
test('della merged in blocks of rows on CUDA gives its whole-tensor output, bit for bit', { skip: cuda }, () => dellaBlocksMatchWhole('cuda'));

describe('CUDA twins of the element methods', () => {
  for (const c of CASES) {
    const shape = c.matrix ? [33, 129] : c.big ? BIG : [4097];
    test(`${c.name} [${shape.join('×')}]: CUDA matches the reference`, { skip: cuda }, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const raw = inputsFor(n, 'mixed');
      const inp = c.spread ? { ...raw, models: raw.fishers } : raw;
      const ref = c.reference(inp, shape);
      for (const dtype of DTYPES) {
        const out = await runMethod(c.method, shape, c.global, c.perModel, inp, c.k, c.base, dtype, 'cuda');
        const { bad, badCount } = compare(out, dtype, ref);
        assert.equal(badCount, 0, `${c.name} -> ${dtype} on CUDA: ${badCount} of ${n} off, first: ${JSON.stringify(bad)}`);
      }
    });
  }
});
