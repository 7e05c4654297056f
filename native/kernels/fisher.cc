#include "kernels/fisher.h"

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

}  // namespace dfm
