// Token embedding lookup and its backward (scatter-add into the table rows;
// the rows may be slots of a compact buffer of the sequence's distinct tokens).
// scale multiplies the looked-up rows: Gemma's scaled word embedding,
// embed_tokens(ids) · sqrt(hidden_size) (the normaliser in the compute dtype, f32).
#include <cstring>

#include "model/layers.h"

namespace dfm {

void embedding_forward(float* out, const int32_t* tokens, const WeightView& wte, int T, int C, float scale) {
  for (int t = 0; t < T; ++t) {
    float* o = out + (size_t)t * C;
    wte.load((size_t)tokens[t] * C, (size_t)C, o);
    if (scale != 1.0f)
      for (int i = 0; i < C; ++i) o[i] *= scale;
  }
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int T, int C, float scale) {
  for (int t = 0; t < T; ++t) {
    float* row = dwte + (size_t)tokens[t] * C;
    const float* d = dout + (size_t)t * C;
    for (int i = 0; i < C; ++i) row[i] += scale * d[i];
  }
}

}  // namespace dfm
