/** The registry of merge methods: config name -> request builder. */
import type { MethodName } from '../config.js';
import { dareLinear, dareTies } from './dare.js';
import { fisher } from './fisher.js';
import { linear } from './linear.js';
import { taskArithmetic } from './task_arithmetic.js';
import { ties } from './ties.js';
import type { MethodRequestBuilder } from './types.js';

export const METHOD_BUILDERS: Readonly<Record<MethodName, MethodRequestBuilder>> = {
  linear,
  task_arithmetic: taskArithmetic,
  ties,
  dare_linear: dareLinear,
  dare_ties: dareTies,
  fisher,
};

export type { MethodInputs, MethodRequestBuilder } from './types.js';
