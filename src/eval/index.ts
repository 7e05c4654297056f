export { loadTask, tokenizeTask, type Task, type TaskExample, type TokenizedTask, type TokenizedTaskExample } from './task.js';
export { evaluateTask, evaluateTasks, argmax, choiceScores, SCORINGS, type Scoring, type TaskResult, type EvalOptions } from './accuracy.js';
export { encodePair, type TokenizeOptions } from './task.js';
export { ChatTemplate, type ChatMessage } from './chat_template.js';
export { DEFAULT_DELIMITER, effectiveDelimiter, tokenizeOptions, type PromptOptions } from './prompt_options.js';
