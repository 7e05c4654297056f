/**
 * Multiple-choice tasks (DESIGN.md §2): JSONL, one example a line,
 * {"prompt": str, "choices": [str, ...], "answer": int}; a task's name is its
 * file's stem. Every bad line is a TaskError naming the file and the line.
 */
import { InputFileError, readTextFile } from '../io/read_file.js';
import { basename, extname } from 'node:path';
import { TaskError } from '../errors.js';
import type { ModelTokenizer } from '../model/tokenizer.js';
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

/**
 * Tokenizes a task: prompt with special tokens (BOS), choices without; refuses
 * a choice with no tokens and a prompt + choice longer than the context.
 */
export function tokenizeTask(task: Task, tok: ModelTokenizer, maxPositions: number): TokenizedTask {
  const examples = task.examples.map((e): TokenizedTaskExample => {
    const prompt = tok.encodePrompt(e.prompt);
    if (prompt.length === 0) {
      throw new TaskError(task.file, e.line, 'EmptyPrompt', 'the prompt encodes to no tokens and the tokenizer adds no BOS; nothing to condition on');
    }
    const choices = e.choices.map((c, j) => {
      const ids = tok.encodeChoice(c);
      if (ids.length === 0) throw new TaskError(task.file, e.line, 'EmptyChoice', `choice ${j} encodes to no tokens`);
      return ids;
    });
    const longest = Math.max(...choices.map((c) => c.length));
    if (prompt.length + longest - 1 > maxPositions) {
      throw new TaskError(task.file, e.line, 'PromptTooLong',
        `prompt (${prompt.length} tokens) + longest choice (${longest}) exceeds the model's context of ${maxPositions} positions`);
    }
    return { prompt, choices, answer: e.answer, line: e.line };
  });
  return { name: task.name, file: task.file, examples };
}
