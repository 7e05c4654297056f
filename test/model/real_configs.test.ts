/**
 * config.json files shaped like those of popular checkpoints (their rope,
 * attention and sliding-window fields as published) parse into the runtime's
 * config, and unsupported families are refused naming the field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig } from '../../src/model/config.js';
import { ConfigError } from '../../src/errors.js';

const LLAMA_32_1B = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: 128001,
  head_dim: 64, hidden_act: 'silu', hidden_size: 2048, initializer_range: 0.02, intermediate_size: 8192,
  max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 16,
  num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 128256,
};
const MISTRAL_7B_V01 = {
  architectures: ['MistralForCausalLM'], bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: 4096,
  intermediate_size: 14336, max_position_embeddings: 32768, model_type: 'mistral', num_attention_heads: 32,
  num_hidden_layers: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 10000.0, sliding_window: 4096,
  tie_word_embeddings: false, torch_dtype: 'bfloat16', vocab_size: 32000,
};
const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643, hidden_act: 'silu',
  hidden_size: 896, intermediate_size: 4864, max_position_embeddings: 32768, max_window_layers: 24, model_type: 'qwen2',
  num_attention_heads: 14, num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
  sliding_window: 32768, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_sliding_window: false, vocab_size: 151936,
};
const QWEN3_06B = {
  architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
  head_dim: 128, hidden_act: 'silu', hidden_size: 1024, intermediate_size: 3072, max_position_embeddings: 40960,
  max_window_layers: 28, model_type: 'qwen3', num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 8,
  rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1000000, sliding_window: null, tie_word_embeddings: true,
  torch_dtype: 'bfloat16', use_sliding_window: false, vocab_size: 151936,
};

test('Llama 3.2 1B: llama3 rope scaling, 131072 positions', () => {
  const c = parseModelConfig(LLAMA_32_1B, 'config.json');
  assert.deepEqual(c.rope, { type: 'llama3', factor: 32, originalMax: 8192, lowFreqFactor: 1, highFreqFactor: 4 });
  assert.deepEqual([c.architecture, c.ropeTheta, c.maxPositions, c.headDim, c.tieEmbeddings, c.layerWindows], ['llama', 5e5, 131072, 64, true, undefined]);
});

test('Mistral 7B v0.1: a 4096-token sliding window on every layer', () => {
  const c = parseModelConfig(MISTRAL_7B_V01, 'config.json');
  assert.deepEqual(c.layerWindows, new Array(32).fill(4096));
  assert.equal(c.rope?.type, 'default');
});

test('Qwen2.5 0.5B: q/k/v biases, sliding window off (use_sliding_window false)', () => {
  const c = parseModelConfig(QWEN25_05B, 'config.json');
  assert.deepEqual([c.attentionBias, c.layerWindows, c.qkNorm, c.headDim], [true, undefined, false, 64]);
});

test('Qwen3 0.6B: q_norm/k_norm, head_dim 128 (not hidden/heads = 64), no biases', () => {
  const c = parseModelConfig(QWEN3_06B, 'config.json');
  assert.deepEqual([c.qkNorm, c.headDim, c.attentionBias, c.layerWindows, c.rope?.type], [true, 128, false, undefined, 'default']);
});

test('Gemma 2 / Gemma 3 are refused naming architectures', () => {
  for (const arch of ['Gemma2ForCausalLM', 'Gemma3ForCausalLM']) {
    assert.throws(() => parseModelConfig({ ...LLAMA_32_1B, architectures: [arch] }, 'config.json'),
      (e: unknown) => e instanceof ConfigError && e.field === 'architectures' && e.message.includes(arch));
  }
});
