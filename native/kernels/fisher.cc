#include "kernels/fisher.h"

#include <cmath>

namespace dfm {

namespace {
constexpr size_t kParallelMin = 1 << 15;
}

void fisher_accumulate(float* acc, const float* g, float w, size_t n) {
  const long long nn = static_cast<long long>(n);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (long long j = 0; j < nn; ++j) acc[j] += w * g[j] * g[j];
}

void fisher_finalize(float* acc, float scale, float eps, size_t n) {
  const long long nn = static_cast<long long>(n);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (long long j = 0; j < nn; ++j) acc[j] = acc[j] * scale + eps;
}

void fisher_interpolate(float* out, const float* f0, const float* f1, float t, bool log_space, size_t n) {
  const long long nn = static_cast<long long>(n);
  const float s = 1.0f - t;
  if (!log_space) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (long long j = 0; j < nn; ++j) out[j] = s * f0[j] + t * f1[j];
    return;
  }
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (long long j = 0; j < nn; ++j) {
    const float a = f0[j] > 0.0f ? f0[j] : 1e-30f, b = f1[j] > 0.0f ? f1[j] : 1e-30f;
    out[j] = std::exp(s * std::log(a) + t * std::log(b));
  }
}

}  // namespace dfm
