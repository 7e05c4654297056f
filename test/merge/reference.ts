/**
 * Float64 reference implementations of the merge methods (the formulas of
 * native/kernels/merge.h, written independently), plus dtype encoding/decoding,
 * seeded random tensors and the DARE hash mirrored bit for bit from merge_rng.h.
 * Nothing here calls the addon.
 */
import type { ComputeDtype } from '../../src/native/addon.js';

// ---------------------------------------------------------------------------
// dtypes

const FORMAT: Record<ComputeDtype, { p: number; emin: number; overflowAt: number }> = {
  F32: { p: 24, emin: -126, overflowAt: (2 - 2 ** -24) * 2 ** 127 },
  F16: { p: 11, emin: -14, overflowAt: 65520 },
  BF16: { p: 8, emin: -126, overflowAt: (2 - 2 ** -8) * 2 ** 127 },
};

export const DTYPES: readonly ComputeDtype[] = ['F32', 'F16', 'BF16'];
export const SIZE: Record<ComputeDtype, number> = { F32: 4, F16: 2, BF16: 2 };

function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  return e;
}

/** Round half to even. */
function rne(x: number): number {
  const f = Math.floor(x);
  const r = x - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** v rounded to the nearest value of `dtype` (ties to even; overflow to ±inf). */
export function roundTo(v: number, dtype: ComputeDtype): number {
  if (dtype === 'F32') return Math.fround(v);
  if (!Number.isFinite(v) || v === 0) return v;
  const { p, emin, overflowAt } = FORMAT[dtype];
  const a = Math.abs(v);
  if (a >= overflowAt) return Math.sign(v) * Infinity;
  const e = Math.max(exponentOf(a), emin);
  const q = 2 ** (e - (p - 1));
  return Math.sign(v) * rne(a / q) * q;
}

/** One unit in the last place of `dtype` at |v|. */
export function ulp(v: number, dtype: ComputeDtype): number {
  const { p, emin } = FORMAT[dtype];
  const a = Math.abs(v);
  const e = a === 0 || !Number.isFinite(a) ? emin : Math.max(exponentOf(a), emin);
  return 2 ** (e - (p - 1));
}

/** Bytes of values that are already exactly representable in `dtype`. */
export function encode(values: Float64Array, dtype: ComputeDtype): Uint8Array {
  const out = new Uint8Array(values.length * SIZE[dtype]);
  const dv = new DataView(out.buffer);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i]!;
    if (dtype === 'F32') {
      dv.setFloat32(4 * i, v, true);
    } else if (dtype === 'BF16') {
      f32[0] = v;
      dv.setUint16(2 * i, u32[0]! >>> 16, true);
    } else {
      const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
      const a = Math.abs(v);
      let bits: number;
      if (a === 0) bits = 0;
      else if (a === Infinity) bits = 0x7c00;
      else {
        const e = exponentOf(a);
        bits = e < -14 ? a / 2 ** -24 : ((e + 15) << 10) | (a / 2 ** (e - 10) - 1024);
      }
      dv.setUint16(2 * i, sign | bits, true);
    }
  }
  return out;
}

export function decode(bytes: Uint8Array, dtype: ComputeDtype): Float64Array {
  const n = bytes.byteLength / SIZE[dtype];
  const out = new Float64Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < n; i += 1) {
    if (dtype === 'F32') out[i] = dv.getFloat32(4 * i, true);
    else if (dtype === 'BF16') {
      u32[0] = dv.getUint16(2 * i, true) << 16;
      out[i] = f32[0]!;
    } else {
      const h = dv.getUint16(2 * i, true);
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1024 + m) * 2 ** (e - 25);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Seeded random tensors

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform on [0, 1) (mulberry32). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

/** A tensor: its exact values (as stored) and its bytes. */
export interface RefTensor {
  values: Float64Array;
  bytes: Uint8Array;
  dtype: ComputeDtype;
}

export function makeTensor(values: Float64Array, dtype: ComputeDtype): RefTensor {
  const exact = values.map((v) => roundTo(v, dtype));
  return { values: exact, bytes: encode(exact, dtype), dtype };
}

export function randomTensor(rng: Rng, n: number, dtype: ComputeDtype, f: (i: number) => number): RefTensor {
  const v = new Float64Array(n);
  for (let i = 0; i < n; i += 1) v[i] = f(i);
  return makeTensor(v, dtype);
}

// ---------------------------------------------------------------------------
// DARE's counter-based hash, bit for bit as native/kernels/merge_rng.h

const M64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;

export function splitmix64Mix(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

export function dareKey(seed: bigint, tensorId: bigint, model: number): bigint {
  let key = splitmix64Mix((seed + GOLDEN) & M64);
  key = splitmix64Mix(key ^ tensorId);
  return splitmix64Mix((key + BigInt(model + 1) * GOLDEN) & M64);
}

/** Keep mask of DARE for one model: u24(i) ≥ ceil(p·2^24), p = 1 − density. */
export function dareKeepMask(seed: bigint, tensorId: bigint, model: number, n: number, density: number): Uint8Array {
  const key = dareKey(seed, tensorId, model);
  const k0 = Number(key & 0xffffffffn);
  const k1 = Number(key >> 32n);
  const thr = Math.ceil((1 - density) * 16777216);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) {
    const lo = i >>> 0;
    const hi = Math.floor(i / 4294967296);
    const a = mix32((lo ^ k0) >>> 0);
    const u = mix32((a ^ ((hi + k1) >>> 0)) >>> 0) >>> 8;
    mask[i] = u >= thr ? 1 : 0;
  }
  return mask;
}

// ---------------------------------------------------------------------------
// Reference merges. Each returns the exact (f64) result and, per element, a
// magnitude scale of the terms, for the f32-accumulation part of the tolerance;
// `ambiguous` marks elements whose TIES sign election is within rounding of 0.

export interface RefResult {
  value: Float64Array;
  mag: Float64Array;
  ambiguous?: Uint8Array;
}

export function refLinear(xs: Float64Array[], w: number[], normalize: boolean): RefResult {
  const n = xs[0]!.length;
  const ws = w.reduce((a, b) => a + b, 0);
  const s = normalize ? 1 / ws : 1;
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    let acc = 0;
    let m = 0;
    xs.forEach((x, k) => {
      acc += w[k]! * x[i]!;
      m += Math.abs(w[k]! * x[i]!);
    });
    value[i] = acc * s;
    mag[i] = m * Math.abs(s);
  }
  return { value, mag };
}

/** τ_k = fround(x_k − b) (the f32 subtraction the kernels do). */
export function deltas(b: Float64Array, xs: Float64Array[]): Float64Array[] {
  return xs.map((x) => x.map((v, i) => Math.fround(v - b[i]!)));
}

export function refDeltaSum(b: Float64Array, ds: Float64Array[], lam: number[], normalize: boolean): RefResult {
  const n = b.length;
  const ls = lam.reduce((a, c) => a + c, 0);
  const s = normalize && Math.abs(ls) >= 1e-8 ? 1 / ls : 1;
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    let acc = 0;
    let m = 0;
    ds.forEach((d, k) => {
      acc += lam[k]! * d[i]!;
      m += Math.abs(lam[k]! * d[i]!);
    });
    value[i] = b[i]! + s * acc;
    mag[i] = Math.abs(b[i]!) + Math.abs(s) * m;
  }
  return { value, mag };
}

/** The kk-th largest |τ|, kk = round(density·n) (Infinity: keep nothing; 0: keep all). */
export function tiesThreshold(tau: Float64Array, density: number): number {
  const n = tau.length;
  const kk = Math.round(density * n);
  if (kk === 0) return Infinity;
  if (kk >= n) return 0;
  const a = Float64Array.from(tau, (v) => Math.abs(v)).sort();
  return a[n - kk]!;
}

export function trimTies(tau: Float64Array, density: number): Float64Array {
  const thr = tiesThreshold(tau, density);
  return tau.map((v) => (Math.abs(v) >= thr ? v : 0));
}

export function refSignElect(b: Float64Array, ds: Float64Array[], w: number[], normalize: boolean): RefResult {
  const n = b.length;
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  const ambiguous = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) {
    let e = 0;
    let absSum = 0;
    ds.forEach((d, k) => {
      e += w[k]! * d[i]!;
      absSum += Math.abs(w[k]! * d[i]!);
    });
    if (absSum > 0 && Math.abs(e) <= 1e-5 * absSum) ambiguous[i] = 1;
    const sgn = e >= 0 ? 1 : -1;
    let mixed = 0;
    let div = 0;
    let m = 0;
    ds.forEach((d, k) => {
      const wd = w[k]! * d[i]!;
      if (wd * sgn > 0) {
        mixed += wd;
        div += w[k]!;
        m += Math.abs(wd);
      }
    });
    const q = normalize && div !== 0 ? div : 1;
    value[i] = b[i]! + mixed / q;
    mag[i] = Math.abs(b[i]!) + m / Math.abs(q) + Math.abs(mixed / q);
  }
  return { value, mag, ambiguous };
}

export function refFisher(xs: Float64Array[], fs: Float64Array[], lam: number[], c: number[], floor: number): RefResult {
  const n = xs[0]!.length;
  const ls = lam.reduce((a, b) => a + b, 0);
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    let num = 0;
    let den = 0;
    let m = 0;
    xs.forEach((x, k) => {
      const fh = Math.max(Math.fround(c[k]! * fs[k]![i]!), floor);
      num += lam[k]! * fh * x[i]!;
      den += lam[k]! * fh;
      m += Math.abs(lam[k]! * fh * x[i]!);
    });
    if (den !== 0) {
      value[i] = num / den;
      mag[i] = m / Math.abs(den) + Math.abs(value[i]!);
    } else {
      let acc = 0;
      let mm = 0;
      xs.forEach((x, k) => {
        acc += lam[k]! * x[i]!;
        mm += Math.abs(lam[k]! * x[i]!);
      });
      value[i] = acc / ls;
      mag[i] = mm / Math.abs(ls);
    }
  }
  return { value, mag };
}

export function refDfCombine(b: Float64Array, w: Float64Array, s: Float64Array, m: number): RefResult {
  const n = b.length;
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    const t = s[i] !== 0 ? (m * w[i]!) / s[i]! : 0;
    value[i] = b[i]! + t;
    mag[i] = Math.abs(b[i]!) + Math.abs(t);
  }
  return { value, mag };
}

// ---------------------------------------------------------------------------
// Comparison

export interface Mismatch {
  index: number;
  got: number;
  want: number;
  tol: number;
}

/**
 * Compares `got` (output bytes) with the reference rounded to `dtype`: allowed is
 * 1 ulp of the output dtype plus 16 f32 epsilons of the term magnitudes (the
 * kernels accumulate in f32). Ambiguous elements are skipped; returns the worst
 * mismatches (empty when all pass) and how many were skipped.
 */
export function compare(got: Uint8Array, dtype: ComputeDtype, ref: RefResult): { bad: Mismatch[]; badCount: number; skipped: number } {
  const g = decode(got, dtype);
  const bad: Mismatch[] = [];
  let badCount = 0;
  let skipped = 0;
  for (let i = 0; i < g.length; i += 1) {
    if (ref.ambiguous?.[i]) {
      skipped += 1;
      continue;
    }
    const want = roundTo(ref.value[i]!, dtype);
    const tol = ulp(ref.value[i]!, dtype) + 16 * 2 ** -24 * ref.mag[i]!;
    const err = Math.abs(g[i]! - want);
    if (!(err <= tol)) {
      badCount += 1;
      if (bad.length < 5) bad.push({ index: i, got: g[i]!, want, tol });
    }
  }
  return { bad, badCount, skipped };
}
