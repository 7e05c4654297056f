// Grouped-query causal self-attention (HF eager attention, no dropout):
//   score[h,t,s] = softcap(q[t,h]·k[s,g] · scale) for s0(t) <= s <= t, g = h / (NH/NKV)
//   scale = 1/sqrt(HD), or query_pre_attn_scalar^-0.5 (Gemma); softcap (softcap.h) only
//   with softcap > 0 (Gemma 2's attn_logit_softcapping, applied before the mask, so
//   masked keys stay excluded)
//   s0(t) = 0, or with a sliding window W > 0: max(0, t − W + 1), i.e. key s is
//   visible from query t iff t − W < s <= t (transformers' sliding_window_overlay,
//   kv_idx > q_idx − sliding_window, and'ed with the causal mask: W keys including t)
//   att[h,t,:]   = softmax(score[h,t,:])
//   out[t,h]     = Σ_s att[h,t,s] · v[s,g]
// Backward, per head:
//   datt[t,s] = dout[t,h]·v[s,g];           dv[s,g] += att[h,t,s] · dout[t,h]
//   dscore    = att ⊙ (datt − Σ_s att·datt)  (softmax backward, row-wise)
//   dscore  ⊙= softcap'(score)              (soft-capped: the capped score recomputed from q·k)
//   dq[t,h]  += Σ_s dscore[t,s] · k[s,g] · scale;  dk[s,g] += dscore[t,s] · q[t,h] · scale
// The backward runs in parallel over kv groups, so no two threads write one dk/dv row.
#include <algorithm>
#include <cmath>

#include "model/layers.h"
#include "model/softcap.h"

namespace dfm {

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v,
                       int T0, int T, int NH, int NKV, int HD, int ld, int window, float scale, float cap) {
  const int group = NH / NKV;
  const size_t qs = (size_t)NH * HD, ks = (size_t)NKV * HD;
#pragma omp parallel for collapse(2) schedule(static)
  for (int h = 0; h < NH; ++h) {
    for (int t = T0; t < T; ++t) {
      const int g = h / group;
      const float* qt = q + t * qs + (size_t)h * HD;
      float* a = att + ((size_t)h * ld + t) * ld;
      const int s0 = window > 0 ? std::max(0, t - window + 1) : 0;
      float mx = -INFINITY;
      for (int s = s0; s <= t; ++s) {
        const float* ks_ = k + s * ks + (size_t)g * HD;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < HD; ++i) dot += qt[i] * ks_[i];
        a[s] = cap > 0 ? softcap(dot * scale, cap) : dot * scale;
        mx = a[s] > mx ? a[s] : mx;
      }
      double sum = 0;
      for (int s = s0; s <= t; ++s) {
        const float e = std::exp(a[s] - mx);
        a[s] = e;
        sum += e;
      }
      const float inv = (float)(1.0 / sum);
      for (int s = s0; s <= t; ++s) a[s] *= inv;
      float* o = out + t * qs + (size_t)h * HD;
      for (int i = 0; i < HD; ++i) o[i] = 0.0f;
      for (int s = s0; s <= t; ++s) {
        const float* vs = v + s * ks + (size_t)g * HD;
        const float p = a[s];
#pragma omp simd
        for (int i = 0; i < HD; ++i) o[i] += p * vs[i];
      }
    }
  }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att,
                        const float* q, const float* k, const float* v, float* scratch,
                        int T, int NH, int NKV, int HD, int ld, int window, float scale, float cap) {
  const int group = NH / NKV;
  const size_t qs = (size_t)NH * HD, ks = (size_t)NKV * HD;
#pragma omp parallel for schedule(static)
  for (int g = 0; g < NKV; ++g) {
    float* datt = scratch + (size_t)g * T;
    for (int h = g * group; h < (g + 1) * group; ++h) {
      for (int t = 0; t < T; ++t) {
        const float* a = att + ((size_t)h * ld + t) * ld;
        const float* d = dout + t * qs + (size_t)h * HD;
        const int s0 = window > 0 ? std::max(0, t - window + 1) : 0;
        double dot_ad = 0;
        for (int s = s0; s <= t; ++s) {
          const float* vs = v + s * ks + (size_t)g * HD;
          float* dvs = dv + s * ks + (size_t)g * HD;
          float x = 0;
          const float p = a[s];
#pragma omp simd reduction(+ : x)
          for (int i = 0; i < HD; ++i) {
            x += d[i] * vs[i];
            dvs[i] += p * d[i];
          }
          datt[s] = x;
          dot_ad += (double)p * x;
        }
        const float* qt = q + t * qs + (size_t)h * HD;
        float* dqt = dq + t * qs + (size_t)h * HD;
        for (int s = s0; s <= t; ++s) {
          const float* kk = k + s * ks + (size_t)g * HD;
          float ds = a[s] * (datt[s] - (float)dot_ad);
          if (cap > 0) {  // the capped score, recomputed as the forward did
            float dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int i = 0; i < HD; ++i) dot += qt[i] * kk[i];
            ds *= softcap_grad(softcap(dot * scale, cap), cap);
          }
          ds *= scale;
          float* dkk = dk + s * ks + (size_t)g * HD;
#pragma omp simd
          for (int i = 0; i < HD; ++i) {
            dqt[i] += ds * kk[i];
            dkk[i] += ds * qt[i];
          }
        }
      }
    }
  }
}

}  // namespace dfm
