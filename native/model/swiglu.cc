// SwiGLU gating of the Llama MLP: out = silu(gate) ⊙ up, silu(x) = x·σ(x);
// silu'(x) = σ(x)·(1 + x·(1 − σ(x))). Plus the residual add.
#include <cmath>

#include "model/layers.h"

namespace dfm {

void swiglu_forward(float* out, const float* gate, const float* up, int N) {
#pragma omp parallel for schedule(static) if (N >= (1 << 16))
  for (int i = 0; i < N; ++i) {
    const float g = gate[i];
    const float sg = 1.0f / (1.0f + std::exp(-g));
    out[i] = g * sg * up[i];
  }
}

// Overwrites dgate and dup.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int N) {
#pragma omp parallel for schedule(static) if (N >= (1 << 16))
  for (int i = 0; i < N; ++i) {
    const float g = gate[i];
    const float sg = 1.0f / (1.0f + std::exp(-g));
    dup[i] = dout[i] * g * sg;
    dgate[i] = dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
  }
}

void residual_forward(float* out, const float* a, const float* b, int N) {
  for (int i = 0; i < N; ++i) out[i] = a[i] + b[i];
}

}  // namespace dfm
