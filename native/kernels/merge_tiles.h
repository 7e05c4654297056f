// The CPU merge tile kernels: one formula each (docs/design.md §1), over one small tile
// of a tensor (cache resident), vectorisable. Loops run over the model index
// outside and the element index inside, so each inner loop is a straight SIMD
// stream; f32 arithmetic throughout.
//
// Inputs read from storage are "sources" S with operator[](i) -> float:
//   F32Src  an f32 span (scratch, or any float array),
//   RawF32Src / BF16Src  the tensor's own F32 / BF16 bytes, converted inside the loop
//   (no staging pass; unaligned is fine).
// Intermediate task vectors and the result are f32 spans. The CUDA twins are in merge.cu.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "kernels/convert.h"
#include "kernels/merge_methods.h"
#include "kernels/merge_rng.h"

namespace dfm {

struct F32Src {
  const float* p;
  float operator[](size_t i) const { return p[i]; }
};

struct RawF32Src {
  const uint8_t* p;
  float operator[](size_t i) const {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
};

struct BF16Src {
  const uint8_t* p;
  float operator[](size_t i) const {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return bits_to_f32(static_cast<uint32_t>(h) << 16);
  }
};

// Weighted sum: out = Σ_k w_k x_k (the first term assigned, the rest added in model order).
template <class S>
void weighted_sum_tile(const S* x, const float* w, int k, float* __restrict out, size_t n) {
  {
    const S x0 = x[0];
    const float w0 = w[0];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) out[i] = w0 * x0[i];
  }
  for (int m = 1; m < k; ++m) {
    const S xm = x[m];
    const float wm = w[m];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) out[i] += wm * xm[i];
  }
}

// linear: out = s · Σ_k w_k x_k  (mergekit "linear"; s = 1/Σw when normalising, else 1)
template <class S>
void linear_tile(const S* x, const float* w, int k, float s, float* __restrict out, size_t n) {
  weighted_sum_tile(x, w, k, out, n);
  if (s != 1.0f) {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) out[i] *= s;
  }
}

// Task arithmetic (Ilharco et al.): out = b + s · Σ_k λ_k (x_k − b)
template <class S>
void task_arithmetic_tile(S b, const S* x, const float* lam, int k, float s, float* __restrict out, size_t n) {
  {
    const S x0 = x[0];
    const float l0 = lam[0];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) out[i] = l0 * (x0[i] - b[i]);
  }
  for (int m = 1; m < k; ++m) {
    const S xm = x[m];
    const float lm = lam[m];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) out[i] += lm * (xm[i] - b[i]);
  }
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = b[i] + s * out[i];
}

// TIES trim (Yadav et al.): d = τ = x − b where |τ| is among the top-density
// fraction of the tensor, i.e. bits(|τ|) ≥ thr (f32 bit patterns of non-negative
// floats order like their values; thr from ties_thresholds), else 0.
template <class S>
void ties_trim_tile(S b, S x, uint32_t thr, float* __restrict d, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    const float t = x[i] - b[i];
    uint32_t u;
    std::memcpy(&u, &t, 4);
    d[i] = (u & 0x7fffffffu) >= thr ? t : 0.0f;
  }
}

// DARE (Yu et al.): d = m ⊙ (x − b) / (1 − p), m_i = [dare_u24(key, first + i) ≥ keep_thr]
// (Bernoulli(1 − p) from the counter-based hash of merge_rng.h).
template <class S>
void dare_drop_tile(S b, S x, uint64_t key, uint32_t keep_thr, float keep_prob, uint64_t first,
                    float* __restrict d, size_t n) {
  if (n == 0) return;
  const uint32_t hi = static_cast<uint32_t>(first >> 32);
  if (hi == static_cast<uint32_t>((first + n - 1) >> 32)) {
    const uint32_t lo0 = static_cast<uint32_t>(first);
    const uint32_t k0 = static_cast<uint32_t>(key);
    const uint32_t k1 = hi + static_cast<uint32_t>(key >> 32);
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      const uint32_t u = mix32(mix32((lo0 + static_cast<uint32_t>(i)) ^ k0) ^ k1) >> 8;  // = dare_u24(key, first+i)
      const float t = (x[i] - b[i]) / keep_prob;
      d[i] = u >= keep_thr ? t : 0.0f;
    }
  } else {  // the tile straddles a 2^32 element boundary
    for (size_t i = 0; i < n; ++i) {
      const float t = (x[i] - b[i]) / keep_prob;
      d[i] = dare_u24(key, first + i) >= keep_thr ? t : 0.0f;
    }
  }
}

// Task arithmetic over formed task vectors (DARE): out = b + s · Σ_k λ_k d_k
template <class S>
void delta_sum_tile(S b, const float* const* d, const float* lam, int k, float s, float* __restrict out, size_t n) {
  weighted_sum_tile(d, lam, k, out, n);
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = b[i] + s * out[i];
}

// TIES "elect" and "disjoint merge", as mergekit's sum consensus:
//   sign = +1 if Σ_k w_k d_k ≥ 0 else −1
//   mixed = Σ_k [sign(w_k d_k) = sign] w_k d_k,  div = Σ_k [sign(w_k d_k) = sign] w_k  (0 → 1)
//   out = b + (normalize ? mixed / div : mixed)
// `tmp` is scratch of 2n floats.
template <class S>
void sign_elect_tile(S b, const float* const* d, const float* w, int k, bool normalize, float* __restrict out,
                     float* __restrict tmp, size_t n) {
  float* __restrict sgn = tmp;
  float* __restrict div = tmp + n;
  weighted_sum_tile(d, w, k, sgn, n);
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    sgn[i] = sgn[i] >= 0.0f ? 1.0f : -1.0f;
    out[i] = 0.0f;
    div[i] = 0.0f;
  }
  for (int m = 0; m < k; ++m) {
    const float* __restrict dm = d[m];
    const float wm = w[m];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      const float wd = wm * dm[i];
      const bool agree = wd * sgn[i] > 0.0f;
      out[i] += agree ? wd : 0.0f;
      div[i] += agree ? wm : 0.0f;
    }
  }
  if (normalize) {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) out[i] = b[i] + out[i] / (div[i] == 0.0f ? 1.0f : div[i]);
  } else {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) out[i] = b[i] + out[i];
  }
}

// Fisher merging (Matena & Raffel, eq. 3): F̂_k = max(c_k F_k, floor),
//   out = Σ_k λ_k F̂_k x_k / Σ_k λ_k F̂_k, or Σ_k λ_k x_k / Σ_k λ_k where the denominator is 0.
// `tmp` is scratch of n floats.
template <class S>
void fisher_tile(const S* x, const S* f, const float* lam, const float* c, float floor, int k, float inv_lam_sum,
                 float* __restrict out, float* __restrict tmp, size_t n) {
  float* __restrict den = tmp;
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    out[i] = 0.0f;
    den[i] = 0.0f;
  }
  for (int m = 0; m < k; ++m) {
    const S xm = x[m];
    const S fm = f[m];
    const float lm = lam[m], cm = c[m];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      float fh = cm * fm[i];
      fh = fh < floor ? floor : fh;
      const float lf = lm * fh;
      out[i] += lf * xm[i];
      den[i] += lf;
    }
  }
  int any_zero = 0;
#pragma omp simd reduction(| : any_zero)
  for (size_t i = 0; i < n; ++i) {
    any_zero |= den[i] == 0.0f ? 1 : 0;
    out[i] = out[i] / (den[i] == 0.0f ? 1.0f : den[i]);
  }
  if (any_zero) {
    // No Fisher mass anywhere: the λ-weighted average.
    for (size_t i = 0; i < n; ++i) {
      if (den[i] != 0.0f) continue;
      float acc = 0.0f;
      for (int m = 0; m < k; ++m) acc += lam[m] * x[m][i];
      out[i] = acc * inv_lam_sum;
    }
  }
}

// DF-Merge (docs/design.md §1): θ* = θ_pre + M · (Σ_i F_i ⊙ λ_i τ_i) ⊘ (Σ_i F_i) = b + M · W ⊘ S (b where S = 0)
template <class S>
void df_combine_tile(S b, S w, S s, float m, float* __restrict out, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = b[i] + (s[i] != 0.0f ? m * w[i] / s[i] : 0.0f);
}

// DF-Merge accumulators: S += F_i, W += F_i ⊙ λ_i τ_i
inline void df_accumulate_tile(const float* __restrict f, const float* __restrict d, float lam, float* __restrict s,
                               float* __restrict w, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    s[i] += f[i];
    w[i] += f[i] * (lam * d[i]);
  }
}

// d[i] = 0 where bit (first + i) of `bits` (LSB first within each byte) is 0.
inline void apply_mask_bits(const uint8_t* bits, uint64_t first, float* __restrict d, size_t n) {
  size_t i = 0;
#if defined(__AVX512F__)
  // 16 bits at a time as an AVX-512 mask; the third byte is read only when the 16
  // bits reach into it (so nothing past the tensor's last byte is read)
  for (; i + 16 <= n; i += 16) {
    const uint64_t g = first + i;
    const uint8_t* p = bits + (g >> 3);
    const uint32_t s = static_cast<uint32_t>(g & 7);
    const uint32_t w = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                       (s != 0 ? static_cast<uint32_t>(p[2]) << 16 : 0u);
    _mm512_storeu_ps(d + i, _mm512_maskz_mov_ps(static_cast<__mmask16>(w >> s), _mm512_loadu_ps(d + i)));
  }
#endif
  for (; i < n; ++i) {
    const uint64_t g = first + i;
    if (((bits[g >> 3] >> (g & 7)) & 1u) == 0) d[i] = 0.0f;
  }
}

// gta_tile for K models in one loop over the elements (the per-element sums in
// registers, where the model-outer loops stored and reloaded d, the sign, mixed
// and div arrays once per model): the same operations in the same order as
// gta_elem. `dv(q, i)` gives d_q of element i: from the inputs (BandD, TIES'
// and breadcrumbs' magnitude band) or from d arrays filled before (ArrayD).
template <class S, int K>
struct BandD {  // (held by value: the loop vectorises only with no pointer to chase)
  S x[K];
  S b;
  uint32_t lo[K], hi[K];
  float rs[K];
  BandD(const ElemParams& p, S b_, const S* xs) : b(b_) {
    for (int q = 0; q < K; ++q) {
      x[q] = xs[q];
      lo[q] = p.thr_lo[q];
      hi[q] = p.thr_hi[q];
      rs[q] = p.rs[q];
    }
  }
  float operator()(int q, size_t i) const {
    const float tau = x[q][i] - b[i];
    uint32_t u;
    std::memcpy(&u, &tau, 4);
    u &= 0x7fffffffu;
    return u >= lo[q] && u < hi[q] ? tau * rs[q] : 0.0f;
  }
};
struct ArrayD {
  const float* const* d;
  float operator()(int q, size_t i) const { return d[q][i]; }
};

template <int K, class S, class D>
void gta_mix_k(const ElemParams& p, S b, D dv, float* __restrict out, size_t n) {
  float w[K];
  for (int q = 0; q < K; ++q) w[q] = p.w[q];
  const bool norm = p.normalize != 0, lam = p.lambda != 1.0f;
  const float lambda = p.lambda;
  if (p.consensus) {
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      float dq[K];
      for (int q = 0; q < K; ++q) dq[q] = dv(q, i);
      float e = w[0] * dq[0];
      for (int q = 1; q < K; ++q) e += w[q] * dq[q];
      const float sgn = e >= 0.0f ? 1.0f : -1.0f;
      float mixed = 0.0f, div = 0.0f;
      for (int q = 0; q < K; ++q) {
        const float wd = w[q] * dq[q];
        const bool agree = wd * sgn > 0.0f;
        mixed += agree ? wd : 0.0f;
        div += agree ? w[q] : 0.0f;
      }
      float v = mixed;
      if (norm) v = v / (div == 0.0f ? 1.0f : div);
      if (lam) v = v * lambda;
      out[i] = b[i] + v;
    }
    return;
  }
  const float div = p.div_const;
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    float mixed = w[0] * dv(0, i);
    for (int q = 1; q < K; ++q) mixed += w[q] * dv(q, i);
    float v = mixed;
    if (norm) v = v / div;
    if (lam) v = v * lambda;
    out[i] = b[i] + v;
  }
}

// The fused tiles' model counts: calls f(std::integral_constant<int, K>{}) for
// k = K in 1..8 and returns true; false for any other k (the model-outer loops
// do those).
template <class F>
bool with_fused_k(int k, F&& f) {
  switch (k) {
#define DFM_FUSED_K(K)                  \
  case K:                               \
    f(std::integral_constant<int, K>{}); \
    return true;
    DFM_FUSED_K(1) DFM_FUSED_K(2) DFM_FUSED_K(3) DFM_FUSED_K(4) DFM_FUSED_K(5) DFM_FUSED_K(6) DFM_FUSED_K(7) DFM_FUSED_K(8)
#undef DFM_FUSED_K
    default:
      return false;
  }
}

// The fused tile for 1..8 models, d_q from make_d(std::integral_constant<int, K>)
// (a BandD or an ArrayD, by value); false (the model-outer loops do it) for more.
template <class S, class MakeD>
bool gta_mix_fused(const ElemParams& p, S b, MakeD make_d, float* __restrict out, size_t n) {
  return with_fused_k(p.k, [&](auto kc) { gta_mix_k<decltype(kc)::value>(p, b, make_d(kc), out, n); });
}

// gta_elem (merge_methods.h) over a tile, with the model loop outside and the
// element loop inside so that each loop is a straight SIMD stream: the same
// operations in the same order per element, so the result is gta_elem's.
// Sparsification: band (TIES magnitude, breadcrumbs), random (DARE: the hash of
// dare_u24 inlined as in dare_drop_tile), mask (DELLA's precomputed bits).
// `d` holds k tiles of kTile floats (stride ld), `tmp` 2n floats.
template <class S>
void gta_tile(const ElemParams& p, S b, const S* x, uint64_t first, float* const* d, float* __restrict out,
              float* __restrict tmp, size_t n) {
  const int k = p.k;
  // TIES' and breadcrumbs' band read straight from the inputs
  if (p.sparsify == 0 && gta_mix_fused(p, b, [&](auto kc) { return BandD<S, decltype(kc)::value>(p, b, x); }, out, n)) {
    return;
  }
  const uint32_t hi = static_cast<uint32_t>(first >> 32);
  const bool one_block = n == 0 || hi == static_cast<uint32_t>((first + n - 1) >> 32);
  for (int q = 0; q < k; ++q) {
    const S xq = x[q];
    float* __restrict dq = d[q];
    const float rs = p.rs[q];
    if (p.sparsify == 0) {
      const uint32_t lo = p.thr_lo[q], top = p.thr_hi[q];
#pragma omp simd
      for (size_t i = 0; i < n; ++i) {
        const float tau = xq[i] - b[i];
        uint32_t u;
        std::memcpy(&u, &tau, 4);
        u &= 0x7fffffffu;
        dq[i] = u >= lo && u < top ? tau * rs : 0.0f;
      }
    } else if (p.sparsify == 1 && one_block) {
      const uint32_t lo0 = static_cast<uint32_t>(first);
      const uint32_t k0 = static_cast<uint32_t>(p.key[q]);
      const uint32_t k1 = hi + static_cast<uint32_t>(p.key[q] >> 32);
      const uint32_t thr = p.keep_thr[q];
#pragma omp simd
      for (size_t i = 0; i < n; ++i) {
        const uint32_t u = mix32(mix32((lo0 + static_cast<uint32_t>(i)) ^ k0) ^ k1) >> 8;  // = dare_u24(key, first+i)
        const float tau = xq[i] - b[i];
        dq[i] = u >= thr ? tau * rs : 0.0f;
      }
    } else if (p.sparsify == 1) {  // the tile straddles a 2^32 element boundary
      for (size_t i = 0; i < n; ++i) {
        const float tau = xq[i] - b[i];
        dq[i] = dare_u24(p.key[q], first + i) >= p.keep_thr[q] ? tau * rs : 0.0f;
      }
    } else {
      // τ · rs everywhere, then zeroed where the mask's bit is 0 (apply_mask_bits).
#pragma omp simd
      for (size_t e = 0; e < n; ++e) dq[e] = (xq[e] - b[e]) * rs;
      apply_mask_bits(p.mask + static_cast<uint64_t>(q) * p.mask_stride, first, dq, n);
    }
  }
  if (gta_mix_fused(p, b, [&](auto) { return ArrayD{d}; }, out, n)) return;
  float* __restrict mixed = out;
  if (p.consensus) {
    float* __restrict sgn = tmp;
    float* __restrict div = tmp + n;
    {
      const float* __restrict d0 = d[0];
      const float w0 = p.w[0];
#pragma omp simd
      for (size_t i = 0; i < n; ++i) sgn[i] = w0 * d0[i];
    }
    for (int q = 1; q < k; ++q) {
      const float* __restrict dq = d[q];
      const float wq = p.w[q];
#pragma omp simd
      for (size_t i = 0; i < n; ++i) sgn[i] += wq * dq[i];
    }
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      sgn[i] = sgn[i] >= 0.0f ? 1.0f : -1.0f;
      mixed[i] = 0.0f;
      div[i] = 0.0f;
    }
    for (int q = 0; q < k; ++q) {
      const float* __restrict dq = d[q];
      const float wq = p.w[q];
#pragma omp simd
      for (size_t i = 0; i < n; ++i) {
        const float wd = wq * dq[i];
        const bool agree = wd * sgn[i] > 0.0f;
        mixed[i] += agree ? wd : 0.0f;
        div[i] += agree ? wq : 0.0f;
      }
    }
    const bool norm = p.normalize != 0, lam = p.lambda != 1.0f;
    const float lambda = p.lambda;
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      float v = mixed[i];
      if (norm) v = v / (div[i] == 0.0f ? 1.0f : div[i]);
      if (lam) v = v * lambda;
      out[i] = b[i] + v;
    }
    return;
  }
  {
    const float* __restrict d0 = d[0];
    const float w0 = p.w[0];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) mixed[i] = w0 * d0[i];
  }
  for (int q = 1; q < k; ++q) {
    const float* __restrict dq = d[q];
    const float wq = p.w[q];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) mixed[i] += wq * dq[i];
  }
  const bool norm = p.normalize != 0, lam = p.lambda != 1.0f;
  const float div = p.div_const, lambda = p.lambda;
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    float v = mixed[i];
    if (norm) v = v / div;
    if (lam) v = v * lambda;
    out[i] = b[i] + v;
  }
}

// out = d[0] + d[1] + … + d[k−1] over n elements (added in model order).
inline void tile_sum(const float* const* d, int k, float* __restrict out, size_t n) {
  {
    const float* __restrict d0 = d[0];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) out[i] = d0[i];
  }
  for (int q = 1; q < k; ++q) {
    const float* __restrict dq = d[q];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) out[i] += dq[i];
  }
}

// sce_variance (merge_methods.h) of k task-vector tiles d[0..k) over n elements,
// into var: the same operations in the same order per element (mean in `mu`).
inline void sce_variance_tile(const float* const* d, int k, float* __restrict mu, float* __restrict var, size_t n) {
  const float kf = static_cast<float>(k);
  tile_sum(d, k, mu, n);
  {
    const float* __restrict d0 = d[0];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      mu[i] = mu[i] / kf;
      var[i] = (d0[i] - mu[i]) * (d0[i] - mu[i]);
    }
  }
  for (int q = 1; q < k; ++q) {
    const float* __restrict dq = d[q];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) var[i] += (dq[i] - mu[i]) * (dq[i] - mu[i]);
  }
#pragma omp simd
  for (size_t i = 0; i < n; ++i) var[i] = var[i] / kf;
}

// sce_tile for K models in one loop over the elements, the per-element values in
// registers (the model-outer loops below store and reload d, the mean, variance,
// sign and sums once per model): the same operations in the same order as
// sce_tile's loops. The inputs are held by value and the selection is a template
// argument (so the loop has no pointer to chase and no branch: it vectorises).
template <class S, int K>
struct SceInputs {
  S x[K];
  S b;
  static SceInputs of(S base, const S* xs) {
    SceInputs in;
    for (int q = 0; q < K; ++q) in.x[q] = xs[q];
    in.b = base;
    return in;
  }
};

template <int K, bool Select, class S>
void sce_mix_k(const ElemParams& p, S b, const S* xs, float* __restrict out, size_t n) {
  const SceInputs<S, K> in = SceInputs<S, K>::of(b, xs);
  float w[K];
  for (int q = 0; q < K; ++q) w[q] = p.w[q];
  const uint32_t thr = p.var_thr;
  const float kf = static_cast<float>(K);
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    const float bi = in.b[i];
    float d[K];
    for (int q = 0; q < K; ++q) d[q] = in.x[q][i] - bi;
    if (Select) {
      float mu = d[0];
      for (int q = 1; q < K; ++q) mu += d[q];
      mu = mu / kf;
      float var = (d[0] - mu) * (d[0] - mu);
      for (int q = 1; q < K; ++q) var += (d[q] - mu) * (d[q] - mu);
      var = var / kf;
      uint32_t u;
      std::memcpy(&u, &var, 4);
      const bool keep = (u & 0x7fffffffu) >= thr;
      for (int q = 0; q < K; ++q) d[q] = keep ? d[q] : 0.0f;
    }
    float e = d[0];
    for (int q = 1; q < K; ++q) e += d[q];
    const float sgn = e >= 0.0f ? 1.0f : -1.0f;
    float num = 0.0f, den = 0.0f;
    for (int q = 0; q < K; ++q) {
      const float ew = d[q] * sgn > 0.0f ? w[q] : 0.0f;
      num += d[q] * ew;
      den += ew;
    }
    out[i] = bi + num / (den < 1e-6f ? 1e-6f : den);
  }
}

// The fused SCE tile for 1..8 models; false (the model-outer loops do it) for more.
template <class S>
bool sce_mix_fused(const ElemParams& p, S b, const S* x, float* __restrict out, size_t n) {
  return with_fused_k(p.k, [&](auto kc) {
    constexpr int K = decltype(kc)::value;
    if (p.select) sce_mix_k<K, true>(p, b, x, out, n);
    else sce_mix_k<K, false>(p, b, x, out, n);
  });
}

// d_q = x_q − b and sce_variance_tile's variance of them for K models in one
// loop over the elements (load, subtract, mean and variance in registers; the
// model-outer loops read and wrote every tile once per step): the same
// operations in the same order per element. SCE's selection keys and Σ τ²
// read these (0.36 of an SCE merge's samples were the separate loops). The
// variance is written out here and in sce_mix_k rather than called as
// sce_variance (merge_methods.h): with the call GCC 12 no longer vectorised
// the loop (SCE 0.56 -> 1.99 s).
template <int K, class S>
void sce_variance_k(S b, const S* xs, float* const* d, float* __restrict var, size_t n) {
  const SceInputs<S, K> in = SceInputs<S, K>::of(b, xs);
  float* dq[K];
  for (int q = 0; q < K; ++q) dq[q] = d[q];
  const float kf = static_cast<float>(K);
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    const float bi = in.b[i];
    float di[K];
    for (int q = 0; q < K; ++q) di[q] = in.x[q][i] - bi;
    float mu = di[0];
    for (int q = 1; q < K; ++q) mu += di[q];
    mu = mu / kf;
    float v = (di[0] - mu) * (di[0] - mu);
    for (int q = 1; q < K; ++q) v += (di[q] - mu) * (di[q] - mu);
    var[i] = v / kf;
    for (int q = 0; q < K; ++q) dq[q][i] = di[q];
  }
}

// The fused variance tile for 1..8 models; false (the caller's loops do it) for more.
template <class S>
bool sce_variance_fused(int k, S b, const S* xs, float* const* d, float* __restrict var, size_t n) {
  return with_fused_k(k, [&](auto kc) { sce_variance_k<decltype(kc)::value>(b, xs, d, var, n); });
}

// sce_elem (merge_methods.h) over a tile: the same operations in the same order
// per element, model loop outside, element loop inside. d: k scratch tiles; tmp: 2.
template <class S>
void sce_tile(const ElemParams& p, S b, const S* x, float* const* d, float* __restrict out, float* __restrict tmp,
              size_t n) {
  if (sce_mix_fused(p, b, x, out, n)) return;
  const int k = p.k;
  for (int q = 0; q < k; ++q) {
    const S xq = x[q];
    float* __restrict dq = d[q];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) dq[i] = xq[i] - b[i];
  }
  float* __restrict t0 = tmp;
  float* __restrict t1 = tmp + n;
  if (p.select) {
    sce_variance_tile(d, k, t0, t1, n);
    const uint32_t thr = p.var_thr;
    for (int q = 0; q < k; ++q) {
      float* __restrict dq = d[q];
#pragma omp simd
      for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, &t1[i], 4);
        dq[i] = (u & 0x7fffffffu) >= thr ? dq[i] : 0.0f;
      }
    }
  }
  tile_sum(d, k, t0, n);
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    t0[i] = t0[i] >= 0.0f ? 1.0f : -1.0f;  // sign of Σ d
    out[i] = 0.0f;                          // Σ_[agree] w d
    t1[i] = 0.0f;                           // Σ_[agree] w
  }
  for (int q = 0; q < k; ++q) {
    const float* __restrict dq = d[q];
    const float wq = p.w[q];
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
      const float ew = dq[i] * t0[i] > 0.0f ? wq : 0.0f;
      out[i] += dq[i] * ew;
      t1[i] += ew;
    }
  }
#pragma omp simd
  for (size_t i = 0; i < n; ++i) out[i] = b[i] + out[i] / (t1[i] < 1e-6f ? 1e-6f : t1[i]);
}

// lincomb_elem (merge_methods.h) over a tile, for whole-tensor and per-row
// coefficients (the tile is cut where the row changes): the same operations in
// the same order per element, model loop outside, element loop inside.
// (Per-column coefficients stay with lincomb_elem.)
template <class S>
void lincomb_tile(const ElemParams& p, S b, const S* x, uint64_t first, float* __restrict out, size_t n) {
  const int k = p.k;
  size_t i0 = 0;
  while (i0 < n) {
    const uint64_t seg = p.seg_mode == 0 ? 0 : (first + i0) / p.seg_len;
    const size_t i1 = p.seg_mode == 0 ? n : static_cast<size_t>(std::min<uint64_t>(n, (seg + 1) * p.seg_len - first));
    const float* c = p.coef + seg * static_cast<uint64_t>(k);
    if (p.use_base) {
      {
        const S x0 = x[0];
        const float c0 = c[0];
#pragma omp simd
        for (size_t i = i0; i < i1; ++i) out[i] = c0 * (x0[i] - b[i]);
      }
      for (int q = 1; q < k; ++q) {
        const S xq = x[q];
        const float cq = c[q];
#pragma omp simd
        for (size_t i = i0; i < i1; ++i) out[i] += cq * (xq[i] - b[i]);
      }
#pragma omp simd
      for (size_t i = i0; i < i1; ++i) out[i] = b[i] + out[i];
    } else {
      {
        const S x0 = x[0];
        const float c0 = c[0];
#pragma omp simd
        for (size_t i = i0; i < i1; ++i) out[i] = c0 * x0[i];
      }
      for (int q = 1; q < k; ++q) {
        const S xq = x[q];
        const float cq = c[q];
#pragma omp simd
        for (size_t i = i0; i < i1; ++i) out[i] += cq * xq[i];
      }
    }
    i0 = i1;
  }
}

}  // namespace dfm
