// A Llama-family causal LM (Llama, Mistral, Qwen2/3, Gemma 2/3) with the
// activations of one sequence. Hyperparameters come from config.json, read by
// the TypeScript layer (src/model/config.ts) and passed in as one struct; a
// family is a choice of layer kinds (docs/design.md §9), not its own model.
//
// Weights (docs/design.md §5): every parameter is a WeightView,
// either bound to external memory in its stored dtype (a zero-copy mmap of a
// safetensors tensor; optionally a scaled model θ_pre + λ·τ formed on the fly)
// or set from f32 values the model then owns. 1-D parameters (norms, biases)
// are also kept as small f32 copies. Parameters have a fixed order and a flat
// layout (param_specs(): offset, numel) which full gradients and Fisher
// accumulators (S, W) share; nothing parameter-sized is allocated unless a
// full gradient is asked for (choice_gradient) or a parameter is set from f32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/layers.h"
#include "model/weights.h"

namespace dfm {

struct LlamaConfig {
  int hidden = 0;        // C
  int intermediate = 0;  // I
  int n_heads = 0;       // NH
  int n_kv_heads = 0;    // NKV (NH a multiple of NKV)
  int head_dim = 0;      // HD (hidden / n_heads unless config.json says otherwise)
  int n_layers = 0;      // L
  int vocab = 0;         // V
  int max_positions = 0;
  float rms_eps = 1e-6f;
  float rope_theta = 10000.0f;
  bool tie_embeddings = false;
  bool attention_bias = false;  // q/k/v bias (Qwen2)
  RopeScaling rope;             // rope scaling (rope_type and its parameters)
  std::vector<int> layer_window;  // per layer: sliding window (keys), 0 = full attention; empty = all full
  bool qk_norm = false;         // per-head RMSNorm of q and k before rope (Qwen3 / Gemma 3 q_norm / k_norm)
  // Gemma 2 / 3 layer kinds (docs/design.md §9); the defaults are Llama's.
  Activation activation = Activation::Silu;  // MLP gating: SwiGLU or GeGLU (gelu_pytorch_tanh)
  float norm_offset = 0.0f;     // every RMSNorm scales by (norm_offset + w): 1 for Gemma
  float embed_scale = 1.0f;     // embeddings times this (Gemma: sqrt(hidden_size))
  bool post_norms = false;      // Gemma: norms after attention and MLP, pre_feedforward_layernorm before the MLP
  float query_pre_attn_scalar = 0.0f;  // attention scale query_pre_attn_scalar^-0.5 (0: head_dim)
  float attn_softcap = 0.0f;    // attention score soft-capping (0: none)
  float final_softcap = 0.0f;   // final logit soft-capping (0: none)
  // A second rope for local (sliding-window) layers (Gemma 3: rope_local_base_freq);
  // layer_local_rope[l] != 0 selects it for layer l. Empty: every layer uses rope / rope_theta.
  std::vector<uint8_t> layer_local_rope;
  RopeScaling rope_local;
  float rope_local_theta = 10000.0f;
};

struct ParamSpec {
  std::string name;  // Hugging Face tensor name
  std::vector<int64_t> shape;
  size_t offset = 0;  // in floats, into the flat parameter buffer
  size_t numel = 0;
};

// Which answer choices contribute to the Fisher of one example (docs/design.md §1).
enum class FisherMode { Expected, Sampled, Empirical };

// Where the squared gradients of fisher_example() go: flat accumulators in the
// param_specs() layout. s += scale·w_y·g², d += scale·w_y·g²·λτ (λτ from each
// parameter's view; d may be null). docs/design.md §1.
struct FisherTarget {
  float* s = nullptr;
  float* d = nullptr;
  float scale = 1.0f;
};

class LlamaModel {
 public:
  explicit LlamaModel(const LlamaConfig& cfg);  // validates cfg; no weights yet

  const LlamaConfig& config() const { return cfg_; }
  const std::vector<ParamSpec>& param_specs() const { return specs_; }
  size_t num_params() const { return num_params_; }
  // Copies f32 values into storage the model owns (n must be the param's numel).
  void set_param(size_t index, const float* data, size_t n);
  // Reads the parameter from `view` (borrowed: it must outlive its use here).
  void bind_param(size_t index, const WeightView& view);
  // The parameter's values as f32.
  void get_param(size_t index, float* out) const;
  // Full gradient of the last choice_gradient() (flat layout).
  const float* grads() const { return grads_.data(); }

  // Sizes the activation buffers for sequences of up to T tokens (growing them
  // later drops the cached prefix; reserve before scoring an example's choices).
  void reserve(int T) {
    if (T > 0 && T <= cfg_.max_positions) ensure_capacity(T);
  }

  // Full-vocabulary logits [T, V] of every position of `tokens`.
  std::vector<float> logits(const int32_t* tokens, int T);

  // ℓ(y|x): mean log-probability of the choice's tokens given the prompt.
  double choice_loglik(const int32_t* prompt, int P, const int32_t* choice, int L);
  // ℓ(y|x) and its gradient w.r.t. every parameter (left in grads()).
  double choice_gradient(const int32_t* prompt, int P, const int32_t* choice, int L);

  // One example's contribution to the (unnormalised) diagonal Fisher:
  // target += Σ_y w_y · (∇ℓ(y|x))² (see FisherTarget) with w_y = p(y|x)
  // (expected), 1 for y ~ p drawn with the uniform number u (sampled), or 1 for
  // y = gold (empirical). Writes ℓ(y|x) of every choice into loglik and p(y|x) into prob.
  void fisher_example(const int32_t* prompt, int P, const std::vector<std::vector<int32_t>>& choices,
                      FisherMode mode, int gold, double u, const FisherTarget& target, double* loglik, double* prob);
  // The ε of F = (1/N)·Σ + ε over every parameter: s += ε, d += ε·λτ.
  void fisher_epsilon(const FisherTarget& target, float eps) const;

 private:
  static constexpr int kNone = -1;
  struct Layer {  // parameter indices of one layer; kNone when absent
    int ln1, wq, bq, wk, bk, wv, bv, wo, ln2, wg, wu, wd;
    int qn, kn;  // q_norm / k_norm weights (qk_norm)
    int lpa, lpf;  // post-attention / post-feedforward norms (post_norms)
  };
  int add_param(const std::string& name, std::vector<int64_t> shape);
  void ensure_capacity(int T);
  void check_weights() const;
  const WeightView& V(int p) const { return views_[p]; }
  const float* W1(int p) const { return p == kNone ? nullptr : w1_.data() + soff_[p]; }
  FisherSink sink_for(int p, const FisherTarget& t, float w) const;
  int window_of(int layer) const { return cfg_.layer_window.empty() ? 0 : cfg_.layer_window[layer]; }
  bool local_rope(int layer) const { return !cfg_.layer_local_rope.empty() && cfg_.layer_local_rope[layer] != 0; }
  // Key of the rope tables a sequence of T tokens gets (both ropes' rope_length_key).
  std::pair<int64_t, int64_t> rope_keys(int T) const;
  // Forward of rows [t0, T) of tokens (rows before t0 already hold the
  // activations of tokens[0..t0)); logits for positions [p0, p1) into logits_.
  void forward(const int32_t* tokens, int t0, int T, int p0, int p1);
  int reusable_rows(const int32_t* tokens, int T) const;
  // Backward of Σ_t dloss[t]·logp[t] after forward(). Without a target: the full
  // gradient into grads_. With one: every parameter's gradient is folded into it
  // with weight w (matmul weights inside the SGEMM epilogue, the embedding over
  // the sequence's rows only); no parameter-sized gradient exists.
  void backward(const int32_t* tokens, int T, int p0, int p1, const float* dlogits, const FisherTarget* target = nullptr,
                float w = 0.0f);
  // Forward of prompt ++ choice[0..L-1) with logits for the choice's tokens; returns ℓ.
  double run_choice(const int32_t* prompt, int P, const int32_t* choice, int L);
  // Backward of ℓ after run_choice() on the same choice (into target when given).
  void backward_choice(int P, int L, const FisherTarget* target = nullptr, float w = 0.0f);
  // The activation rows [r0, r1) of every per-layer buffer, visited as
  // f(base, blocks, block_stride, width): rows of a choice, to stash and restore.
  template <class F>
  void for_each_row_buffer(F&& f);
  size_t row_floats();  // floats in one row across all buffers
  void stash_rows(int r0, int r1, std::vector<float>& out);
  void restore_rows(int r0, int r1, const std::vector<float>& in);

  LlamaConfig cfg_;
  std::vector<ParamSpec> specs_;
  size_t num_params_ = 0;
  std::vector<WeightView> views_;
  std::vector<std::vector<float>> owned_;  // f32 storage of parameters set with set_param
  // 1-D parameters (norms, biases) as f32: values, and their gradient in a fused backward.
  std::vector<size_t> soff_;  // offset into w1_/g1_ per parameter (1-D ones only)
  std::vector<int> vec_params_;
  std::vector<float> w1_, g1_;
  std::vector<float> grads_;  // full gradient (allocated by the first choice_gradient)
  int wte_ = 0, wnorm_ = 0, wlm_ = 0;
  std::vector<Layer> layers_;

  // Activations of one sequence, sized for cap_ positions.
  int cap_ = 0;
  int qd_ = 0, kd_ = 0;  // NH*HD, NKV*HD
  std::vector<int32_t> seq_, targets_;
  std::vector<int32_t> cached_;  // tokens whose activation rows are valid (a causal prefix)
  std::vector<float> cos_, sin_, inv_freq_;
  std::vector<float> cosl_, sinl_;  // local layers' rope tables (layer_local_rope)
  std::pair<int64_t, int64_t> rope_key_{-1, -1};  // rope_keys() of the tables in cos_/sin_, cosl_/sinl_ (-1: none)
  float attn_scale_ = 1.0f;  // query_pre_attn_scalar^-0.5 or head_dim^-0.5
  std::vector<float> res_;                 // [L+1, T, C] residual stream
  std::vector<float> h1_, rstd1_, qr_, kr_, v_, att_, y_, x1_, h2_, rstd2_, g_, u_, a_;  // per layer
  std::vector<float> hf_, rstdf_, logits_, logp_, dlogits_, dloss_;
  std::vector<float> qp_, kp_, rstdq_, rstdk_;  // per layer, qk_norm only: q/k before the norm, its rstd
  std::vector<float> ao_, rstdpa_, mo_, rstdpf_;  // per layer, post_norms only: o_proj / down_proj outputs, their rstd
  // scratch
  std::vector<float> dpn_;  // post_norms: gradient w.r.t. a post-norm's input
  std::vector<float> tq_, tk_, tc_, dres_, dx1_, dh_, dq_, dk_, dv_, dqr_, dkr_, dy_, dg_, du_, da_, datt_, dhf_;
  // fused backward: the sequence's distinct tokens, each position's slot, their embedding-row gradients
  std::vector<int32_t> emb_rows_, emb_slot_;
  std::vector<float> emb_grad_;
  std::vector<uint8_t> lm_skip_;  // [V]: rows of a tied LM head folded together with the embedding's
};

}  // namespace dfm
