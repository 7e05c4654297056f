/**
 * The configuration each benchmarked merge method runs with, over a base and M
 * models (the shapes mergekit's example configs use: weights summing to 1,
 * density 0.5 where a method trims, SLERP and NearSwap between the base and the
 * first model). One table, shared by dfmerge's run and mergekit's YAML.
 */
export interface BenchMethod {
  /** Models merged besides the base (the method's limits applied to M). */
  models: (m: number) => number;
  /** Whether the base takes part as `base_model`. */
  base: boolean;
  global: Record<string, number | boolean>;
  perModel: (m: number) => Record<string, number | boolean>;
}

const weighted = (m: number) => ({ weight: 1 / m });
const trimmed = (m: number) => ({ weight: 1 / m, density: 0.5 });
const all = (m: number) => m;

export const BENCH_METHODS: ReadonlyMap<string, BenchMethod> = new Map<string, BenchMethod>([
  ['linear', { models: all, base: false, global: {}, perModel: weighted }],
  ['task_arithmetic', { models: all, base: true, global: {}, perModel: weighted }],
  ['ties', { models: all, base: true, global: {}, perModel: trimmed }],
  ['dare_linear', { models: all, base: true, global: {}, perModel: trimmed }],
  ['dare_ties', { models: all, base: true, global: {}, perModel: trimmed }],
  ['breadcrumbs', { models: all, base: true, global: {}, perModel: (m) => ({ weight: 1 / m, density: 0.9, gamma: 0.01 }) }],
  ['breadcrumbs_ties', { models: all, base: true, global: {}, perModel: (m) => ({ weight: 1 / m, density: 0.9, gamma: 0.01 }) }],
  ['della', { models: all, base: true, global: {}, perModel: (m) => ({ weight: 1 / m, density: 0.5, epsilon: 0.1 }) }],
  ['della_linear', { models: all, base: true, global: {}, perModel: (m) => ({ weight: 1 / m, density: 0.5, epsilon: 0.1 }) }],
  ['sce', { models: all, base: true, global: { select_topk: 0.5 }, perModel: () => ({}) }],
  ['slerp', { models: () => 1, base: true, global: { t: 0.5 }, perModel: () => ({}) }],
  ['nuslerp', { models: () => 2, base: false, global: {}, perModel: () => ({ weight: 0.5 }) }],
  ['multislerp', { models: all, base: false, global: {}, perModel: weighted }],
  ['karcher', { models: all, base: false, global: {}, perModel: () => ({}) }],
  ['model_stock', { models: (m) => Math.max(2, m), base: true, global: {}, perModel: () => ({}) }],
  ['nearswap', { models: () => 1, base: true, global: { t: 0.001 }, perModel: () => ({}) }],
  ['passthrough', { models: () => 1, base: false, global: {}, perModel: () => ({}) }],
]);
