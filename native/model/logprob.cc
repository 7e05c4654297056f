// Log-softmax over the vocabulary and its gradient (cross-entropy with the sign
// flipped: we work with log-likelihoods). Reductions in double.
#include <cmath>

#include "model/layers.h"

namespace dfm {

namespace {
// max and log Σ exp(x − max) of one row.
void row_lse(const float* x, int V, double& mx, double& lse) {
  float m = x[0];
  for (int j = 1; j < V; ++j) m = x[j] > m ? x[j] : m;
  double s = 0;
  for (int j = 0; j < V; ++j) s += std::exp((double)x[j] - m);
  mx = m;
  lse = std::log(s);
}
}  // namespace

void logprob_forward(float* logp, const float* logits, const int32_t* targets, int T, int V) {
#pragma omp parallel for schedule(static) if ((long long)T * V >= (1 << 16))
  for (int t = 0; t < T; ++t) {
    const float* x = logits + (size_t)t * V;
    double mx, lse;
    row_lse(x, V, mx, lse);
    logp[t] = (float)((double)x[targets[t]] - mx - lse);
  }
}

void logprob_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int T, int V) {
#pragma omp parallel for schedule(static) if ((long long)T * V >= (1 << 16))
  for (int t = 0; t < T; ++t) {
    const float* x = logits + (size_t)t * V;
    float* d = dlogits + (size_t)t * V;
    double mx, lse;
    row_lse(x, V, mx, lse);
    const double w = dloss[t];
    for (int j = 0; j < V; ++j) d[j] = (float)(-w * std::exp((double)x[j] - mx - lse));
    d[targets[t]] += (float)w;
  }
}

}  // namespace dfm
