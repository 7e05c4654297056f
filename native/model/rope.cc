// Rotary position embeddings, HF Llama convention (rotate_half over the two
// halves of each head, not interleaved pairs). inv_freq[i] = theta^(-2i/HD) in
// f32 as HF computes it; angle = position · inv_freq (f32), cos/sin in double.
#include <cmath>

#include "model/layers.h"

namespace dfm {

void rope_tables(float* cos_t, float* sin_t, int T, int HD, float theta) {
  const int H = HD / 2;
  for (int i = 0; i < H; ++i) {
    const float inv_freq = (float)(1.0 / std::pow((double)theta, (double)(float)(2 * i) / (double)(float)HD));
    for (int t = 0; t < T; ++t) {
      const float a = (float)t * inv_freq;
      cos_t[(size_t)t * H + i] = (float)std::cos((double)a);
      sin_t[(size_t)t * H + i] = (float)std::sin((double)a);
    }
  }
}

void rope_forward(float* out, const float* inp, const float* cos_t, const float* sin_t, int T, int NH, int HD) {
  const int H = HD / 2;
  for (int t = 0; t < T; ++t) {
    const float* c = cos_t + (size_t)t * H;
    const float* s = sin_t + (size_t)t * H;
    for (int h = 0; h < NH; ++h) {
      const float* x = inp + ((size_t)t * NH + h) * HD;
      float* o = out + ((size_t)t * NH + h) * HD;
      for (int i = 0; i < H; ++i) {
        const float x1 = x[i], x2 = x[i + H];
        o[i] = x1 * c[i] - x2 * s[i];
        o[i + H] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

// The rotation's transpose: dx1 = d1·cos + d2·sin, dx2 = d2·cos − d1·sin. Overwrites dinp.
void rope_backward(float* dinp, const float* dout, const float* cos_t, const float* sin_t, int T, int NH, int HD) {
  const int H = HD / 2;
  for (int t = 0; t < T; ++t) {
    const float* c = cos_t + (size_t)t * H;
    const float* s = sin_t + (size_t)t * H;
    for (int h = 0; h < NH; ++h) {
      const float* d = dout + ((size_t)t * NH + h) * HD;
      float* dx = dinp + ((size_t)t * NH + h) * HD;
      for (int i = 0; i < H; ++i) {
        const float d1 = d[i], d2 = d[i + H];
        dx[i] = d1 * c[i] + d2 * s[i];
        dx[i + H] = d2 * c[i] - d1 * s[i];
      }
    }
  }
}

}  // namespace dfm
