// RMSNorm: n = x · rstd, rstd = 1/sqrt(mean(x²) + eps); out = (offset + weight) ⊙ n.
// offset 0 is HF LlamaRMSNorm; offset 1 is Gemma's RMSNorm (Gemma2RMSNorm /
// Gemma3RMSNorm: f32 norm times (1 + w), w initialised to zero).
// Backward: dn = dout ⊙ (offset + weight); dweight += Σ_t dout ⊙ n;
//           dx = rstd · (dn − n · mean(dn ⊙ n)).
#include <cmath>

#include "model/layers.h"

namespace dfm {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int T, int C, float eps,
                     float offset) {
  for (int t = 0; t < T; ++t) {
    const float* x = inp + (size_t)t * C;
    float* o = out + (size_t)t * C;
    double ss = 0;
    for (int i = 0; i < C; ++i) ss += (double)x[i] * x[i];
    const float r = (float)(1.0 / std::sqrt(ss / C + (double)eps));
    rstd[t] = r;
    for (int i = 0; i < C; ++i) o[i] = (x[i] * r) * (offset + weight[i]);
  }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int T, int C, float offset) {
  for (int t = 0; t < T; ++t) {
    const float* x = inp + (size_t)t * C;
    const float* d = dout + (size_t)t * C;
    float* dx = dinp + (size_t)t * C;
    const float r = rstd[t];
    double dot = 0;  // Σ dn·n
    for (int i = 0; i < C; ++i) {
      const float n = x[i] * r;
      dot += (double)(d[i] * (offset + weight[i])) * n;
      if (dweight) dweight[i] += d[i] * n;
    }
    const float m = (float)(dot / C);
    for (int i = 0; i < C; ++i) dx[i] += r * (d[i] * (offset + weight[i]) - x[i] * r * m);
  }
}

// Per-head RMSNorm (Qwen3's and Gemma 3's q_norm / k_norm): x[T, NH, HD] normalised over each
// head's HD values with one weight[HD] shared by all heads, i.e. rmsnorm over
// T·NH rows of HD (rstd[T·NH]); the weight's gradient sums over heads and rows.
void head_rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int T, int NH, int HD,
                          float eps, float offset) {
  rmsnorm_forward(out, rstd, inp, weight, T * NH, HD, eps, offset);
}

void head_rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                           const float* rstd, int T, int NH, int HD, float offset) {
  rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, T * NH, HD, offset);
}

}  // namespace dfm
