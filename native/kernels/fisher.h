// Diagonal Fisher accumulation (docs/design.md §1):
//   F = (1/N) · Σ_n Σ_y w_y · (∇_θ ℓ(y|x_n))² + ε
// Each example's per-choice gradient g is folded into f32 accumulators as soon
// as it is produced (acc[j] += w·g[j]²) and then discarded, so no per-example
// gradient of the whole model outlives its own backward pass. The square is per
// example and per choice, never of a batch-summed gradient.
#pragma once
#include <cstddef>

namespace dfm {

// acc[j] += w · g[j]² for j < n.
void fisher_accumulate(float* acc, const float* g, float w, size_t n);
// acc[j] = acc[j] · scale + eps for j < n (scale = 1/N, eps = 1e-12).
void fisher_finalize(float* acc, float scale, float eps, size_t n);
// The Fisher at a λ between two grid points λ_0 < λ_1, t = (λ − λ_0)/(λ_1 − λ_0)
// (docs/design.md §6): out = (1 − t)·f0 + t·f1 (linear), or
// out = f0^(1−t) · f1^t = exp((1 − t)·log f0 + t·log f1) (log; f0, f1 > 0, as F ≥ ε is).
void fisher_interpolate(float* out, const float* f0, const float* f1, float t, bool log_space, size_t n);


}  // namespace dfm
