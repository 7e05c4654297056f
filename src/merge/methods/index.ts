/** The registry of merge methods, each one descriptor (./types.ts): config name -> descriptor. */
import { fisher } from './fisher.js';
import { breadcrumbsLinear, breadcrumbsTies, dareLinear, dareTies, dellaLinear, dellaTies, taskArithmetic, ties } from './gta.js';
import { karcher } from './karcher.js';
import { linear } from './linear.js';
import { modelStock } from './model_stock.js';
import { nearswap } from './nearswap.js';
import { passthrough } from './passthrough.js';
import { sce } from './sce.js';
import { multislerp, nuslerp, slerp } from './slerp.js';
import type { MethodDescriptor } from './types.js';

const ALL: readonly MethodDescriptor[] = [
  linear, taskArithmetic, ties, dareLinear, dareTies, breadcrumbsLinear, breadcrumbsTies, dellaTies, dellaLinear,
  sce, slerp, nuslerp, multislerp, karcher, modelStock, nearswap, passthrough, fisher,
];

export const METHOD_REGISTRY: ReadonlyMap<string, MethodDescriptor> = new Map(ALL.map((m) => [m.name, m]));

const ALIASES: ReadonlyMap<string, string> = new Map(ALL.flatMap((m) => (m.aliases ?? []).map((a) => [a, m.name] as [string, string])));

/** The descriptor for a method name as users type it (case, dashes for underscores, aliases); undefined if unknown. */
export function findMethod(name: string): MethodDescriptor | undefined {
  const key = name.toLowerCase().replace(/-/g, '_');
  return METHOD_REGISTRY.get(ALIASES.get(key) ?? key);
}

export function methodDescriptor(name: string): MethodDescriptor {
  const m = findMethod(name);
  if (!m) throw new Error(`internal: unknown method ${name}`);
  return m;
}

export type { MethodDescriptor, MethodInputs, ParamSpec } from './types.js';
