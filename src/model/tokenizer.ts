/**
 * The model's tokenizer: tokenizer.json (and tokenizer_config.json when present)
 * through @huggingface/tokenizers (pure JS, offline). Token ids must fit the
 * model's vocabulary: a tokenizer with ids >= config.vocab_size is refused.
 *
 * Convention for multiple-choice scoring (matched by the Python fixtures and
 * benchmark): the prompt is encoded WITH the tokenizer's special tokens (e.g.
 * BOS), each choice WITHOUT, and the sequence is prompt ++ choice.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from '../errors.js';

export class ModelTokenizer {
  readonly file: string;
  /** Largest token id + 1 (vocabulary plus added tokens). */
  readonly size: number;
  private readonly tok: Tokenizer;

  private constructor(file: string, tok: Tokenizer, size: number) {
    this.file = file;
    this.tok = tok;
    this.size = size;
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
    return new ModelTokenizer(file, tok, size);
  }

  /** Token ids of `text`, with the tokenizer's special tokens (BOS) when `special`. */
  encode(text: string, special: boolean): Int32Array {
    return Int32Array.from(this.tok.encode(text, { add_special_tokens: special }).ids);
  }

  encodePrompt(text: string): Int32Array {
    return this.encode(text, true);
  }

  encodeChoice(text: string): Int32Array {
    return this.encode(text, false);
  }

  decode(ids: ArrayLike<number>): string {
    return this.tok.decode(Array.from(ids));
  }
}
