// GeGLU gating of the Gemma MLP: out = gelu_tanh(gate) ⊙ up, with PyTorch's
// tanh approximation of GELU (gelu(approximate="tanh"), transformers'
// gelu_pytorch_tanh; Hendrycks & Gimpel 2016, eq. in §2):
//   gelu_tanh(x) = ½·x·(1 + tanh(u)),  u = β·(x + κ·x³),  β = sqrt(2/π), κ = 0.044715
//   gelu_tanh'(x) = ½·(1 + tanh(u)) + ½·x·(1 − tanh²(u))·β·(1 + 3κ·x²)
// (the derivative as PyTorch's GeluBackward computes it).
#include <cmath>

#include "model/layers.h"

namespace dfm {

namespace {
constexpr float kBeta = 0.7978845608028654f;  // sqrt(2/π)
constexpr float kKappa = 0.044715f;
}  // namespace

void geglu_forward(float* out, const float* gate, const float* up, int N) {
#pragma omp parallel for schedule(static) if (N >= (1 << 16))
  for (int i = 0; i < N; ++i) {
    const float x = gate[i];
    const float inner = kBeta * (x + kKappa * x * x * x);
    out[i] = 0.5f * x * (1.0f + std::tanh(inner)) * up[i];
  }
}

// Overwrites dgate and dup.
void geglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int N) {
#pragma omp parallel for schedule(static) if (N >= (1 << 16))
  for (int i = 0; i < N; ++i) {
    const float x = gate[i];
    const float x2 = x * x;
    const float th = std::tanh(kBeta * (x + kKappa * x2 * x));
    const float gelu = 0.5f * x * (1.0f + th);
    const float dgelu = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kBeta * (1.0f + 3.0f * kKappa * x2);
    dup[i] = dout[i] * gelu;
    dgate[i] = dout[i] * up[i] * dgelu;
  }
}

}  // namespace dfm
