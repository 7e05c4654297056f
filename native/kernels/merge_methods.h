// The registry of native merge kernels, listed once, and the per-element formulas
// of the element methods, shared by the CPU driver (merge.cc) and the CUDA driver
// (merge.cu): each is one DFM_HD function, compiled for the host and for the device,
// so a method's CPU tile and its CUDA twin are the same code.
//
// Adding an element method: one DFM_MERGE_METHOD line with kind Element, one
// <name>_elem function below (and its TypeScript descriptor in src/merge/methods/).
// merge.cc and merge.cu dispatch to <name>_elem through DFM_ELEMENT_METHODS.
//
// The methods a user names (slerp, model_stock, della, breadcrumbs, …) are
// TypeScript descriptors built on these kernels: `lincomb` (every method whose
// result is a per-tensor or per-row linear combination of the inputs: the
// coefficients come from the Gram matrix, merge_stats.h), `gta` (mergekit's
// generalised task arithmetic: sparsify, optional sign consensus, mix), `sce`
// and `nearswap`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/merge_rng.h"

// X(Enum, "name", uses_base, kind)   kind: Tile (its own tile in merge_tiles.h and
// twin in merge.cu) or Element (a <name>_elem function below).
#define DFM_MERGE_METHODS(X)                                   \
  X(Linear, "linear", false, Tile)                             \
  X(TaskArithmetic, "task_arithmetic", true, Tile)             \
  X(Ties, "ties", true, Tile)                                  \
  X(DareLinear, "dare_linear", true, Tile)                     \
  X(DareTies, "dare_ties", true, Tile)                         \
  X(Fisher, "fisher", false, Tile)                             \
  X(DfCombine, "dfmerge", true, Tile)                          \
  X(Lincomb, "lincomb", false, Element)                        \
  X(Gta, "gta", true, Element)                                 \
  X(Sce, "sce", true, Element)                                 \
  X(Nearswap, "nearswap", true, Element)

// The element methods: X(Enum, function).
#define DFM_ELEMENT_METHODS(X) \
  X(Lincomb, lincomb_elem)     \
  X(Gta, gta_elem)             \
  X(Sce, sce_elem)             \
  X(Nearswap, nearswap_elem)

// The element formulas are host-and-device templates whose input views are
// device-only in merge.cu: nvcc is told not to check the host side of those.
#if defined(__CUDACC__)
#define DFM_ELEM_TEMPLATE _Pragma("nv_exec_check_disable") template <class L>
#else
#define DFM_ELEM_TEMPLATE template <class L>
#endif

namespace dfm {

constexpr int kMaxMergeModels = 64;

// gta sparsification: which entries of τ_k = x_k − b are kept.
enum class Sparsify : int {
  Band = 0,    // thr_lo ≤ bits(|τ|) < thr_hi (TIES magnitude, breadcrumbs; none: [0, 2^32))
  Random = 1,  // DARE: dare_u24(key_k, i) ≥ keep_thr_k
  Mask = 2,    // a precomputed bit per element (DELLA's rank-dependent drops)
};

// lincomb segments: whole tensor, rows (contiguous runs of seg_len), or columns
// (element i in segment i mod seg_len).
enum class Segments : int { Whole = 0, Rows = 1, Cols = 2 };

// The parameters of every element method (plain data: copied to the device as is;
// the pointers are host pointers on the CPU and device pointers on the GPU).
struct ElemParams {
  int k = 0;
  // lincomb: out = [b +] Σ_k c[seg(i)][k] · (x_k [− b])
  int use_base = 0;
  int seg_mode = 0;
  uint64_t seg_len = 1;
  const float* coef = nullptr;  // segments × k
  // nearswap
  float t = 0.0f;
  // gta
  int sparsify = 0;
  int consensus = 0;
  int normalize = 0;
  float lambda = 1.0f;
  float div_const = 1.0f;  // without consensus: Σ w (|Σ w| < 1e-8 → 1)
  float w[kMaxMergeModels] = {};
  float rs[kMaxMergeModels] = {};  // per-model rescale of kept entries
  uint32_t thr_lo[kMaxMergeModels] = {};
  uint32_t thr_hi[kMaxMergeModels] = {};
  uint32_t keep_thr[kMaxMergeModels] = {};
  uint64_t key[kMaxMergeModels] = {};
  const uint8_t* mask = nullptr;  // model k's bit for element i: mask[k · mask_stride + i/8] >> (i%8)
  uint64_t mask_stride = 0;
  // sce
  int select = 0;
  uint32_t var_thr = 0;
};

DFM_HD uint32_t abs_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u & 0x7fffffffu;
}

// lincomb: out = b + Σ_k c_k (x_k − b) (use_base) or Σ_k c_k x_k, with c the
// coefficients of element i's segment. Per-tensor SLERP, NuSLERP, multi-SLERP, the
// Karcher mean, model stock and passthrough's scale are all of this form; their
// coefficients are computed in TypeScript (src/merge/methods/) from the Gram matrix.
DFM_ELEM_TEMPLATE
DFM_HD float lincomb_elem(const ElemParams& p, const L& in, size_t i, uint64_t g) {
  const uint64_t seg = p.seg_mode == 0 ? 0 : p.seg_mode == 1 ? g / p.seg_len : g % p.seg_len;
  const float* c = p.coef + seg * static_cast<uint64_t>(p.k);
  if (p.use_base) {
    const float b = in.b(i);
    float acc = c[0] * (in.x(0, i) - b);
    for (int q = 1; q < p.k; ++q) acc += c[q] * (in.x(q, i) - b);
    return b + acc;
  }
  float acc = c[0] * in.x(0, i);
  for (int q = 1; q < p.k; ++q) acc += c[q] * in.x(q, i);
  return acc;
}

// gta's keep decision for model q's τ at element g.
DFM_HD bool gta_keep(const ElemParams& p, int q, float tau, uint64_t g) {
  if (p.sparsify == 0) {
    const uint32_t u = abs_bits(tau);
    return u >= p.thr_lo[q] && u < p.thr_hi[q];
  }
  if (p.sparsify == 1) return dare_u24(p.key[q], g) >= p.keep_thr[q];
  return ((p.mask[static_cast<uint64_t>(q) * p.mask_stride + (g >> 3)] >> (g & 7)) & 1u) != 0;
}

// Generalised task arithmetic (mergekit's GTA: Ilharco et al.; TIES, Yadav et al.;
// DARE, Yu et al.; breadcrumbs, Davari & Belilovsky; DELLA, Deep et al.):
//   d_k = keep_k ⊙ τ_k · rs_k
//   consensus: sign = +1 if Σ w_k d_k ≥ 0 else −1; mixed = Σ_[sign(w_k d_k)=sign] w_k d_k,
//              div = Σ_[…] w_k (0 → 1)
//   else:      mixed = Σ w_k d_k, div = Σ w_k (|Σ w| < 1e-8 → 1)
//   out = b + λ · (normalize ? mixed / div : mixed)
DFM_ELEM_TEMPLATE
DFM_HD float gta_elem(const ElemParams& p, const L& in, size_t i, uint64_t g) {
  const float b = in.b(i);
  float d[kMaxMergeModels];
  d[0] = 0.0f;
  for (int q = 0; q < p.k; ++q) {
    const float tau = in.x(q, i) - b;
    d[q] = gta_keep(p, q, tau, g) ? tau * p.rs[q] : 0.0f;
  }
  float mixed, div;
  if (p.consensus) {
    float e = p.w[0] * d[0];
    for (int q = 1; q < p.k; ++q) e += p.w[q] * d[q];
    const float sgn = e >= 0.0f ? 1.0f : -1.0f;
    mixed = 0.0f;
    div = 0.0f;
    for (int q = 0; q < p.k; ++q) {
      const float wd = p.w[q] * d[q];
      const bool agree = wd * sgn > 0.0f;
      mixed += agree ? wd : 0.0f;
      div += agree ? p.w[q] : 0.0f;
    }
    if (div == 0.0f) div = 1.0f;
  } else {
    mixed = p.w[0] * d[0];
    for (int q = 1; q < p.k; ++q) mixed += p.w[q] * d[q];
    div = p.div_const;
  }
  if (p.normalize) mixed = mixed / div;
  if (p.lambda != 1.0f) mixed = mixed * p.lambda;
  return b + mixed;
}

// SCE's per-element variance of the task vectors across models (population
// variance, f32, in this order): μ = (Σ τ_k)/k, var = (Σ (τ_k − μ)²)/k.
DFM_HD float sce_variance(const float* tau, int k) {
  float s = tau[0];
  for (int q = 1; q < k; ++q) s += tau[q];
  const float mu = s / static_cast<float>(k);
  float v = (tau[0] - mu) * (tau[0] - mu);
  for (int q = 1; q < k; ++q) v += (tau[q] - mu) * (tau[q] - mu);
  return v / static_cast<float>(k);
}

// SCE (Wan et al. 2024, "FuseChat", as mergekit): Select the entries whose variance
// across models is in the top fraction (bits(var) ≥ var_thr), Calculate per-model
// weights w_k = mean(d_k²)/Σ (computed beforehand), Erase entries whose sign
// disagrees with sign(Σ_k d_k):
//   out = b + Σ_[agree] w_k d_k / max(Σ_[agree] w_k, 1e-6)
DFM_ELEM_TEMPLATE
DFM_HD float sce_elem(const ElemParams& p, const L& in, size_t i, uint64_t) {
  const float b = in.b(i);
  float d[kMaxMergeModels] = {};
  for (int q = 0; q < p.k; ++q) d[q] = in.x(q, i) - b;
  if (p.select && !(abs_bits(sce_variance(d, p.k)) >= p.var_thr)) {
    for (int q = 0; q < p.k; ++q) d[q] = 0.0f;
  }
  float e = d[0];
  for (int q = 1; q < p.k; ++q) e += d[q];
  const float sgn = e >= 0.0f ? 1.0f : -1.0f;
  float num = 0.0f, den = 0.0f;
  for (int q = 0; q < p.k; ++q) {
    const float ew = d[q] * sgn > 0.0f ? p.w[q] : 0.0f;
    num += d[q] * ew;
    den += ew;
  }
  return b + num / (den < 1e-6f ? 1e-6f : den);
}

// NearSwap (alchemonaut, as mergekit): w = clamp(t / max(|b − x|, 1e-6), 0, 1),
// out = w·x + (1 − w)·b: the model's value where it is within t of the base.
DFM_ELEM_TEMPLATE
DFM_HD float nearswap_elem(const ElemParams& p, const L& in, size_t i, uint64_t) {
  const float b = in.b(i);
  const float x = in.x(0, i);
  float ad = b - x;
  ad = ad < 0.0f ? -ad : ad;
  float w = p.t / (ad < 1e-6f ? 1e-6f : ad);
  w = w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w);
  return w * x + (1.0f - w) * b;
}

}  // namespace dfm
