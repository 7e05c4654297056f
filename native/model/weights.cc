// WeightView loads and the Fisher fold (see weights.h). The loops are written
// per dtype so the compiler vectorises the conversions.
#include "model/weights.h"

#include <cstring>

namespace dfm {

namespace {

// dst[k] = x[i+k] as f32.
inline void load_one(const void* p, Dtype t, size_t i, size_t n, float* __restrict dst) {
  switch (t) {
    case Dtype::F32:
      std::memcpy(dst, static_cast<const float*>(p) + i, n * sizeof(float));
      break;
    case Dtype::BF16: {
      const uint16_t* h = static_cast<const uint16_t*>(p) + i;
#pragma omp simd
      for (size_t k = 0; k < n; ++k) dst[k] = bits_to_f32(static_cast<uint32_t>(h[k]) << 16);
      break;
    }
    case Dtype::F16: {
      const uint16_t* h = static_cast<const uint16_t*>(p) + i;
      for (size_t k = 0; k < n; ++k) dst[k] = f16_to_f32(h[k]);
      break;
    }
  }
}

constexpr size_t kChunk = 256;  // elements converted at a time on the stack

// dst[k] = op(dst[k], x[i+k]) for k < n, x converted chunk by chunk.
template <class Op>
inline void combine(float* dst, const void* x, Dtype t, size_t i, size_t n, Op op) {
  alignas(64) float tmp[kChunk];
  for (size_t k0 = 0; k0 < n; k0 += kChunk) {
    const size_t m = n - k0 < kChunk ? n - k0 : kChunk;
    load_one(x, t, i + k0, m, tmp);
    float* __restrict o = dst + k0;
#pragma omp simd
    for (size_t k = 0; k < m; ++k) o[k] = op(o[k], tmp[k]);
  }
}

// Of elements [i, i+n), how many b holds (the rest have τ = 0).
inline size_t held(size_t b_numel, size_t i, size_t n) { return i >= b_numel ? 0 : (b_numel - i < n ? b_numel - i : n); }

}  // namespace

void WeightView::load(size_t i, size_t n, float* dst) const {
  load_one(a, ta, i, n, dst);
  if (!b) return;
  const float lam = lambda;
  combine(dst, b, tb, i, held(b_numel, i, n), [lam](float pre, float fine) { return pre + lam * (fine - pre); });  // θ_pre + λ·(θ_i − θ_pre)
}

void WeightView::load_delta(size_t i, size_t n, float* dst) const {
  const size_t h = b ? held(b_numel, i, n) : 0;
  if (h < n) std::memset(dst + h, 0, (n - h) * sizeof(float));
  if (h == 0) return;
  load_one(b, tb, i, h, dst);
  const float lam = lambda;
  combine(dst, a, ta, i, h, [lam](float fine, float pre) { return lam * (fine - pre); });  // λ·τ
}

void fisher_fold(const FisherSink& sink, size_t i, const float* g, size_t n) {
  const float w = sink.w;
  float* __restrict s = sink.s + i;
  const bool with_d = sink.d && sink.view && sink.view->b;
  if (!with_d) {
#pragma omp simd
    for (size_t k = 0; k < n; ++k) s[k] += w * g[k] * g[k];
    return;
  }
  float* __restrict d = sink.d + i;
  alignas(64) float lt[kChunk];
  for (size_t k0 = 0; k0 < n; k0 += kChunk) {
    const size_t m = n - k0 < kChunk ? n - k0 : kChunk;
    sink.view->load_delta(i + k0, m, lt);
#pragma omp simd
    for (size_t k = 0; k < m; ++k) {
      const float f = w * g[k0 + k] * g[k0 + k];
      s[k0 + k] += f;
      d[k0 + k] += f * lt[k];
    }
  }
}

}  // namespace dfm
