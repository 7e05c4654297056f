/**
 * Vocabularies padded differently between a base model and a fine-tune (docs/design.md §10):
 * the embedding and LM head of one may have more rows than the other's (e.g.
 * 128256 vs 128320, padded to a multiple of 64 for tensor cores, or tokens added
 * while fine-tuning). Only dim 0 of those tensors may differ. The output (and the
 * runtime) follows the reference model, whose config and tokenizer are used:
 *
 *   - rows a model has beyond the reference are dropped (its tensor is viewed with
 *     the reference's row count: rows are contiguous, so this is a zero-copy prefix);
 *   - rows the reference has beyond a model keep the reference's value: the model
 *     is read as if those rows equalled the reference's (task vector 0 there).
 */
import type { ComputeDtype } from '../native/addon.js';

/** Tensors whose dim 0 is the vocabulary, in the families dfmerge reads (HF names). */
const VOCAB_TENSOR = /(?:^|\.)(?:embed_tokens|lm_head|wte|tok_embeddings|word_embeddings|embed_in|embed_out)\.weight$|^output\.weight$/;

export function isVocabTensor(name: string): boolean {
  return VOCAB_TENSOR.test(name);
}

/** How one model's vocabulary tensor is read with the reference's rows. */
export interface RowFit {
  readonly name: string;
  /** Rows the model stores. */
  readonly stored: number;
  /** Rows the reference (the output) has. */
  readonly used: number;
  /** Elements per row. */
  readonly rowElements: number;
}

/**
 * The fit of `shape` to the reference's `refShape` for tensor `name`: undefined
 * when the shapes are equal or differ otherwise than in the vocabulary dimension
 * (the caller reports that as a mismatch).
 */
export function vocabRowFit(name: string, refShape: readonly number[], shape: readonly number[]): RowFit | undefined {
  if (!isVocabTensor(name) || refShape.length !== 2 || shape.length !== 2) return undefined;
  if (refShape[1] !== shape[1] || refShape[0] === shape[0]) return undefined;
  return { name, stored: shape[0]!, used: refShape[0]!, rowElements: refShape[1]! };
}

/** The warning line printed once per model and tensor whose rows differ. */
export function rowFitWarning(fit: RowFit, model: string, reference: string, referenceRole = 'the base'): string {
  const what = fit.stored > fit.used
    ? `its rows ${fit.used}–${fit.stored - 1} are dropped (the output keeps ${referenceRole}'s ${fit.used} rows)`
    : `rows ${fit.stored}–${fit.used - 1} keep ${referenceRole}'s values there (task vector 0)`;
  return `warning: vocabulary sizes differ: tensor "${fit.name}" has ${fit.stored} rows in ${model} and ${fit.used} in ${referenceRole} ${reference}; ` +
    `the ${Math.min(fit.stored, fit.used)} shared rows are merged, ${what}\n`;
}

/** One tensor's bytes in a compute dtype. */
export interface RowBytes {
  readonly data: ArrayBufferView | ArrayBuffer;
  readonly dtype: ComputeDtype;
}

const elementBytes = (d: ComputeDtype) => (d === 'F32' ? 4 : 2);

function asBytes(x: ArrayBufferView | ArrayBuffer): Uint8Array {
  return x instanceof ArrayBuffer ? new Uint8Array(x) : new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

/** The first `rows` rows of a tensor (zero-copy). */
export function firstRows(t: RowBytes, rows: number, rowElements: number): RowBytes {
  return { data: asBytes(t.data).subarray(0, rows * rowElements * elementBytes(t.dtype)), dtype: t.dtype };
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Elements [from, to) of a tensor, exactly, as f32 into dst (every compute dtype widens to f32 without rounding). */
function widen(t: RowBytes, from: number, to: number, dst: Float32Array): void {
  const b = asBytes(t.data);
  if (t.dtype === 'F32') {
    dst.set(new Float32Array(b.slice(from * 4, to * 4).buffer));
    return;
  }
  const h = new Uint16Array(b.slice(from * 2, to * 2).buffer);
  if (t.dtype === 'BF16') {
    const u = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
    for (let k = 0; k < h.length; k++) u[k] = h[k]! << 16;
  } else {
    for (let k = 0; k < h.length; k++) dst[k] = f16ToF32(h[k]!);
  }
}

/**
 * The model's tensor with the reference's row count: a zero-copy prefix when it
 * has more rows; when it has fewer, a copy whose missing rows are the reference's
 * (`pad`, the reference's tensor) — in the model's dtype when both share it,
 * else in F32 (which holds F16 and BF16 values exactly).
 */
export function fitRows(t: RowBytes, fit: RowFit, pad: RowBytes): RowBytes {
  if (fit.stored >= fit.used) return firstRows(t, fit.used, fit.rowElements);
  const have = fit.stored * fit.rowElements;
  const total = fit.used * fit.rowElements;
  if (t.dtype === pad.dtype) {
    const es = elementBytes(t.dtype);
    const out = new Uint8Array(total * es);
    out.set(asBytes(t.data).subarray(0, have * es), 0);
    out.set(asBytes(pad.data).subarray(have * es, total * es), have * es);
    return { data: out, dtype: t.dtype };
  }
  const out = new Float32Array(total);
  widen(t, 0, have, out.subarray(0, have));
  widen(pad, have, total, out.subarray(have));
  return { data: out, dtype: 'F32' };
}

/** A Fisher tensor with the reference's rows: extra rows dropped, missing rows 0 (that model says nothing about them). */
export function fitFisherRows(t: RowBytes, fit: RowFit): RowBytes {
  if (fit.stored >= fit.used) return firstRows(t, fit.used, fit.rowElements);
  const have = fit.stored * fit.rowElements;
  const out = new Float32Array(fit.used * fit.rowElements);
  widen(t, 0, have, out.subarray(0, have));
  return { data: out, dtype: 'F32' };
}
