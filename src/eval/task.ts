/**
 * Multiple-choice tasks (docs/design.md §2): JSONL, one example a line,
 * {"prompt": str, "choices": [str, ...], "answer": int}; a task's name is its
 * file's stem. Every bad line is a TaskError naming the file and the line.
 */
import { InputFileError, readTextFile } from '../io/read_file.js';
import { basename, extname } from 'node:path';
import { TaskError } from '../errors.js';
import type { ModelTokenizer } from '../model/tokenizer.js';
import type { ChatTemplate } from './chat_template.js';
import { effectiveDelimiter } from './prompt_options.js';
import type { TokenizedExample } from '../model/runtime.js';

export interface TaskExample {
  prompt: string;
  choices: string[];
  answer: number;
  /** 1-based line in the file. */
  line: number;
}

export interface Task {
  name: string;
  file: string;
  examples: TaskExample[];
}

export interface TokenizedTaskExample extends TokenizedExample {
  line: number;
  /** The choices as written (their characters and UTF-8 bytes normalise lm-eval's acc_norm / acc_bytes). */
  choiceTexts?: string[];
  /**
   * Left-truncated prompts (TokenizeOptions.truncate) differ per choice, as in
   * lm-eval: prompt is then the one that fits the longest choice, and this
   * holds each choice's own.
   */
  choicePrompts?: Int32Array[];
}

export interface TokenizedTask {
  name: string;
  file: string;
  examples: TokenizedTaskExample[];
}

/** Reads and validates a JSONL task file. */
export function loadTask(file: string): Task {
  let text: string;
  try {
    text = readTextFile(file, 'task file');  // a regular file only (a FIFO would block); a UTF-8 BOM is dropped
  } catch (e) {
    throw new TaskError(file, undefined, e instanceof InputFileError ? e.code : 'NotFound', e instanceof InputFileError ? e.message.slice(file.length + 2) : `cannot read (${String(e)})`);
  }
  const examples: TaskExample[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new TaskError(file, line, 'MalformedLine', `not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new TaskError(file, line, 'MalformedLine', 'expected an object {"prompt", "choices", "answer"}');
    }
    const o = v as Record<string, unknown>;
    if (typeof o.prompt !== 'string') throw new TaskError(file, line, 'MalformedLine', '"prompt" must be a string');
    if (!Array.isArray(o.choices) || o.choices.length < 1) {
      throw new TaskError(file, line, 'MalformedLine', '"choices" must be a non-empty array of strings');
    }
    o.choices.forEach((c, j) => {
      if (typeof c !== 'string') throw new TaskError(file, line, 'MalformedLine', `choice ${j} is not a string`);
      if (c.trim() === '') throw new TaskError(file, line, 'EmptyChoice', `choice ${j} is empty`);
    });
    const a = o.answer;
    if (typeof a !== 'number' || !Number.isInteger(a)) throw new TaskError(file, line, 'MalformedLine', '"answer" must be an integer');
    if (a < 0 || a >= o.choices.length) {
      throw new TaskError(file, line, 'AnswerOutOfRange', `answer ${a} is out of range for ${o.choices.length} choices (0-based)`);
    }
    examples.push({ prompt: o.prompt, choices: o.choices as string[], answer: a, line });
  });
  if (examples.length === 0) throw new TaskError(file, undefined, 'EmptyTask', 'no examples');
  return { name: basename(file, extname(file)), file, examples };
}

export interface TokenizeOptions {
  /**
   * Text put between the prompt and each choice (lm-eval's target_delimiter):
   * ' ' by default, '' with a chat template (as lm-eval does then).
   */
  delimiter?: string;
  /**
   * Over-long prompts: cut from the left as lm-eval does (its
   * (context + continuation)[-(max_length + 1):]), per choice. Default: refused
   * with a TaskError naming the file and line.
   */
  truncate?: boolean;
  /** Render each prompt through the model's chat template first (one user message). */
  chatTemplate?: ChatTemplate;
}

/**
 * Lines whose prompt and some choice meet with no whitespace between them
 * (lm-eval warns likewise): with the delimiter '' they are scored as one run
 * of text, e.g. "The sky is" + "blue" as "The sky isblue".
 */
export function linesJoinedWithoutSpace(task: Task): number[] {
  const endsInSpace = (t: string) => t !== t.replace(TRAILING_SPACE, '');
  return task.examples.filter((e) => e.prompt !== '' && !endsInSpace(e.prompt) && e.choices.some((c) => !PY_SPACE.test(c.charAt(0)))).map((e) => e.line);
}

// Python's str.isspace() characters (what lm-eval's context.rstrip() removes).
const PY_SPACE_CLASS = '[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const PY_SPACE = new RegExp(`^${PY_SPACE_CLASS}$`, 'u');
const TRAILING_SPACE = new RegExp(`${PY_SPACE_CLASS}+$`, 'u');

/**
 * Splits context and continuation into tokens as lm-evaluation-harness's
 * loglikelihood requests do (LM._encode_pair): trailing whitespace of the
 * context moves to the continuation; the continuation's tokens are those of
 * encode(context + continuation) after the first len(encode(context)); both
 * encoded with the tokenizer's special tokens unless the context already
 * starts with the BOS text. An empty context becomes the prefix token (BOS,
 * else EOS) before the continuation encoded without special tokens.
 */
export function encodePair(tok: ModelTokenizer, context: string, continuation: string): { context: Int32Array; continuation: Int32Array } {
  const trimmed = context.replace(TRAILING_SPACE, '');
  if (trimmed.length < context.length) {
    continuation = context.slice(trimmed.length) + continuation;
    context = trimmed;
  }
  const prefix = tok.prefix;
  if (context === '') {
    const cont = tok.encode(continuation, false);
    if (prefix === undefined) return { context: new Int32Array(0), continuation: cont };
    return prefix.id !== cont[0] ? { context: Int32Array.of(prefix.id), continuation: cont } : { context: cont.slice(0, 1), continuation: cont.slice(1) };
  }
  const special = !(prefix !== undefined && context.startsWith(prefix.text));
  const whole = tok.encode(context + continuation, special);
  const ctx = tok.encode(context, special);
  return { context: ctx, continuation: whole.slice(ctx.length) };
}

/**
 * Tokenizes a task, each choice as lm-eval's continuation delimiter + choice
 * (encodePair); refuses a choice with no tokens and, unless `truncate`, a
 * prompt + choice longer than the context.
 */
export function tokenizeTask(task: Task, tok: ModelTokenizer, maxPositions: number, options: TokenizeOptions = {}): TokenizedTask {
  const delimiter = effectiveDelimiter(options);
  const examples = task.examples.map((e): TokenizedTaskExample => {
    const context = options.chatTemplate ? options.chatTemplate.renderPrompt(e.prompt) : e.prompt;
    const pairs = e.choices.map((c) => encodePair(tok, context, delimiter + c));
    const prompt = pairs[0]!.context;  // the same for every choice (only the context's trailing whitespace moves)
    if (prompt.length === 0) {
      throw new TaskError(task.file, e.line, 'EmptyPrompt', 'the prompt is empty and the tokenizer has no BOS or EOS token to condition on');
    }
    const choices = pairs.map((p, j) => {
      if (p.continuation.length === 0) throw new TaskError(task.file, e.line, 'EmptyChoice', `choice ${j} encodes to no tokens`);
      return p.continuation;
    });
    const longest = Math.max(...choices.map((c) => c.length));
    const ex: TokenizedTaskExample = { prompt, choices, answer: e.answer, line: e.line, choiceTexts: e.choices };
    if (prompt.length + longest - 1 <= maxPositions) return ex;
    if (!options.truncate) {
      throw new TaskError(task.file, e.line, 'PromptTooLong',
        `prompt (${prompt.length} tokens) + longest choice (${longest}) exceeds the model's context of ${maxPositions} positions (--truncate cuts prompts from the left as lm-eval does)`);
    }
    if (longest > maxPositions) {
      throw new TaskError(task.file, e.line, 'ChoiceTooLong', `a choice of ${longest} tokens does not fit the model's context of ${maxPositions} positions even without its prompt`);
    }
    // lm-eval: the model sees (context ++ continuation)[-(max + 1):][:-1], per choice.
    const cut = (L: number) => prompt.slice(Math.max(0, prompt.length - (maxPositions + 1 - L)));
    ex.prompt = cut(longest);
    ex.choicePrompts = choices.map((c) => cut(c.length));
    return ex;
  });
  return { name: task.name, file: task.file, examples };
}
