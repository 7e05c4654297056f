export { loadTask, tokenizeTask, type Task, type TaskExample, type TokenizedTask, type TokenizedTaskExample } from './task.js';
export { evaluateTask, evaluateTasks, argmax, type TaskResult, type EvalOptions } from './accuracy.js';
