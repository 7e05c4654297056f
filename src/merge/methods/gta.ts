/**
 * mergekit's generalised task arithmetic family, on the native `gta` kernel
 * (native/kernels/merge_methods.h, gta_elem) and, where the result is bit-identical,
 * the dedicated task_arithmetic / dare kernels:
 *   τ_k = θ_k − θ_b, d_k = keep_k ⊙ τ_k · rs_k,
 *   θ = θ_b + λ · mix(d), mix = Σ w_k d_k (÷ Σ w_k with normalize) or, with sign
 *   consensus (TIES), the sum over the models agreeing with sign(Σ w_k d_k)
 *   (÷ their Σ w_k with normalize).
 * The methods differ in keep_k: all (task arithmetic), the top-density |τ| (TIES),
 * Bernoulli(density) (DARE), a band below the top γ (breadcrumbs), or Bernoulli
 * with probabilities rising with the |τ| rank in each row (DELLA).
 *
 * Numeric conventions (docs/design.md §7): TIES keeps round(density·n)
 * entries and every entry tied with the cut-off (mergekit: floor, ties broken
 * arbitrarily by argsort); breadcrumbs uses mergekit's floor counts, keeping ties at
 * the lower cut-off and dropping ties at the upper one; DARE's `rescale: true` is
 * the paper's 1/density (mergekit: the L1 ratio Σ|τ|/Σ|kept τ| per tensor, which
 * the other methods' `rescale: true` use).
 */
import type { MergeTensorRequest } from '../kernels.js';
import type { TensorPlan } from '../plan.js';
import { modelNumber, param, rangeCheck, refuse, requireBase, type MethodDescriptor, type MethodInputs, type ParamSpec } from './types.js';
import type { MergeOutput } from '../kernels.js';

function common(normalize: boolean, rescale: boolean): Record<string, ParamSpec> {
  return {
    int8_mask: { kind: 'boolean', default: false, help: 'mergekit\'s memory saving for the sign mask; the result is the same either way' },
    normalize: { kind: 'boolean', default: normalize, help: 'divide the mixed task vector by the (agreeing) Σ w_k' },
    rescale: { kind: 'boolean', default: rescale, help: 'rescale the kept entries (see the method)' },
    lambda: { kind: 'number', default: 1, help: 'λ: scales the mixed task vector' },
  };
}
const WEIGHT: ParamSpec = { kind: 'number', required: true, help: 'w_k' };
const DENSITY: ParamSpec = { kind: 'number', default: 1, help: 'fraction of τ_k kept', check: rangeCheck(0, 1) };

const perModel = (t: TensorPlan, name: string): number[] => t.modelParams.map((_, k) => modelNumber(t, k, name));
const same = (xs: readonly number[]): boolean => xs.every((x) => x === xs[0]);

type Gta = Omit<Extract<MergeTensorRequest, { method: 'gta' }>, 'method' | 'out' | 'base' | 'models' | 'weights' | 'tensor'>;
function gta(t: TensorPlan, inputs: MethodInputs, out: MergeOutput, opts: Gta): MergeTensorRequest {
  return {
    method: 'gta', tensor: t.name, out, base: requireBase(t, inputs), models: inputs.models, weights: t.weights,
    normalize: Boolean(param(t, 'normalize')), lambda: Number(param(t, 'lambda')), seed: inputs.seed, ...opts,
  };
}

export const taskArithmetic: MethodDescriptor = {
  name: 'task_arithmetic',
  aliases: ['task_arith'],
  formula: 'θ = θ_b + λ Σ w_k τ_k (normalize: ÷ Σ w_k)',
  reference: 'https://arxiv.org/abs/2212.04089',
  base: 'required',
  models: { min: 1 },
  global: common(false, false),
  perModel: { weight: WEIGHT },
  request: (t, inputs, out) => {
    if (param(t, 'lambda') === 1) {
      return { method: 'task_arithmetic', tensor: t.name, out, base: requireBase(t, inputs), models: inputs.models, weights: t.weights, normalize: Boolean(param(t, 'normalize')) };
    }
    return gta(t, inputs, out, {});
  },
};

/** TIES keeps round(d·n) entries per model (d ≥ 1: all). */
function tiesCounts(t: TensorPlan): number[] {
  return perModel(t, 'density').map((d) => (d >= 1 ? t.numel : Math.round(d * t.numel)));
}

export const ties: MethodDescriptor = {
  name: 'ties',
  formula: 'keep the top density of |τ_k|, elect sign(Σ w_k d_k), θ = θ_b + λ Σ_agree w_k d_k (÷ Σ_agree w_k)',
  reference: 'https://arxiv.org/abs/2306.01708',
  base: 'required',
  models: { min: 1 },
  global: common(true, false),
  perModel: { weight: WEIGHT, density: DENSITY },
  request: (t, inputs, out) => gta(t, inputs, out, {
    sparsify: 'band', keepCount: tiesCounts(t), consensus: true, rescale: param(t, 'rescale') ? 'l1' : 'none',
  }),
};

function dare(name: 'dare_linear' | 'dare_ties'): MethodDescriptor {
  const consensus = name === 'dare_ties';
  return {
    name,
    ...(name === 'dare_linear' ? { aliases: ['dare'] } : {}),
    formula: `drop each τ_k entry with probability 1 − density, rescale by 1/density, then ${consensus ? 'TIES sign election' : 'task arithmetic'}`,
    reference: 'https://arxiv.org/abs/2311.03099',
    base: 'required',
    models: { min: 1 },
    global: common(false, true),
    perModel: { weight: WEIGHT, density: { ...DENSITY, check: rangeCheck(0, 1, true) } },
    request: (t, inputs, out) => {
      const densities = perModel(t, 'density');
      const rescale = Boolean(param(t, 'rescale'));
      if (rescale && same(densities) && param(t, 'lambda') === 1) {
        return {
          method: name, tensor: t.name, out, base: requireBase(t, inputs), models: inputs.models, weights: t.weights,
          density: densities[0]!, seed: inputs.seed, normalize: Boolean(param(t, 'normalize')),
        };
      }
      return gta(t, inputs, out, { sparsify: 'random', densities, consensus, rescale: rescale ? 'inverse_density' : 'none' });
    },
  };
}
export const dareLinear = dare('dare_linear');
export const dareTies = dare('dare_ties');

/**
 * Breadcrumbs (Davari & Belilovsky 2023, as mergekit's magnitude_outliers): drop the
 * γ·n largest |τ| and keep the next density·n (counts floored; when density + γ > 1
 * fewer of the largest are dropped); density ≥ 1 keeps everything.
 */
function breadcrumbCounts(t: TensorPlan): { keep: number[]; drop: number[] } {
  const n = t.numel;
  const keep: number[] = [];
  const drop: number[] = [];
  t.modelParams.forEach((_, k) => {
    const d = modelNumber(t, k, 'density');
    if (d >= 1) {
      keep.push(n);
      drop.push(0);
      return;
    }
    const target = Math.floor(d * n);
    let top = Math.floor(modelNumber(t, k, 'gamma') * n);
    let bottom = n - target - top;
    if (bottom < 0) {
      top += bottom;
      bottom = 0;
    }
    keep.push(n - top - bottom);
    drop.push(top);
  });
  return { keep, drop };
}

function breadcrumbs(name: 'breadcrumbs' | 'breadcrumbs_ties'): MethodDescriptor {
  const consensus = name === 'breadcrumbs_ties';
  return {
    name,
    formula: `drop the top gamma and keep the next density of |τ_k|, then ${consensus ? 'TIES sign election' : 'task arithmetic'}`,
    reference: 'https://arxiv.org/abs/2312.06795',
    base: 'required',
    models: { min: 1 },
    global: common(false, false),
    perModel: { weight: WEIGHT, density: DENSITY, gamma: { kind: 'number', default: 0.01, help: 'fraction of the largest |τ_k| dropped', check: rangeCheck(0, 1) } },
    request: (t, inputs, out) => {
      const { keep, drop } = breadcrumbCounts(t);
      return gta(t, inputs, out, { sparsify: 'band', keepCount: keep, dropCount: drop, consensus, rescale: param(t, 'rescale') ? 'l1' : 'none' });
    },
  };
}
export const breadcrumbsLinear = breadcrumbs('breadcrumbs');
export const breadcrumbsTies = breadcrumbs('breadcrumbs_ties');

function della(name: 'della' | 'della_linear'): MethodDescriptor {
  const consensus = name === 'della';
  return {
    name,
    formula: `keep τ_k entries with probability density − ε + 2ε·rank/(C−1) by |τ| rank in each row, rescale (L1), then ${consensus ? 'TIES sign election' : 'task arithmetic'}`,
    reference: 'https://arxiv.org/abs/2406.11617',
    base: 'required',
    models: { min: 1 },
    global: common(consensus, true),
    perModel: {
      weight: WEIGHT,
      density: { ...DENSITY, check: rangeCheck(0, 1, true) },
      epsilon: { kind: 'number', default: 0.15, help: 'ε: spread of the keep probabilities (density ± ε must lie in (0, 1))', check: rangeCheck(0, 1) },
    },
    request: (t, inputs, out) => {
      if (t.shape.length > 2) refuse(t, `${name} ranks |τ| along rows of matrices; this tensor has ${t.shape.length} dimensions`);
      const densities = perModel(t, 'density');
      const epsilons = perModel(t, 'epsilon');
      densities.forEach((d, k) => {
        if (d < 1 && !(d - epsilons[k]! > 0 && d + epsilons[k]! < 1)) {
          refuse(t, `model ${k}: density ± epsilon must lie in (0, 1), got density ${d}, epsilon ${epsilons[k]}`);
        }
      });
      const rowLen = t.shape.length === 2 ? t.shape[1]! : Math.max(1, t.numel);
      return gta(t, inputs, out, { sparsify: 'mask', densities, epsilons, rowLen, consensus, rescale: param(t, 'rescale') ? 'l1' : 'none' });
    },
  };
}
export const dellaTies = della('della');
export const dellaLinear = della('della_linear');
