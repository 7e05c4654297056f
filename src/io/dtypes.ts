/** safetensors dtypes: element sizes and which ones dfmerge computes on. */
import type { ComputeDtype } from '../native/addon.js';

/** Bits per element of every dtype the safetensors format defines. */
export const DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32,
  F64: 64, I64: 64, U64: 64, C64: 64,
  F4: 4, F6_E2M3: 6, F6_E3M2: 6,
};

/** Dtypes read as f32 for computation; others are passed through untouched. */
export function isComputeDtype(dtype: string): dtype is ComputeDtype {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes of a tensor of this dtype and shape. */
export function byteSize(dtype: string, shape: readonly number[]): number {
  const bits = DTYPE_BITS[dtype];
  if (bits === undefined) throw new RangeError(`unknown dtype ${dtype}`);
  return (numelOf(shape) * bits) / 8;
}
