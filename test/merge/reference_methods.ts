/**
 * Float64 references of the methods built on the lincomb / gta / sce / nearswap
 * kernels, each written from its published definition as mergekit implements it
 * (whole vectors, element loops; no Gram-matrix shortcut, no addon), with
 * dfmerge's documented conventions where they differ (see src/merge/methods/).
 */
import { dareKey, mix32, type RefResult } from './reference.js';

type Vec = Float64Array;

const dotv = (a: Vec, b: Vec, from = 0, to = a.length, stride = 1): number => {
  let s = 0;
  for (let i = from; i < to; i += stride) s += a[i]! * b[i]!;
  return s;
};

/** Per-segment element index lists: whole, rows of len, or columns of len. */
export function segmentsOf(n: number, mode: 'whole' | 'rows' | 'cols', len: number): number[][] {
  if (mode === 'whole') return [Array.from({ length: n }, (_, i) => i)];
  const rows = n / len;
  if (mode === 'rows') return Array.from({ length: rows }, (_, r) => Array.from({ length: len }, (_, c) => r * len + c));
  return Array.from({ length: len }, (_, c) => Array.from({ length: rows }, (_, r) => r * len + c));
}

function segDot(a: Vec, b: Vec, idx: number[]): number {
  let s = 0;
  for (const i of idx) s += a[i]! * b[i]!;
  return s;
}

/** out[i] = Σ c_k v_k[i] (+ base), with the magnitudes of the terms. */
function combine(vs: Vec[], coefAt: (i: number) => number[], base?: Vec): RefResult {
  const n = vs[0]!.length;
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    const c = coefAt(i);
    let acc = base ? base[i]! : 0;
    let m = base ? Math.abs(base[i]!) : 0;
    vs.forEach((v, k) => {
      acc += c[k]! * v[i]!;
      m += Math.abs(c[k]! * v[i]!);
    });
    value[i] = acc;
    mag[i] = m;
  }
  return { value, mag };
}

const tau = (b: Vec, x: Vec): Vec => x.map((v, i) => Math.fround(v - b[i]!));

/** mergekit slerp(t, v0, v1): normalise (norm > 1e-8), |dot| > 0.9995 → lerp. */
export function refSlerp(t: number, v0: Vec, v1: Vec): RefResult {
  const n0 = Math.sqrt(dotv(v0, v0));
  const n1 = Math.sqrt(dotv(v1, v1));
  const u0 = n0 > 1e-8 ? v0.map((x) => x / n0) : v0;
  const u1 = n1 > 1e-8 ? v1.map((x) => x / n1) : v1;
  const d = dotv(u0, u1);
  let c: number[];
  if (Math.abs(d) > 0.9995) c = [1 - t, t];
  else {
    const th = Math.acos(d);
    c = [Math.sin(th - th * t) / Math.sin(th), Math.sin(th * t) / Math.sin(th)];
  }
  return combine([v0, v1], () => c);
}

/** mergekit nuslerp: per segment, norms clamped at 1e-7, lerp where |sin| < 1e-8; task vectors with a base. */
export function refNuslerp(w: [number, number], x: [Vec, Vec], base: Vec | undefined, mode: 'whole' | 'rows' | 'cols', len: number): RefResult {
  const t = Math.abs(w[0] + w[1]) < 1e-6 ? 0.5 : w[1] / (w[0] + w[1]);
  const v = base ? [tau(base, x[0]), tau(base, x[1])] : [x[0], x[1]];
  const n = v[0]!.length;
  const coef: number[][] = new Array(n);
  for (const idx of segmentsOf(n, mode, len)) {
    const n0 = Math.max(Math.sqrt(segDot(v[0]!, v[0]!, idx)), 1e-7);
    const n1 = Math.max(Math.sqrt(segDot(v[1]!, v[1]!, idx)), 1e-7);
    let cos = 0;
    for (const i of idx) cos += (v[0]![i]! / n0) * (v[1]![i]! / n1);
    const th = Math.acos(Math.min(1, Math.max(-1, cos)));
    const s = Math.sin(th);
    const c = Math.abs(s) < 1e-8 ? [1 - t, t] : [Math.sin((1 - t) * th) / s, Math.sin(t * th) / s];
    for (const i of idx) coef[i] = c;
  }
  return combine(v, (i) => coef[i]!, base);
}

/** mergekit multislerp over whole vectors. */
export function refMultislerp(weights: number[], xs: Vec[], base: Vec | undefined, normalizeWeights = true, eps = 1e-8): RefResult {
  if (xs.length === 1) return combine(xs, () => [1]);
  const w = normalizeWeights ? weights.map((x) => x / weights.reduce((a, b) => a + b, 0)) : weights;
  const v = base ? xs.map((x) => tau(base, x)) : xs;
  const n = v[0]!.length;
  const norms = v.map((x) => Math.sqrt(dotv(x, x)));
  const units = v.map((x, k) => x.map((e) => e / (norms[k]! + eps)));
  const mean = new Float64Array(n);
  units.forEach((u, k) => u.forEach((e, i) => { mean[i] += e * w[k]!; }));
  const mn = Math.sqrt(dotv(mean, mean));
  if (mn < eps) return combine(v, () => [w[0]!, w[1]!], base);
  const m = mean.map((e) => e / mn);
  const tangent = new Float64Array(n);
  units.forEach((u, k) => {
    const d = dotv(u, m);
    u.forEach((e, i) => { tangent[i] += w[k]! * (e - d * m[i]!); });
  });
  const tn = Math.sqrt(dotv(tangent, tangent)) + eps;
  const avg = norms.reduce((a, x, k) => a + x * w[k]!, 0);
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    const r = avg * (m[i]! * Math.cos(tn) + (tangent[i]! * Math.sin(tn)) / tn);
    value[i] = (base ? base[i]! : 0) + r;
    let mm = base ? Math.abs(base[i]!) : 0;
    // the result is a combination of the inputs with coefficients of size ~ avg/‖v_k‖
    v.forEach((x, k) => { mm += Math.abs((avg / (norms[k]! + eps)) * x[i]!) * 2; });
    mag[i] = mm;
  }
  return { value, mag };
}

/** mergekit karcher_merge_tensors with equal weights, on whole vectors. */
export function refKarcher(xs: Vec[], maxIter = 10, tol = 1e-5): RefResult {
  const k = xs.length;
  if (k === 1) return combine(xs, () => [1]);
  const n = xs[0]!.length;
  const alphas = xs.map(() => 1 / k);
  const norms = xs.map((x) => Math.sqrt(dotv(x, x)));
  const units = xs.map((x, q) => (norms[q] === 0 ? new Float64Array(n) : x.map((e) => e / norms[q]!)));
  const valid = norms.map((x, q) => (x > tol ? q : -1)).filter((q) => q >= 0);
  if (valid.length === 0) return { value: new Float64Array(n), mag: new Float64Array(n) };
  const asum = valid.reduce((a, q) => a + alphas[q]!, 0);
  let u = new Float64Array(n);
  for (const q of valid) units[q]!.forEach((e, i) => { u[i] += (alphas[q]! / asum) * e; });
  const nu = Math.sqrt(dotv(u, u));
  u = nu < tol ? Float64Array.from(units[valid[0]!]!) : u.map((e) => e / nu);
  for (let it = 0; it < maxIter; it += 1) {
    const T = new Float64Array(n);
    for (const q of valid) {
      const d = Math.min(1, Math.max(-1, dotv(u, units[q]!)));
      const th = Math.acos(d);
      if (th < tol) continue;
      const f = ((alphas[q]! / asum) * th) / Math.sin(th);
      units[q]!.forEach((e, i) => { T[i] += f * (e - d * u[i]!); });
    }
    const nT = Math.sqrt(dotv(T, T));
    if (nT < tol) break;
    u = u.map((e, i) => Math.cos(nT) * e + (Math.sin(nT) * T[i]!) / nT);
    const un = Math.sqrt(dotv(u, u));
    if (un > tol) u = u.map((e) => e / un);
  }
  const s = alphas.reduce((a, al, q) => a + al * norms[q]!, 0);
  const value = u.map((e) => s * e);
  const mag = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    let m = 0;
    xs.forEach((x) => { m += 4 * Math.abs(x[i]!); });
    mag[i] = m + Math.abs(value[i]!);
  }
  return { value, mag };
}

/** mergekit model stock: mean pairwise cosine of the task vectors per segment, w = t·avg + (1 − t)·w_0. */
export function refModelStock(base: Vec, xs: Vec[], mode: 'whole' | 'rows', len: number): RefResult {
  const N = xs.length;
  const n = base.length;
  const off = xs.map((x) => tau(base, x));
  const tAt = new Float64Array(n);
  for (const idx of segmentsOf(n, mode, len)) {
    let sum = 0;
    let pairs = 0;
    for (let i = 0; i < N; i += 1) {
      for (let j = i + 1; j < N; j += 1) {
        const np = Math.sqrt(segDot(off[i]!, off[i]!, idx)) * Math.sqrt(segDot(off[j]!, off[j]!, idx));
        sum += Math.min(1, Math.max(-1, segDot(off[i]!, off[j]!, idx) / Math.max(np, 1e-6)));
        pairs += 1;
      }
    }
    const cos = sum / pairs;
    const t = (N * cos) / (1 + (N - 1) * cos);
    for (const i of idx) tAt[i] = t;
  }
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    let avg = 0;
    let m = 0;
    xs.forEach((x, q) => { avg += x[i]! / N; m += Math.abs((tAt[i]! / N) * off[q]![i]!); });
    value[i] = tAt[i]! * avg + (1 - tAt[i]!) * base[i]!;
    mag[i] = Math.abs(base[i]!) + m;
  }
  return { value, mag };
}

/** The 24-bit hash of merge_rng.h for element i under key. */
export function u24(key: bigint, i: number): number {
  const k0 = Number(key & 0xffffffffn);
  const k1 = Number(key >> 32n);
  const hi = Math.floor(i / 4294967296);
  const a = mix32(((i >>> 0) ^ k0) >>> 0);
  return mix32((a ^ ((hi + k1) >>> 0)) >>> 0) >>> 8;
}

/** Keep mask of DELLA's MagPrune for one model: stable rank by |τ| in each row; keep iff u24 < p·2^24. */
export function dellaMask(t: Vec, rowLen: number, density: number, epsilon: number, key: bigint): Uint8Array {
  const n = t.length;
  const keep = new Uint8Array(n);
  if (density >= 1) return keep.fill(1);
  for (let r0 = 0; r0 < n; r0 += rowLen) {
    const idx = Array.from({ length: rowLen }, (_, j) => r0 + j);
    idx.sort((a, b) => Math.abs(t[a]!) - Math.abs(t[b]!) || a - b);
    idx.forEach((i, pos) => {
      const rankNorm = rowLen > 1 ? pos / (rowLen - 1) : 0;
      const p = density - epsilon + rankNorm * 2 * epsilon;
      if (u24(key, i) < p * 16777216) keep[i] = 1;
    });
  }
  return keep;
}

/** The bands of breadcrumbs/TIES by dfmerge's convention: keep iff lo ≤ |τ| < hi (values of the kk-th largest). */
export function bandMask(t: Vec, keep: number, drop: number): Uint8Array {
  const n = t.length;
  const a = Float64Array.from(t, (v) => Math.abs(v)).sort().reverse();
  const kth = (kk: number) => (kk === 0 ? Infinity : kk >= n ? 0 : a[kk - 1]!);
  const lo = keep + drop === 0 ? Infinity : kth(keep + drop);
  const hi = drop === 0 ? Infinity : kth(drop);
  return Uint8Array.from(t, (v) => (Math.abs(v) >= lo && (drop === 0 || Math.abs(v) < hi) ? 1 : 0));
}

/** L1 rescale factor Σ|τ| / Σ|kept τ| (1 when either is < 1e-7), rounded to f32 as the kernel uses it. */
export function l1Factor(t: Vec, keep: Uint8Array): number {
  let before = 0;
  let after = 0;
  t.forEach((v, i) => { before += Math.abs(v); if (keep[i]) after += Math.abs(v); });
  return before < 1e-7 || after < 1e-7 ? 1 : Math.fround(before / after);
}

/** gta: d_k = keep ⊙ τ_k · rs_k, optional sign consensus, λ, normalize. */
export function refGta(base: Vec, xs: Vec[], keeps: Uint8Array[], rs: number[], w: number[], consensus: boolean, normalize: boolean, lambda: number): RefResult {
  const n = base.length;
  const ds = xs.map((x, k) => tau(base, x).map((v, i) => (keeps[k]![i] ? Math.fround(v * rs[k]!) : 0)));
  const ws = w.reduce((a, b) => a + b, 0);
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  const ambiguous = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) {
    let e = 0;
    let abs = 0;
    ds.forEach((d, k) => { e += w[k]! * d[i]!; abs += Math.abs(w[k]! * d[i]!); });
    let mixed = 0;
    let div = 0;
    let m = 0;
    if (consensus) {
      if (abs > 0 && Math.abs(e) <= 1e-5 * abs) ambiguous[i] = 1; // weighted sums: f32 and f64 may disagree even at 0
      const sgn = e >= 0 ? 1 : -1;
      ds.forEach((d, k) => {
        const wd = w[k]! * d[i]!;
        if (wd * sgn > 0) { mixed += wd; div += w[k]!; m += Math.abs(wd); }
      });
      if (div === 0) div = 1;
    } else {
      mixed = e;
      m = abs;
      div = Math.abs(ws) < 1e-8 ? 1 : ws;
    }
    const q = normalize ? div : 1;
    value[i] = base[i]! + (lambda * mixed) / q;
    mag[i] = Math.abs(base[i]!) + (Math.abs(lambda) * (m + Math.abs(mixed))) / Math.abs(q);
  }
  return { value, mag, ambiguous };
}

/** SCE with dfmerge's f32 variance and the kept-ties selection. */
export function refSce(base: Vec, xs: Vec[], topk: number): RefResult {
  const k = xs.length;
  const n = base.length;
  const ts = xs.map((x) => tau(base, x));
  const f = Math.fround;
  const variance = (i: number) => {
    let s = ts[0]![i]!;
    for (let q = 1; q < k; q += 1) s = f(s + ts[q]![i]!);
    const mu = f(s / k);
    let v = f((ts[0]![i]! - mu) * (ts[0]![i]! - mu));
    for (let q = 1; q < k; q += 1) v = f(v + f(f(ts[q]![i]! - mu) * f(ts[q]![i]! - mu)));
    return f(v / k);
  };
  const keep = new Uint8Array(n).fill(1);
  if (topk < 1) {
    const vars = Float64Array.from({ length: n }, (_, i) => variance(i));
    const nnz = vars.reduce((a, v) => a + (v !== 0 ? 1 : 0), 0);
    const kk = Math.floor(nnz * topk);
    const sorted = Float64Array.from(vars).sort().reverse();
    const thr = kk === 0 ? Infinity : sorted[kk - 1]!;
    vars.forEach((v, i) => { keep[i] = v >= thr ? 1 : 0; });
  }
  const ds = ts.map((t) => t.map((v, i) => (keep[i] ? v : 0)));
  const means = ds.map((d) => d.reduce((a, v) => a + v * v, 0) / n);
  const total = means.reduce((a, b) => a + b, 0);
  const w = means.map((m) => f(Math.abs(total) < 1e-6 ? 1 / k : m / total));
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  const ambiguous = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) {
    let e = 0;
    let abs = 0;
    ds.forEach((d) => { e += d[i]!; abs += Math.abs(d[i]!); });
    if (e !== 0 && Math.abs(e) <= 1e-5 * abs) ambiguous[i] = 1; // exact zeros elect + on both sides
    const sgn = e >= 0 ? 1 : -1;
    let num = 0;
    let den = 0;
    let m = 0;
    ds.forEach((d, q) => {
      if (d[i]! * sgn > 0) { num += d[i]! * w[q]!; den += w[q]!; m += Math.abs(d[i]! * w[q]!); }
    });
    const dd = Math.max(den, f(1e-6));
    value[i] = base[i]! + num / dd;
    mag[i] = Math.abs(base[i]!) + (m + Math.abs(num)) / dd;
  }
  return { value, mag, ambiguous };
}

/** mergekit nearswap: w = clamp(t / max(|b − x|, 1e-6), 0, 1), w x + (1 − w) b. */
export function refNearswap(t: number, base: Vec, x: Vec): RefResult {
  const n = base.length;
  const value = new Float64Array(n);
  const mag = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    const ad = Math.abs(Math.fround(base[i]! - x[i]!));
    const w = Math.min(1, Math.max(0, t / Math.max(ad, Math.fround(1e-6))));
    value[i] = w * x[i]! + (1 - w) * base[i]!;
    mag[i] = 2 * (Math.abs(x[i]!) + Math.abs(base[i]!));
  }
  return { value, mag };
}

export { dareKey };
