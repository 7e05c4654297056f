/**
 * The model's tokenizer: tokenizer.json (and tokenizer_config.json when present)
 * through @huggingface/tokenizers (pure JS, offline). Token ids must fit the
 * model's vocabulary: a tokenizer with ids >= config.vocab_size is refused.
 *
 * How a prompt and a choice become tokens (lm-evaluation-harness's split) is in
 * src/eval/task.ts; this class only encodes and names the BOS/EOS tokens that
 * tokenizer_config.json declares.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from '../errors.js';

export class ModelTokenizer {
  readonly file: string;
  /** Largest token id + 1 (vocabulary plus added tokens). */
  readonly size: number;
  /** The model folder the tokenizer was loaded from. */
  readonly dir: string;
  /** tokenizer_config.json bos_token / eos_token, when declared and in the vocabulary. */
  readonly bos: { text: string; id: number } | undefined;
  readonly eos: { text: string; id: number } | undefined;
  /** tokenizer_config.json contents ({} without one). */
  readonly config: ReadonlyMap<string, unknown>;
  private readonly tok: Tokenizer;

  private constructor(dir: string, file: string, tok: Tokenizer, size: number, cfg: Record<string, unknown>) {
    this.dir = dir;
    this.file = file;
    this.tok = tok;
    this.size = size;
    this.config = new Map(Object.entries(cfg));
    const special = (v: unknown): { text: string; id: number } | undefined => {
      const text = typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : undefined;
      if (text === undefined) return undefined;
      const id = tok.token_to_id(text);
      return id === undefined ? undefined : { text, id };
    };
    this.bos = special(cfg.bos_token);
    this.eos = special(cfg.eos_token);
  }

  /** Loads `<dir>/tokenizer.json`; refuses ids beyond `vocabSize` when given. */
  static load(dir: string, vocabSize?: number): ModelTokenizer {
    const file = join(dir, 'tokenizer.json');
    if (!existsSync(file)) throw new TokenizerError(file, 'NotFound', 'no tokenizer.json in the model folder');
    const readJson = (p: string): Record<string, unknown> => {
      try {
        return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new TokenizerError(p, 'InvalidJson', `not valid JSON (${e instanceof Error ? e.message : String(e)})`);
      }
    };
    const json = readJson(file);
    const cfgPath = join(dir, 'tokenizer_config.json');
    const cfg = existsSync(cfgPath) ? readJson(cfgPath) : {};
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(json, cfg);
    } catch (e) {
      throw new TokenizerError(file, 'UnsupportedTokenizer', `cannot be loaded (${e instanceof Error ? e.message : String(e)})`);
    }
    let maxId = -1;
    for (const id of tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    const size = maxId + 1;
    if (vocabSize !== undefined && size > vocabSize) {
      throw new TokenizerError(file, 'VocabMismatch',
        `the tokenizer has token ids up to ${maxId} but config.json vocab_size is ${vocabSize}; the tokenizer does not belong to this model`);
    }
    return new ModelTokenizer(dir, file, tok, size, cfg);
  }

  /** Token ids of `text`, with the tokenizer's special tokens (BOS) when `special`. */
  encode(text: string, special: boolean): Int32Array {
    return Int32Array.from(this.tok.encode(text, { add_special_tokens: special }).ids);
  }

  /** Encoded with special tokens (the prompt side of the old convention; the zoo's tests use it). */
  encodePrompt(text: string): Int32Array {
    return this.encode(text, true);
  }

  encodeChoice(text: string): Int32Array {
    return this.encode(text, false);
  }

  /** The token lm-eval puts before a continuation with an empty context: BOS, else EOS (its prefix_token_id). */
  get prefix(): { text: string; id: number } | undefined {
    return this.bos ?? this.eos;
  }

  decode(ids: ArrayLike<number>): string {
    return this.tok.decode(Array.from(ids));
  }
}
