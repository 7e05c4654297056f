/**
 * Truncated SVD of a dense f32 matrix by randomised subspace iteration (Halko,
 * Martinsson & Tropp 2011, Alg. 4.4 with q = 2 power steps and 8 oversamples),
 * the small core by cyclic Jacobi on B Bᵀ; f64 throughout. Exact (to rounding)
 * when the rank is at most rank + 8.
 */

/** Orthonormalises the k columns of y (m × k, row-major) in place (modified Gram–Schmidt, twice). */
function orthonormalize(y: Float64Array, m: number, k: number): void {
  for (let pass = 0; pass < 2; pass += 1) {
    for (let j = 0; j < k; j += 1) {
      for (let p = 0; p < j; p += 1) {
        let d = 0;
        for (let i = 0; i < m; i += 1) d += y[i * k + j]! * y[i * k + p]!;
        for (let i = 0; i < m; i += 1) y[i * k + j] -= d * y[i * k + p]!;
      }
      let nn = 0;
      for (let i = 0; i < m; i += 1) nn += y[i * k + j]! ** 2;
      const inv = nn > 1e-300 ? 1 / Math.sqrt(nn) : 0;
      for (let i = 0; i < m; i += 1) y[i * k + j] *= inv;
    }
  }
}

/** a (m × n) times x (n × k) → m × k. */
function mul(a: Float32Array, m: number, n: number, x: Float64Array, k: number): Float64Array {
  const out = new Float64Array(m * k);
  for (let i = 0; i < m; i += 1) {
    const o = i * k;
    for (let l = 0; l < n; l += 1) {
      const v = a[i * n + l]!;
      if (v === 0) continue;
      const xo = l * k;
      for (let j = 0; j < k; j += 1) out[o + j] += v * x[xo + j]!;
    }
  }
  return out;
}

/** aᵀ (n × m) times y (m × k) → n × k. */
function mulT(a: Float32Array, m: number, n: number, y: Float64Array, k: number): Float64Array {
  const out = new Float64Array(n * k);
  for (let i = 0; i < m; i += 1) {
    const yo = i * k;
    for (let l = 0; l < n; l += 1) {
      const v = a[i * n + l]!;
      if (v === 0) continue;
      const o = l * k;
      for (let j = 0; j < k; j += 1) out[o + j] += v * y[yo + j]!;
    }
  }
  return out;
}

/** Eigen-decomposition of a symmetric k × k matrix (cyclic Jacobi): values, and vectors as columns. */
function jacobi(c: Float64Array, k: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(c);
  const v = new Float64Array(k * k);
  for (let i = 0; i < k; i += 1) v[i * k + i] = 1;
  for (let sweep = 0; sweep < 100; sweep += 1) {
    let off = 0;
    for (let p = 0; p < k; p += 1) for (let q = p + 1; q < k; q += 1) off += a[p * k + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < k; p += 1) {
      for (let q = p + 1; q < k; q += 1) {
        const apq = a[p * k + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * k + q]! - a[p * k + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const cs = 1 / Math.sqrt(t * t + 1);
        const sn = t * cs;
        for (let r = 0; r < k; r += 1) {
          const arp = a[r * k + p]!;
          const arq = a[r * k + q]!;
          a[r * k + p] = cs * arp - sn * arq;
          a[r * k + q] = sn * arp + cs * arq;
        }
        for (let r = 0; r < k; r += 1) {
          const apr = a[p * k + r]!;
          const aqr = a[q * k + r]!;
          a[p * k + r] = cs * apr - sn * aqr;
          a[q * k + r] = sn * apr + cs * aqr;
        }
        for (let r = 0; r < k; r += 1) {
          const vrp = v[r * k + p]!;
          const vrq = v[r * k + q]!;
          v[r * k + p] = cs * vrp - sn * vrq;
          v[r * k + q] = sn * vrp + cs * vrq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: k }, (_, i) => a[i * k + i]!), vectors: v };
}

export interface TruncatedSvd {
  readonly rank: number;
  /** m × rank, orthonormal columns. */
  readonly u: Float64Array;
  readonly s: Float64Array;
  /** rank × n, orthonormal rows. */
  readonly vt: Float64Array;
}

/** The leading `rank` singular triplets of a (m × n); `seed` fixes the random test matrix. */
export function truncatedSvd(a: Float32Array, m: number, n: number, rank: number, seed = 0): TruncatedSvd {
  const r = Math.min(rank, m, n);
  const k = Math.min(r + 8, m, n);
  let state = (seed * 2654435761 + 1) >>> 0;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 4294967296;
  };
  const omega = Float64Array.from({ length: n * k }, () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()));
  let y = mul(a, m, n, omega, k);
  orthonormalize(y, m, k);
  for (let q = 0; q < 2; q += 1) {
    const z = mulT(a, m, n, y, k);
    orthonormalize(z, n, k);
    y = mul(a, m, n, z, k);
    orthonormalize(y, m, k);
  }
  // B = Yᵀ A (k × n), stored as Bᵀ = Aᵀ Y (n × k)
  const bt = mulT(a, m, n, y, k);
  const c = new Float64Array(k * k);
  for (let l = 0; l < n; l += 1) {
    for (let i = 0; i < k; i += 1) for (let j = i; j < k; j += 1) c[i * k + j] += bt[l * k + i]! * bt[l * k + j]!;
  }
  for (let i = 0; i < k; i += 1) for (let j = 0; j < i; j += 1) c[i * k + j] = c[j * k + i]!;
  const { values, vectors } = jacobi(c, k);
  const order = Array.from({ length: k }, (_, i) => i).sort((p, q) => values[q]! - values[p]!).slice(0, r);
  const s = Float64Array.from(order, (i) => Math.sqrt(Math.max(0, values[i]!)));
  const u = new Float64Array(m * r);
  for (let i = 0; i < m; i += 1) {
    for (let j = 0; j < r; j += 1) {
      let acc = 0;
      for (let p = 0; p < k; p += 1) acc += y[i * k + p]! * vectors[p * k + order[j]!]!;
      u[i * r + j] = acc;
    }
  }
  // Vᵀ = diag(1/σ) Wᵀ B
  const vt = new Float64Array(r * n);
  for (let j = 0; j < r; j += 1) {
    const sj = s[j]!;
    if (!(sj > 0)) continue;
    for (let l = 0; l < n; l += 1) {
      let acc = 0;
      for (let p = 0; p < k; p += 1) acc += vectors[p * k + order[j]!]! * bt[l * k + p]!;
      vt[j * n + l] = acc / sj;
    }
  }
  return { rank: r, u, s, vt };
}
