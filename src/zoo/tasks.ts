/**
 * The zoo's synthetic multiple-choice tasks (docs/design.md §2 format: {"prompt",
 * "choices", "answer"}). Each prompt is `<tag>:<input>=` and each choice a
 * candidate output of the same length, so rank classification by mean token
 * log-likelihood compares like with like. Four choices: the gold output, one
 * "near miss" (gold with one position changed) and two task-specific decoys.
 * The tasks share one character vocabulary and the same prompt shape but need
 * different circuits (positional reversal, order statistics, digit arithmetic,
 * a memorised letter table), so a tiny model fine-tuned on one forgets the
 * others: they compete for capacity, which is what merging has to reconcile.
 */
import { Rng } from '../util/rng.js';
import type { PromptOptions } from '../eval/prompt_options.js';

/**
 * How the zoo's tasks are read: each choice follows its `<tag>:<input>=` prompt
 * directly (the models are trained on that text), so the target delimiter is ''
 * rather than lm-eval's default ' '. Pass it (or `--delimiter ""`) wherever zoo
 * tasks are evaluated.
 */
export const ZOO_DELIMITER = '';
export const ZOO_PROMPTS: PromptOptions = { delimiter: ZOO_DELIMITER };

export interface McExample {
  prompt: string;
  choices: string[];
  answer: number;
}

export interface TaskSpec {
  name: string;
  description: string;
  /** One random example: the gold output and at least 3 distinct wrong outputs (same length). */
  make(rng: Rng): { prompt: string; gold: string; wrong: string[] };
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
/** Largest k of the modadd task (k ∈ 1..9 does not leave its plateau within the zoo's step budget; 1..3 does). */
const K_MAX = 3;

const pick = (rng: Rng, s: string): string => s[rng.int(s.length)]!;
const randomString = (rng: Rng, alphabet: string, n: number): string => Array.from({ length: n }, () => pick(rng, alphabet)).join('');
const distinctLetters = (rng: Rng, n: number): string => rng.sample(LETTERS.length, n).map((i) => LETTERS[i]).join('');
const reverse = (s: string): string => [...s].reverse().join('');
const shuffle = (rng: Rng, s: string): string => rng.sample(s.length, s.length).map((i) => s[i]).join('');

/** s with one position replaced by a different character from the alphabet. */
function nearMiss(rng: Rng, s: string, alphabet: string): string {
  const i = rng.int(s.length);
  let c = pick(rng, alphabet);
  while (c === s[i]) c = pick(rng, alphabet);
  return s.slice(0, i) + c + s.slice(i + 1);
}

/** s with one adjacent pair of different characters swapped (s itself when there is none). */
function swapAdjacent(rng: Rng, s: string): string {
  const spots = [...Array(Math.max(0, s.length - 1)).keys()].filter((i) => s[i] !== s[i + 1]);
  if (spots.length === 0) return s;
  const i = spots[rng.int(spots.length)]!;
  return s.slice(0, i) + s[i + 1] + s[i] + s.slice(i + 2);
}

/** The letter substitution of the `map` task: a fixed permutation of a–z (seed 1234, independent of the zoo seed). */
export const CIPHER: string = (() => {
  const r = new Rng(1234);
  let p = '';
  do p = r.sample(26, 26).map((i) => LETTERS[i]).join(''); while ([...p].some((c, i) => c === LETTERS[i]));
  return p;
})();

export const TASKS: readonly TaskSpec[] = [
  {
    name: 'reverse',
    description: 'reverse a string of 3–5 distinct letters',
    make(rng) {
      const s = distinctLetters(rng, 3 + rng.int(3));
      const gold = reverse(s);
      return { prompt: `rev:${s}=`, gold, wrong: [s, swapAdjacent(rng, gold), shuffle(rng, s), nearMiss(rng, gold, LETTERS)] };
    },
  },
  {
    name: 'sort',
    description: 'sort 4–6 digits in ascending order',
    make(rng) {
      const s = randomString(rng, DIGITS, 4 + rng.int(3));
      const gold = [...s].sort().join('');
      return { prompt: `sort:${s}=`, gold, wrong: [s, reverse(gold), swapAdjacent(rng, gold), shuffle(rng, s), nearMiss(rng, gold, DIGITS)] };
    },
  },
  {
    name: 'modadd',
    description: 'add k (1–3) to every digit of a 3–5 digit string, modulo 10',
    make(rng) {
      const s = randomString(rng, DIGITS, 3 + rng.int(3));
      const k = 1 + rng.int(K_MAX);
      const add = (j: number) => [...s].map((d) => String((Number(d) + j) % 10)).join('');
      const others = rng.sample(10, 10).filter((j) => j !== k).slice(0, 3).map(add);
      return { prompt: `add${k}:${s}=`, gold: add(k), wrong: [nearMiss(rng, add(k), DIGITS), ...others] };
    },
  },
  {
    name: 'charmap',
    description: 'apply a fixed letter substitution (a secret cipher) to 3–5 letters',
    make(rng) {
      const s = randomString(rng, LETTERS, 3 + rng.int(3));
      const gold = [...s].map((c) => CIPHER[LETTERS.indexOf(c)]).join('');
      return { prompt: `map:${s}=`, gold, wrong: [nearMiss(rng, gold, LETTERS), s, nearMiss(rng, gold, LETTERS), nearMiss(rng, s, LETTERS)] };
    },
  },
];

export const TASK_NAMES: readonly string[] = TASKS.map((t) => t.name);

/** One multiple-choice example: gold plus the first 3 distinct wrong outputs, shuffled. */
export function makeExample(task: TaskSpec, rng: Rng, nChoices = 4): McExample {
  for (;;) {
    const { prompt, gold, wrong } = task.make(rng);
    const distinct = [...new Set(wrong.filter((w) => w !== gold && w.length === gold.length))];
    if (distinct.length < nChoices - 1) continue;  // degenerate input (e.g. all digits equal): draw again
    const choices = [gold, ...distinct.slice(0, nChoices - 1)];
    const order = rng.sample(nChoices, nChoices);
    return { prompt, choices: order.map((i) => choices[i]!), answer: order.indexOf(0) };
  }
}

export interface TaskSplits {
  train: McExample[];
  validation: McExample[];
  test: McExample[];
}

/** Train / validation / test examples with pairwise distinct prompts (no prompt is in two splits). */
export function makeSplits(task: TaskSpec, sizes: { train: number; validation: number; test: number }, seed: number): TaskSplits {
  const rng = new Rng(seed);
  const seen = new Set<string>();
  const draw = (n: number): McExample[] => {
    const out: McExample[] = [];
    let misses = 0;
    while (out.length < n) {
      const e = makeExample(task, rng);
      if (seen.has(e.prompt)) {
        if (++misses > 100 * n) throw new Error(`task ${task.name}: cannot draw ${n} distinct prompts`);
        continue;
      }
      seen.add(e.prompt);
      out.push(e);
    }
    return out;
  };
  // Evaluation splits first, so their content does not depend on the training size.
  const test = draw(sizes.test);
  const validation = draw(sizes.validation);
  const train = draw(sizes.train);
  return { train, validation, test };
}

export function toJsonl(examples: readonly McExample[]): string {
  return examples.map((e) => JSON.stringify({ prompt: e.prompt, choices: e.choices, answer: e.answer })).join('\n') + '\n';
}
