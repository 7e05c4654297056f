/** Task loading, tokenization, accuracy, config/tokenizer validation and bad inputs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaRuntime } from '../../src/model/runtime.js';
import { parseModelConfig, readModelConfig } from '../../src/model/config.js';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { loadTask, tokenizeTask, encodePair } from '../../src/eval/task.js';
import { ChatTemplate } from '../../src/eval/chat_template.js';
import { evaluateTasks, evaluateTask, argmax, choiceScores } from '../../src/eval/accuracy.js';
import { ConfigError, TaskError, TokenizerError } from '../../src/errors.js';
import { FIXTURES, goldenJson } from './helpers.js';
import { runCli } from '../helpers.js';

const TASK = join(FIXTURES, 'task.jsonl');

test('the JS tokenizer reproduces the Python token ids (prompt with BOS, choices without)', () => {
  const tok = ModelTokenizer.load(join(FIXTURES, 'gqa'), 72);
  const t = tokenizeTask(loadTask(TASK), tok, 64);
  const gj = goldenJson('gqa');
  t.examples.forEach((e, i) => {
    assert.deepEqual([...e.prompt], gj.examples[i]!.prompt);
    assert.deepEqual(e.choices.map((c) => [...c]), gj.examples[i]!.choices);
  });
});

test('accuracy is rank classification by ℓ(y|x), matching the PyTorch log-likelihoods', async () => {
  for (const variant of ['gqa', 'qwen2']) {
    const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, variant));
    const task = tokenizeTask(loadTask(TASK), rt.tokenizer!, rt.config.maxPositions);
    const res = await evaluateTasks(rt, [task, task]);
    const gj = goldenJson(variant);
    const expected = gj.loglik.map((ll, i) => (argmax(ll) === gj.examples[i]!.answer ? 1 : 0) as number).reduce((a, b) => a + b, 0);
    assert.equal(res.tasks[0]!.correct, expected);
    assert.deepEqual(res.tasks[0]!.predictions, gj.loglik.map(argmax));
    assert.equal(res.meanAccuracy, expected / gj.examples.length);
    assert.equal(res.tasks[0]!.task, 'task');
  }
});

function withTemp(f: (dir: string) => void | Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dfm-eval-'));
    try { await f(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
  };
}

function expectTaskError(fn: () => unknown, code: string, file: string, line: number) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TaskError, `expected TaskError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.file, file);
    assert.equal(e.line, line);
    assert.ok(e.message.includes(`${file}:${line}:`), e.message);
    return true;
  });
}

test('bad task lines are typed errors naming file and line', withTemp((dir) => {
  const good = '{"prompt": "the sky is", "choices": ["blue", "red"], "answer": 0}';
  const cases: [string, string, number][] = [
    [`${good}\n{"prompt": "x", "choices": ["a"], "answer": 0\n`, 'MalformedLine', 2],
    [`${good}\n\n{"prompt": "x", "choices": ["a", "b"], "answer": 2}\n`, 'AnswerOutOfRange', 3],
    [`{"prompt": "x", "choices": ["a", ""], "answer": 0}\n`, 'EmptyChoice', 1],
    [`${good}\n{"prompt": 3, "choices": ["a"], "answer": 0}\n`, 'MalformedLine', 2],
    [`${good}\n{"prompt": "x", "choices": [], "answer": 0}\n`, 'MalformedLine', 2],
    [`${good}\n[1, 2]\n`, 'MalformedLine', 2],
    [`{"prompt": "x", "choices": ["a"], "answer": 0.5}\n`, 'MalformedLine', 1],
  ];
  cases.forEach(([text, code, line], i) => {
    const f = join(dir, `bad${i}.jsonl`);
    writeFileSync(f, text);
    expectTaskError(() => loadTask(f), code, f, line);
  });
}));

test('a prompt longer than the context is a typed error naming file and line', withTemp((dir) => {
  const tok = ModelTokenizer.load(join(FIXTURES, 'gqa'), 72);
  const f = join(dir, 'long.jsonl');
  const long = Array.from({ length: 80 }, () => 'the cat').join(' ');
  writeFileSync(f, `{"prompt": "sky", "choices": ["blue"], "answer": 0}\n{"prompt": "${long}", "choices": ["blue"], "answer": 0}\n`);
  expectTaskError(() => tokenizeTask(loadTask(f), tok, 64), 'PromptTooLong', f, 2);
  // a choice that encodes to nothing
  const g = join(dir, 'empty.jsonl');
  writeFileSync(g, `{"prompt": "sky", "choices": ["blue", "   \\t"], "answer": 0}\n`);
  expectTaskError(() => loadTask(g), 'EmptyChoice', g, 1);
}));

test('unsupported configs are refused naming the field', () => {
  const base = JSON.parse(readFileSync(join(FIXTURES, 'gqa', 'config.json'), 'utf8')) as Record<string, unknown>;
  const bad: [Record<string, unknown>, string][] = [
    [{ rope_parameters: { rope_type: 'llama3', rope_theta: 5e5, factor: 8 } }, 'rope_parameters.low_freq_factor'],
    [{ rope_parameters: { rope_type: 'su', rope_theta: 5e5 } }, 'rope_parameters.rope_type'],
    [{ rope_parameters: undefined, rope_theta: 1e4, rope_scaling: { type: 'ntk', factor: 2 } }, 'rope_scaling.type'],
    [{ rope_scaling: { type: 'linear' } }, 'rope_scaling.factor'],
    [{ rope_parameters: { full_attention: { rope_type: 'default' }, sliding_attention: { rope_type: 'default' } } }, 'rope_parameters'],
    [{ rope_parameters: { rope_type: 'longrope', short_factor: [1, 2], long_factor: [1, 2] } }, 'rope_parameters.short_factor'],
    [{ partial_rotary_factor: 0.5 }, 'partial_rotary_factor'],
    [{ attention_bias: true }, 'attention_bias'],
    [{ architectures: ['MistralForCausalLM'], sliding_window: 0 }, 'sliding_window'],
    [{ architectures: ['Qwen2ForCausalLM'], layer_types: ['full_attention'] }, 'layer_types'],
    [{ architectures: ['Qwen3ForCausalLM'], layer_types: ['full_attention', 'chunked_attention'] }, 'layer_types'],
    [{ architectures: ['GPT2LMHeadModel'] }, 'architectures'],
    [{ hidden_act: 'gelu' }, 'hidden_act'],
    [{ mlp_bias: true }, 'mlp_bias'],
    [{ num_key_value_heads: 3 }, 'num_key_value_heads'],
    [{ hidden_size: undefined }, 'hidden_size'],
  ];
  for (const [patch, field] of bad) {
    assert.throws(() => parseModelConfig({ ...base, ...patch }, 'config.json'), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.field, field);
      assert.ok(e.message.includes(field));
      return true;
    }, field);
  }
  // accepted: transformers 4 top-level rope_theta; Mistral with a window as long as the context; Qwen2 window off
  const v4 = parseModelConfig({ ...base, rope_parameters: undefined, rope_theta: 5e5 });
  assert.equal(v4.ropeTheta, 5e5);
  assert.deepEqual(parseModelConfig({ ...base, architectures: ['MistralForCausalLM'], sliding_window: 16 }).layerWindows, [16, 16]);
  assert.equal(parseModelConfig({ ...base, architectures: ['MistralForCausalLM'], sliding_window: null }).layerWindows, undefined);
  // Qwen2: the window only with use_sliding_window, from max_window_layers on (or where layer_types says)
  const qw = { ...base, architectures: ['Qwen2ForCausalLM'], sliding_window: 8 };
  assert.equal(parseModelConfig({ ...qw, use_sliding_window: false }).layerWindows, undefined);
  assert.deepEqual(parseModelConfig({ ...qw, use_sliding_window: true, max_window_layers: 1 }).layerWindows, [0, 8]);
  assert.deepEqual(parseModelConfig({ ...qw, use_sliding_window: true, layer_types: ['sliding_attention', 'full_attention'] }).layerWindows, [8, 0]);
  // llama has no sliding window in transformers: the field is ignored
  assert.equal(parseModelConfig({ ...base, sliding_window: 4 }).layerWindows, undefined);
  // Qwen3: q/k norms, head_dim 128 by default, no q/k/v bias
  const q3 = parseModelConfig({ ...base, architectures: ['Qwen3ForCausalLM'], head_dim: undefined });
  assert.deepEqual([q3.qkNorm, q3.headDim, q3.attentionBias], [true, 128, false]);
  // rope_scaling (transformers 4 spelling) wins over rope_parameters, as in transformers
  const both = parseModelConfig({ ...base, rope_scaling: { rope_type: 'linear', factor: 2 } });
  assert.deepEqual(both.rope, { type: 'linear', factor: 2 });
  // dynamic NTK stretches the usable context to factor × max_position_embeddings
  const dyn = parseModelConfig({ ...base, rope_parameters: { rope_type: 'dynamic', factor: 2, rope_theta: 1e4 } });
  assert.deepEqual([dyn.maxPositions, dyn.rope?.originalMax], [128, 64]);
  const q = readModelConfig(join(FIXTURES, 'qwen2'));
  assert.equal(q.attentionBias, true);
  assert.equal(q.ropeTheta, 1e6);
  assert.equal(readModelConfig(join(FIXTURES, 'tied')).tieEmbeddings, true);
});

test('a tokenizer with ids beyond vocab_size is refused', withTemp((dir) => {
  copyFileSync(join(FIXTURES, 'gqa', 'tokenizer.json'), join(dir, 'tokenizer.json'));
  assert.throws(() => ModelTokenizer.load(dir, 50), (e: unknown) => e instanceof TokenizerError && e.code === 'VocabMismatch');
  const cfg = JSON.parse(readFileSync(join(FIXTURES, 'gqa', 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 60 }));
  assert.throws(() => LlamaRuntime.fromCheckpoint(dir), (e: unknown) => e instanceof TokenizerError && e.message.includes('vocab_size'));
}));

test('native errors: token out of range, too long, busy model', async () => {
  const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'gqa'));
  await assert.rejects(rt.logits(Int32Array.from([1, 500])), /TokenOutOfRange|outside the vocabulary/);
  await assert.rejects(rt.logits(new Int32Array(65).fill(3)), /max_position_embeddings/);
  const p = rt.logits(Int32Array.from([1, 2, 3]));
  await assert.rejects(rt.logits(Int32Array.from([1])), /busy/);
  await p;
});

test('scorings: mean (per token), sum (lm-eval acc), per character (acc_norm) and per UTF-8 byte (acc_bytes)', () => {
  const ex = { prompt: Int32Array.of(1), choices: [Int32Array.of(5, 6), Int32Array.of(7, 8, 9, 10)], answer: 0, line: 1, choiceTexts: ['é🙂', 'abcd'] };
  const mean = [-1, -0.6];  // sums -2 and -2.4
  assert.deepEqual(choiceScores(ex, mean, 'mean'), [-1, -0.6]);
  assert.deepEqual(choiceScores(ex, mean, 'sum'), [-2, -2.4]);
  assert.deepEqual(choiceScores(ex, mean, 'char-norm'), [-2 / 2, -2.4 / 4]);  // code points, as Python's len
  assert.deepEqual(choiceScores(ex, mean, 'byte-norm'), [-2 / 6, -2.4 / 4]);  // é = 2 bytes, 🙂 = 4
  assert.throws(() => choiceScores({ ...ex, choiceTexts: undefined }, mean, 'char-norm', 't.jsonl'), /t\.jsonl.*char-norm/);
});

test('left truncation (opt-in) keeps the last max+1 tokens per choice; without it a TaskError names file and line', withTemp(async (dir) => {
  const rt = LlamaRuntime.fromCheckpoint(join(FIXTURES, 'gqa'));
  const f = join(dir, 'long.jsonl');
  const long = Array.from({ length: 40 }, () => 'the cat').join(' ');
  writeFileSync(f, `{"prompt": "sky", "choices": ["blue"], "answer": 0}\n{"prompt": "${long}", "choices": [" blue", " the cat sat on the mat"], "answer": 0}\n`);
  expectTaskError(() => tokenizeTask(loadTask(f), rt.tokenizer!, 64), 'PromptTooLong', f, 2);
  const t = tokenizeTask(loadTask(f), rt.tokenizer!, 64, { truncate: true });
  const e = t.examples[1]!;
  assert.ok(e.choicePrompts);
  const full = tokenizeTask(loadTask(f), rt.tokenizer!, 10_000).examples[1]!;
  e.choices.forEach((c, j) => {
    const p = e.choicePrompts![j]!;
    assert.equal(p.length + c.length, 65, 'max_positions + 1 tokens, as lm-eval');
    assert.deepEqual([...p], [...full.prompt.slice(full.prompt.length - p.length)], 'the prompt\'s last tokens');
  });
  // scored per choice with its own prompt
  const res = await evaluateTask(rt, t, { scoring: 'sum' });
  const [alone] = await rt.score([{ prompt: e.choicePrompts![1]!, choices: [e.choices[1]!], answer: 0 }]);
  assert.ok(Math.abs(res.scores[1]![1]! - alone![0]! * e.choices[1]!.length) < 1e-9);
}));

test('--chat-template renders each prompt as a user message (delimiter "" as lm-eval then); a folder without one is refused', withTemp((dir) => {
  for (const f of ['config.json', 'tokenizer.json', 'model.safetensors']) copyFileSync(join(FIXTURES, 'gqa', f), join(dir, f));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' }));
  assert.throws(() => ChatTemplate.load(ModelTokenizer.load(dir)), (e: unknown) => e instanceof TokenizerError && e.code === 'NoChatTemplate' && e.message.includes('tokenizer_config.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({
    bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>',
    chat_template: '{{ bos_token }}{% for m in messages %}{{ m.role }} {{ m.content }} {% endfor %}{% if add_generation_prompt %}assistant{% endif %}',
  }));
  const tok = ModelTokenizer.load(dir, 72);
  const tpl = ChatTemplate.load(tok);
  assert.equal(tpl.renderPrompt('what color is the sky'), '<s>user what color is the sky assistant');
  const t = tokenizeTask(loadTask(TASK), tok, 64, { chatTemplate: tpl });
  const want = encodePair(tok, '<s>user what color is the sky assistant', 'blue');
  assert.deepEqual([...t.examples[0]!.prompt], [...want.context]);
  assert.deepEqual([...t.examples[0]!.choices[0]!], [...want.continuation]);
  assert.equal(t.examples[0]!.prompt.filter((id) => id === tok.bos!.id).length, 1, 'no second BOS when the template writes it');
  // chat_template.jinja wins over tokenizer_config.json, as in transformers
  writeFileSync(join(dir, 'chat_template.jinja'), '{{ messages[0].content }}!');
  assert.equal(ChatTemplate.load(tok).renderPrompt('hi'), 'hi!');
}));

test('dfmerge eval warns when prompt and choice meet with no whitespace (--delimiter "") and not with the default " " (lm-eval)', () => {
  const plain = runCli(['eval', '--model', join(FIXTURES, 'gqa'), '--task', TASK, '--delimiter', '']);
  assert.equal(plain.status, 0, plain.stderr);
  assert.match(plain.stderr, /warning: .*task\.jsonl: 4 of 4 examples join prompt and choice with no whitespace \(first: line 1\)/);
  const spaced = runCli(['eval', '--model', join(FIXTURES, 'gqa'), '--task', TASK, '--scoring', 'byte-norm', '--json']);
  assert.equal(spaced.status, 0, spaced.stderr);
  assert.doesNotMatch(spaced.stderr, /warning/);
  assert.equal((JSON.parse(spaced.stdout) as { tasks: { scoring: string }[] }).tasks[0]!.scoring, 'byte-norm');
  const bad = runCli(['eval', '--model', join(FIXTURES, 'gqa'), '--task', TASK, '--scoring', 'acc']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--scoring must be one of mean, sum, char-norm, byte-norm/);
});
