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

const GEMMA2_2B = {
  architectures: ['Gemma2ForCausalLM'], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: 50.0, bos_token_id: 2,
  cache_implementation: 'hybrid', eos_token_id: 1, final_logit_softcapping: 30.0, head_dim: 256, hidden_act: 'gelu_pytorch_tanh',
  hidden_activation: 'gelu_pytorch_tanh', hidden_size: 2304, initializer_range: 0.02, intermediate_size: 9216,
  max_position_embeddings: 8192, model_type: 'gemma2', num_attention_heads: 8, num_hidden_layers: 26, num_key_value_heads: 4,
  pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6, rope_theta: 10000.0, sliding_window: 4096,
  torch_dtype: 'float32', use_cache: true, vocab_size: 256000,
};
const GEMMA3_1B = {
  architectures: ['Gemma3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: null, bos_token_id: 2,
  cache_implementation: 'hybrid', eos_token_id: [1, 106], final_logit_softcapping: null, head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh', hidden_size: 1152, initializer_range: 0.02, intermediate_size: 6912,
  max_position_embeddings: 32768, model_type: 'gemma3_text', num_attention_heads: 4, num_hidden_layers: 26,
  num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6, rope_local_base_freq: 10000,
  rope_scaling: null, rope_theta: 1000000, sliding_window: 512, sliding_window_pattern: 6, torch_dtype: 'bfloat16',
  use_cache: true, vocab_size: 262144,
};

test('Gemma 2 2B: alternating local (4096) and global layers, soft-capping 50 / 30, tied embeddings', () => {
  const c = parseModelConfig(GEMMA2_2B, 'config.json');
  assert.deepEqual(c.layerWindows, Array.from({ length: 26 }, (_, i) => (i % 2 === 0 ? 4096 : 0)));
  assert.deepEqual([c.architecture, c.attnSoftcap, c.finalSoftcap, c.queryPreAttnScalar, c.headDim, c.tieEmbeddings, c.activation],
    ['gemma2', 50, 30, 256, 256, true, 'gelu_pytorch_tanh']);
  assert.deepEqual([c.normOffset, c.embedScale, c.postNorms, c.qkNorm, c.localRope], [1, Math.sqrt(2304), true, false, undefined]);
});

test('Gemma 3 1B: every 6th layer global (rope 1e6), local layers window 512 with rope 1e4, q/k norms', () => {
  const c = parseModelConfig(GEMMA3_1B, 'config.json');
  const local = Array.from({ length: 26 }, (_, i) => (i + 1) % 6 !== 0);
  assert.deepEqual(c.layerWindows, local.map((l) => (l ? 512 : 0)));
  assert.deepEqual([c.ropeTheta, c.rope, c.localRope], [1e6, { type: 'default' }, { theta: 1e4, scaling: { type: 'default' }, layers: local }]);
  assert.deepEqual([c.architecture, c.qkNorm, c.attnSoftcap, c.finalSoftcap, c.tieEmbeddings], ['gemma3', true, 0, 0, true]);
});

test('the multimodal Gemma 3 is refused naming architectures', () => {
  assert.throws(() => parseModelConfig({ ...GEMMA3_1B, architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3' }, 'config.json'),
    (e: unknown) => e instanceof ConfigError && e.field === 'architectures' && e.message.includes('Gemma3ForConditionalGeneration'));
});
