// Logit soft-capping (Gemma 2 attention scores, Gemma 2/3 final logits; Gemma
// Team 2024, "Gemma 2", §2): softcap(x) = cap · tanh(x / cap), in transformers'
// order (divide, tanh, multiply). Its derivative, read from the capped value
// y = softcap(x): d softcap / dx = 1 − tanh² = 1 − (y / cap)².
#pragma once
#include <cmath>

namespace dfm {

inline float softcap(float x, float cap) { return std::tanh(x / cap) * cap; }

inline float softcap_grad(float y, float cap) {
  const float t = y / cap;
  return 1.0f - t * t;
}

}  // namespace dfm
