// The Llama-family layers, llm.c style: each layer kind is a pair of plain
// functions x_forward / x_backward over raw f32 pointers with the shapes in the
// signature, both in one file (model/<kind>.cc). Row-major throughout; T is the
// number of positions of one sequence. Backward functions ACCUMULATE (+=) into
// their gradient outputs, so one buffer can collect the gradient of a tensor
// used in several places (tied embeddings); callers zero gradients first.
// Each kernel is a small function so that a CUDA twin can sit beside it later.
#pragma once
#include <cstdint>
#include <vector>

#include "model/weights.h"

namespace dfm {

// --- matmul.cc: out[T,OC] = inp[T,C] · weight[OC,C]^T (+ bias[OC]) ---------
// (nn.Linear), with the built-in cache-blocked OpenMP SGEMM. The weight is a
// WeightView (model/weights.h): stored dtype, optionally a scaled model.
void matmul_forward(float* out, const float* inp, const WeightView& weight, const float* bias, int T, int C, int OC);
// dinp[T,C] += dout·weight; dweight[OC,C] += dout^T·inp (or = with
// overwrite_dweight, which spares zeroing it first); dbias[OC] += Σ_t dout.
// Any of dinp, dweight, dbias may be null (not wanted).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const WeightView& weight, int T, int C, int OC, bool overwrite_dweight = false);
// The same backward with the weight gradient folded straight into a diagonal
// Fisher sink (docs/design.md §1): S += w·(dout^T·inp)², and W += w·(dout^T·inp)²·λτ,
// squared per element of this one example's gradient, as the micro-kernel's
// epilogue: the gradient is never materialised. Rows oc with skip_rows[oc] != 0
// are left out (null: none).
void matmul_backward_fisher(float* dinp, const FisherSink& sink, const uint8_t* skip_rows, const float* dout,
                            const float* inp, const WeightView& weight, int T, int C, int OC);
// Name of the matmul backend compiled in.
const char* matmul_backend();

// --- embedding.cc: out[t,:] = scale · wte[tokens[t],:] ---------------------
// scale: 1, or Gemma's sqrt(hidden_size) (the scaled word embedding).
void embedding_forward(float* out, const int32_t* tokens, const WeightView& wte, int T, int C, float scale = 1.0f);
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int T, int C, float scale = 1.0f);

// --- rmsnorm.cc: out = (offset + weight) ⊙ x / sqrt(mean(x²) + eps) ---------
// offset 0: HF LlamaRMSNorm; offset 1: Gemma's RMSNorm, (1 + w) with zero-initialised w.
// rstd[T] keeps 1/sqrt(mean(x²)+eps) for the backward pass.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int T, int C, float eps,
                     float offset = 0.0f);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int T, int C, float offset = 0.0f);
// Per-head RMSNorm (Qwen3 / Gemma 3 q_norm / k_norm): x[T, NH, HD] normalised over HD per
// head, one weight[HD] for all heads; rstd[T·NH]. dinp += ..., dweight += ....
void head_rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int T, int NH, int HD,
                          float eps, float offset = 0.0f);
void head_rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                           const float* rstd, int T, int NH, int HD, float offset = 0.0f);

// --- rope.cc: rotary embeddings, HF rotate_half convention ------------------
// The rope scalings transformers implements for Llama-family models
// (modeling_rope_utils.py); the fields each type reads are listed in rope.cc.
enum class RopeType { Default, Linear, Dynamic, Yarn, Longrope, Llama3 };
struct RopeScaling {
  RopeType type = RopeType::Default;
  double factor = 1.0;
  // Pretraining context: the yarn/longrope/llama3 original_max_position_embeddings,
  // or config.json max_position_embeddings for dynamic NTK.
  int original_max = 0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  double mscale = 0.0, mscale_all_dim = 0.0;             // yarn (0: unset)
  bool truncate = true;                                  // yarn
  double attention_factor = 0.0;                         // yarn, longrope (0: the paper's default)
  std::vector<float> short_factor, long_factor;          // longrope, HD/2 each
};
// The frequencies depend on the sequence length only for dynamic NTK (beyond
// original_max) and longrope (short vs long factors): sequences with the same
// rope_length_key(s, T) share their tables. T = tokens in the forward pass.
int64_t rope_length_key(const RopeScaling& s, int T);
// inv_freq[HD/2] and the attention scaling applied to cos/sin, for a sequence of T tokens.
void rope_frequencies(float* inv_freq, float* attention_scaling, const RopeScaling& s, double theta, int HD, int T);
// cos/sin tables [T, HD/2]: cos_t[t,i] = cos(t · inv_freq[i]) · attention_scaling (likewise sin).
void rope_tables(float* cos_t, float* sin_t, int T, int HD, const float* inv_freq, float attention_scaling);
// x[T, NH, HD] -> out: out[i] = x[i]·cos − x[i+HD/2]·sin, out[i+HD/2] = x[i+HD/2]·cos + x[i]·sin.
void rope_forward(float* out, const float* inp, const float* cos_t, const float* sin_t, int T, int NH, int HD);
void rope_backward(float* dinp, const float* dout, const float* cos_t, const float* sin_t, int T, int NH, int HD);

// --- attention.cc: grouped-query causal self-attention ----------------------
// q[T, NH*HD], k/v[T, NKV*HD] (NH a multiple of NKV; head h reads kv head
// h / (NH/NKV)); att[NH, ld, ld] keeps the softmax probabilities (row t valid
// for s <= t; ld >= T is the row stride); out[T, NH*HD] = Σ_s att[h,t,s] · v[s, g].
// The forward computes query rows t in [T0, T) only: rows before T0 (a prompt
// shared by several continuations) are already in out and att. window > 0:
// sliding-window attention, query t sees keys t − window < s <= t (att[h,t,s]
// is then valid for those s only); window = 0: full causal attention.
// The score is q·k · scale (1/sqrt(HD), or Gemma's query_pre_attn_scalar^-0.5),
// then soft-capped when softcap > 0 (Gemma 2: softcap(score) before the mask, softcap.h).
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v,
                       int T0, int T, int NH, int NKV, int HD, int ld, int window, float scale, float softcap = 0.0f);
// dq/dk/dv += ... over all rows [0, T); scratch[T] per kv group, i.e. NKV*T floats.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att,
                        const float* q, const float* k, const float* v, float* scratch,
                        int T, int NH, int NKV, int HD, int ld, int window, float scale, float softcap = 0.0f);

// The MLP's gating activation: silu (SwiGLU, swiglu.cc) or gelu_pytorch_tanh (GeGLU, geglu.cc).
enum class Activation { Silu, GeluTanh };

// --- swiglu.cc: out = silu(gate) ⊙ up ---------------------------------------
void swiglu_forward(float* out, const float* gate, const float* up, int N);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int N);

// --- geglu.cc: out = gelu_tanh(gate) ⊙ up (Gemma's gelu_pytorch_tanh MLP) ---
void geglu_forward(float* out, const float* gate, const float* up, int N);
void geglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int N);

// --- softcap.cc: x = cap · tanh(x / cap), in place (Gemma's final logit soft-capping) ---
void softcap_forward(float* x, int64_t N, float cap);
// dx ⊙= d softcap / dx, read from the capped values y (softcap.h).
void softcap_backward(float* dx, const float* y, int64_t N, float cap);

// --- residual (in swiglu.cc): out = a + b ----------------------------------
void residual_forward(float* out, const float* a, const float* b, int N);

// --- logprob.cc: log-softmax / cross-entropy over the vocabulary ------------
// logp[t] = log softmax(logits[t,:])[targets[t]] for t < T (computed in double).
void logprob_forward(float* logp, const float* logits, const int32_t* targets, int T, int V);
// dlogits[t,:] = dloss[t] · (onehot(targets[t]) − softmax(logits[t,:])): the gradient
// of Σ_t dloss[t] · logp[t]. Overwrites dlogits.
void logprob_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int T, int V);

}  // namespace dfm
