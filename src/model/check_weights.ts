/**
 * config.json against the weights, before anything is allocated: every tensor the
 * config implies must be in the checkpoint with the shape the config implies, as
 * a float tensor, and the checkpoint must hold no tensor the model would not use
 * (a `num_hidden_layers: 1` for a 2-layer checkpoint would otherwise silently run
 * one layer). Sizes are checked against the weights first, so an absurd
 * `num_hidden_layers` or `vocab_size` is refused in microseconds rather than
 * allocated (out of memory) or iterated over.
 */
import { CheckpointError } from '../errors.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { isComputeDtype } from '../io/dtypes.js';
import type { ModelConfig } from './config.js';
import { LlamaRuntime } from './runtime.js';

/** Buffers some checkpoints carry that no runtime reads (recomputed from the config). */
const IGNORED = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

const LAYER = /^model\.layers\.(\d+)\./;

/**
 * The HF tensor names and shapes a Llama-family config implies, in the runtime's
 * order: the native model's own parameter list (one place decides what a family
 * has, e.g. Qwen3's q/k norms). Building it allocates nothing parameter-sized;
 * callers check the layer count and embedding shape against the weights first.
 */
export function expectedTensors(c: ModelConfig): Map<string, readonly number[]> {
  return new Map(LlamaRuntime.fromConfig(c).params.map((p) => [p.name, p.shape]));
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Throws CheckpointError naming the checkpoint, the tensor and the config field
 * when `config` does not describe exactly the tensors of `ck`.
 */
export function checkConfigAgainstCheckpoint(config: ModelConfig, ck: Checkpoint): void {
  const where = `${ck.path} (config ${config.source})`;
  const fail = (code: string, detail: string): never => { throw new CheckpointError(where, code, detail); };

  // Sizes first, from the weights: nothing proportional to the config's claims is built before they hold.
  const layers = new Set<number>();
  for (const name of ck.names) {
    const m = LAYER.exec(name);
    if (m) layers.add(Number(m[1]));
  }
  if (layers.size !== config.layers) {
    const sorted = [...layers].sort((a, b) => a - b);
    const seen = sorted.length === 0 ? 'no model.layers.* tensors'
      : `tensors for ${sorted.length} layer(s) (model.layers.${sorted[0]} … model.layers.${sorted[sorted.length - 1]})`;
    fail('LayerCountMismatch', `num_hidden_layers is ${config.layers} but the checkpoint has ${seen}`);
  }
  const embed = ck.has('model.embed_tokens.weight') ? ck.locate('model.embed_tokens.weight').info : undefined;
  if (!embed) fail('TensorNotFound', 'no tensor "model.embed_tokens.weight" (needed by the model config)');
  if (embed!.shape.length !== 2 || embed!.shape[0] !== config.vocab || embed!.shape[1] !== config.hidden) {
    fail('ShapeMismatch', `tensor "model.embed_tokens.weight" has shape ${shapeText(embed!.shape)}, but vocab_size ${config.vocab} and hidden_size ${config.hidden} imply [${config.vocab}, ${config.hidden}]`);
  }

  const expected = expectedTensors(config);
  for (const [name, shape] of expected) {
    if (!ck.has(name)) fail('TensorNotFound', `no tensor "${name}" (shape ${shapeText(shape)} implied by the config)`);
    const { file, info } = ck.locate(name);
    if (!sameShape(info.shape, shape)) {
      fail('ShapeMismatch', `tensor "${name}" in ${file.path} has shape ${shapeText(info.shape)}, the config implies ${shapeText(shape)} (${fieldsOf(name)})`);
    }
    if (!isComputeDtype(info.dtype)) fail('NotFloat', `tensor "${name}" in ${file.path} has dtype ${info.dtype}; weights must be F32, F16 or BF16`);
  }
  for (const name of ck.names) {
    if (expected.has(name) || IGNORED.test(name)) continue;
    if (name === 'lm_head.weight' && config.tieEmbeddings) {
      // a tied checkpoint may store a copy of the embedding as lm_head: harmless if it fits
      if (!sameShape(ck.locate(name).info.shape, [config.vocab, config.hidden])) {
        fail('ShapeMismatch', `tensor "lm_head.weight" has shape ${shapeText(ck.locate(name).info.shape)}, vocab_size and hidden_size imply [${config.vocab}, ${config.hidden}]`);
      }
      continue;
    }
    fail('UnusedTensor', `tensor "${name}" is not used by the model config.json describes (check num_hidden_layers, attention_bias, tie_word_embeddings)`);
  }
}

/** The config fields a tensor's shape depends on, for messages. */
function fieldsOf(name: string): string {
  if (name.includes('embed_tokens') || name.startsWith('lm_head')) return 'vocab_size, hidden_size';
  if (name.includes('mlp.')) return 'intermediate_size, hidden_size';
  if (name.includes('k_proj') || name.includes('v_proj')) return 'num_key_value_heads, head_dim, hidden_size';
  if (name.includes('q_proj') || name.includes('o_proj')) return 'num_attention_heads, head_dim, hidden_size';
  if (name.includes('q_norm') || name.includes('k_norm')) return 'head_dim';
  return 'hidden_size';
}
