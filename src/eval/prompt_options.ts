/**
 * How a task file becomes prompts, the same in `dfmerge eval`, `fisher` and
 * `optimize` (one definition of the flags, their help and their defaults): the
 * target delimiter between prompt and choice, left truncation, the chat template,
 * and (eval, optimize) the scoring that ranks the choices.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import type { ModelTokenizer } from '../model/tokenizer.js';
import { SCORINGS, type Scoring } from './accuracy.js';
import { ChatTemplate } from './chat_template.js';
import type { TokenizeOptions } from './task.js';

/** What the prompt flags say (serialisable: a DF-Merge journal records it). */
export interface PromptOptions {
  /** Text between prompt and choice; default ' ' (lm-eval's target_delimiter), '' with a chat template. */
  delimiter?: string;
  /** Cut over-long prompts from the left as lm-eval does (default: refuse, naming file and line). */
  truncate?: boolean;
  /** Render each prompt as one user message through the model's chat template. */
  chatTemplate?: boolean;
}

/** lm-evaluation-harness's default target_delimiter for multiple choice. */
export const DEFAULT_DELIMITER = ' ';

/** The delimiter in effect: as given, else ' ' (lm-eval), or '' with a chat template (as lm-eval does then). */
export function effectiveDelimiter(o: { delimiter?: string | undefined; chatTemplate?: unknown }): string {
  return o.delimiter ?? (o.chatTemplate ? '' : DEFAULT_DELIMITER);
}

export const DELIMITER_HELP = 'text between prompt and choice (lm-eval\'s target_delimiter): default " " as lm-eval, "" with --chat-template; "" for tasks whose prompts and choices are meant to join directly';
export const TRUNCATE_HELP = 'cut over-long prompts from the left as lm-eval does (default: refuse them, naming file and line)';
export const CHAT_TEMPLATE_HELP = 'render each prompt as a user message through the model\'s chat template (as transformers apply_chat_template)';
export const SCORING_HELP = 'how choices are ranked: mean (per-token mean log-likelihood, DF-Merge\'s), sum (lm-eval acc), char-norm (lm-eval acc_norm), byte-norm (lm-eval acc_bytes)';

/** Adds --delimiter, --truncate and --chat-template to a command. */
export function addPromptFlags(cmd: Command): Command {
  return cmd
    .option('--delimiter <text>', DELIMITER_HELP)
    .option('--truncate', TRUNCATE_HELP)
    .option('--chat-template', CHAT_TEMPLATE_HELP);
}

/** The prompt options from parsed flags (commander's camelCase names). */
export function promptOptionsFromFlags(f: { delimiter?: string; truncate?: boolean; chatTemplate?: boolean }): PromptOptions {
  return {
    ...(f.delimiter !== undefined ? { delimiter: f.delimiter } : {}),
    ...(f.truncate ? { truncate: true } : {}),
    ...(f.chatTemplate ? { chatTemplate: true } : {}),
  };
}

/** tokenizeTask's options for these prompt options and a model's tokenizer (loads the chat template when asked). */
export function tokenizeOptions(o: PromptOptions | undefined, tokenizer: ModelTokenizer): TokenizeOptions {
  const chatTemplate = o?.chatTemplate ? ChatTemplate.load(tokenizer) : undefined;
  return {
    delimiter: effectiveDelimiter({ delimiter: o?.delimiter, chatTemplate }),
    ...(o?.truncate ? { truncate: true } : {}),
    ...(chatTemplate ? { chatTemplate } : {}),
  };
}

export function parseScoring(s: string, flag = '--scoring'): Scoring {
  if (!(SCORINGS as readonly string[]).includes(s)) throw new UsageError(`${flag} must be one of ${SCORINGS.join(', ')}, got ${s}`);
  return s as Scoring;
}
