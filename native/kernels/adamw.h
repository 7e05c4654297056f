// Training kernels over flat f32 spans: AdamW (Loshchilov & Hutter, "Decoupled
// Weight Decay Regularization", Algorithm 2, in the form PyTorch's torch.optim.AdamW
// computes it), global-norm gradient clipping, and gradient accumulation.
//
// AdamW step t (t = 1, 2, ...), elementwise over one tensor:
//   θ ← θ − lr·wd·θ                                   (decoupled weight decay)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)   (bias-corrected)
#pragma once
#include <cstddef>
#include <cstdint>

namespace dfm {

struct AdamWHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  int64_t step = 1;  // t, 1-based, after incrementing for this update
};

// One AdamW update of n parameters in place (theta, m, v); grad is read only.
void adamw_update(float* theta, const float* grad, float* m, float* v, size_t n, const AdamWHyper& h);

// Σ x² in double precision (the square of the L2 norm).
double sum_squares(const float* x, size_t n);

// x ← s·x.
void scale_inplace(float* x, float s, size_t n);

// y ← y + a·x (gradient accumulation over a batch).
void axpy(float* y, const float* x, float a, size_t n);

// Global-norm clipping of one flat gradient: when ‖g‖₂ > max_norm, g ← g·max_norm/‖g‖₂.
// Returns the norm before clipping. max_norm <= 0 (or not finite) disables the clip.
double clip_grad_norm(float* g, size_t n, double max_norm);

}  // namespace dfm
