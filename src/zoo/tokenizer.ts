/**
 * The zoo's character-level tokenizer, written as a real tokenizer.json that
 * both @huggingface/tokenizers (JS) and the Python `tokenizers` package load:
 * a BPE model with one token per character and no merges (so every character
 * is its own token), three special tokens (<unk>, <s>, </s>), a
 * TemplateProcessing post-processor that prepends <s> when special tokens are
 * requested (prompts; choices are encoded without, see ModelTokenizer), and a
 * Fuse decoder (characters are joined back without separators).
 */

/** Special tokens, ids 0..2. */
export const UNK = '<unk>';
export const BOS = '<s>';
export const EOS = '</s>';
export const SPECIAL_IDS = { unk: 0, bos: 1, eos: 2 } as const;

/** The characters the zoo's text uses: lowercase letters, digits, space and a little punctuation. */
export const ZOO_CHARS = ' abcdefghijklmnopqrstuvwxyz0123456789=+-:;,.?!>|()';

/** Token id of every character: specials first, then the characters in order. */
export function charVocab(chars: string = ZOO_CHARS): Map<string, number> {
  const vocab = new Map<string, number>([[UNK, 0], [BOS, 1], [EOS, 2]]);
  for (const c of chars) if (!vocab.has(c)) vocab.set(c, vocab.size);
  return vocab;
}

/** tokenizer.json for a character vocabulary. */
export function charTokenizerJson(chars: string = ZOO_CHARS): Record<string, unknown> {
  const vocab = charVocab(chars);
  const special = (content: string, id: number) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(UNK, 0), special(BOS, 1), special(EOS, 2)],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: BOS, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: BOS, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [BOS]: { id: BOS, ids: [SPECIAL_IDS.bos], tokens: [BOS] } },
    },
    decoder: { type: 'Fuse' },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: UNK,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: [],
    },
  };
}

/** tokenizer_config.json, so that transformers' AutoTokenizer loads the folder too. */
export function charTokenizerConfig(maxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: BOS,
    eos_token: EOS,
    unk_token: UNK,
    add_bos_token: true,
    model_max_length: maxLength,
    clean_up_tokenization_spaces: false,
  };
}

/** Encodes text the way the tokenizer.json does (for building corpora without a tokenizer round trip). */
export function encodeChars(text: string, vocab: ReadonlyMap<string, number>, bos: boolean): Int32Array {
  const ids: number[] = bos ? [SPECIAL_IDS.bos] : [];
  for (const c of text) ids.push(vocab.get(c) ?? SPECIAL_IDS.unk);
  return Int32Array.from(ids);
}
