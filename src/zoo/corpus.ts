/**
 * The base model's pre-training corpus: a seeded mix of generic character
 * sequences in the tasks' alphabet and prompt shape, none of which solves a task:
 *  - copying:        `cpy:kqzt=kqzt`, `cpy:3814=3814` (the `<tag>:<input>=` format
 *                    and position-aligned attention, which every task builds on);
 *  - runs:           `lmnopq`, `456789` (letter and digit order: successor structure);
 *  - random strings: `q3ksd8m` (the unigram distribution).
 */
import { Rng } from '../util/rng.js';

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';

function randomString(rng: Rng, alphabet: string, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[rng.int(alphabet.length)];
  return s;
}

/** One corpus line. */
export function corpusLine(rng: Rng): string {
  const kind = rng.next();
  if (kind < 0.5) {
    const alphabet = rng.next() < 0.5 ? LETTERS : DIGITS;
    const s = randomString(rng, alphabet, 3 + rng.int(4));
    return `cpy:${s}=${s}`;
  }
  if (kind < 0.75) {
    const alphabet = rng.next() < 0.6 ? LETTERS : DIGITS;
    const n = Math.min(alphabet.length, 4 + rng.int(8));
    const start = rng.int(alphabet.length - n + 1);
    return alphabet.slice(start, start + n);
  }
  return randomString(rng, LETTERS + DIGITS, 5 + rng.int(8));
}

export function makeCorpus(n: number, seed: number): string[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => corpusLine(rng));
}
