// Soft-capping as a layer over an array (the final logits): softcap.h's formula
// elementwise, in place; its backward scales the gradient by the derivative.
#include "model/softcap.h"

#include "model/layers.h"

namespace dfm {

void softcap_forward(float* x, int64_t N, float cap) {
#pragma omp parallel for schedule(static) if (N >= (1 << 16))
  for (int64_t i = 0; i < N; ++i) x[i] = softcap(x[i], cap);
}

void softcap_backward(float* dx, const float* y, int64_t N, float cap) {
#pragma omp parallel for schedule(static) if (N >= (1 << 16))
  for (int64_t i = 0; i < N; ++i) dx[i] *= softcap_grad(y[i], cap);
}

}  // namespace dfm
