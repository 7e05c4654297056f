#include "kernels/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dfm {

namespace {
constexpr size_t kParallelMin = 1 << 16;
}

void adamw_update(float* theta, const float* grad, float* m, float* v, size_t n, const AdamWHyper& h) {
  // Bias corrections in double, as scalars (PyTorch: step_size = lr / bc1, denom = √v/√bc2 + eps).
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(h.step));
  const float step_size = static_cast<float>(h.lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float decay = 1.0f - h.lr * h.weight_decay;
  const float b1 = h.beta1, b2 = h.beta2, eps = h.eps;
  const long long nn = static_cast<long long>(n);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (long long j = 0; j < nn; ++j) {
    const float g = grad[j];
    const float mj = b1 * m[j] + (1.0f - b1) * g;
    const float vj = b2 * v[j] + (1.0f - b2) * g * g;
    m[j] = mj;
    v[j] = vj;
    theta[j] = theta[j] * decay - step_size * mj / (std::sqrt(vj) * inv_sqrt_bc2 + eps);
  }
}

double sum_squares(const float* x, size_t n) {
  // Fixed blocks summed in a fixed order: the same result for any thread count.
  constexpr size_t kBlock = 4096;
  const long long nb = static_cast<long long>((n + kBlock - 1) / kBlock);
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (long long b = 0; b < nb; ++b) {
    const size_t lo = static_cast<size_t>(b) * kBlock, hi = std::min(n, lo + kBlock);
    double s = 0.0;
    for (size_t j = lo; j < hi; ++j) s += static_cast<double>(x[j]) * static_cast<double>(x[j]);
    part[static_cast<size_t>(b)] = s;
  }
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}

void scale_inplace(float* x, float s, size_t n) {
  const long long nn = static_cast<long long>(n);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (long long j = 0; j < nn; ++j) x[j] *= s;
}

void axpy(float* y, const float* x, float a, size_t n) {
  const long long nn = static_cast<long long>(n);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (long long j = 0; j < nn; ++j) y[j] += a * x[j];
}

double clip_grad_norm(float* g, size_t n, double max_norm) {
  const double norm = std::sqrt(sum_squares(g, n));
  if (max_norm > 0 && std::isfinite(max_norm) && norm > max_norm) {
    // PyTorch's clip_grad_norm_: coefficient max_norm / (norm + 1e-6).
    scale_inplace(g, static_cast<float>(max_norm / (norm + 1e-6)), n);
  }
  return norm;
}

}  // namespace dfm
