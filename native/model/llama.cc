// LlamaModel: parameter layout, forward and backward over one sequence, and
// the per-example scoring and Fisher contributions built on them.
#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "model/layers.h"
#include "util/error.h"

namespace dfm {

namespace {
void zero(float* p, size_t n) { std::memset(p, 0, n * sizeof(float)); }
}  // namespace

LlamaModel::LlamaModel(const LlamaConfig& c) : cfg_(c) {
  auto bad = [](const std::string& field, const std::string& why) {
    throw DfError("InvalidConfig", "config field " + field + " " + why);
  };
  if (c.hidden <= 0) bad("hidden_size", "must be positive");
  if (c.intermediate <= 0) bad("intermediate_size", "must be positive");
  if (c.n_heads <= 0) bad("num_attention_heads", "must be positive");
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0)
    bad("num_key_value_heads", "must be positive and divide num_attention_heads");
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) bad("head_dim", "must be positive and even");
  if (c.n_layers <= 0) bad("num_hidden_layers", "must be positive");
  if (c.vocab <= 0) bad("vocab_size", "must be positive");
  if (c.max_positions <= 0) bad("max_position_embeddings", "must be positive");
  if (!(c.rms_eps > 0)) bad("rms_norm_eps", "must be positive");
  if (!(c.rope_theta > 0)) bad("rope_theta", "must be positive");
  if (c.rope.type != RopeType::Default && c.rope.type != RopeType::Linear && c.rope.original_max <= 0)
    bad("rope_scaling.original_max_position_embeddings", "must be positive");
  if (!(c.rope.factor > 0)) bad("rope_scaling.factor", "must be positive");
  if (c.rope.type == RopeType::Longrope &&
      (c.rope.short_factor.size() != (size_t)c.head_dim / 2 || c.rope.long_factor.size() != (size_t)c.head_dim / 2))
    bad("rope_scaling.short_factor/long_factor", "must have head_dim/2 values each");
  if (!c.layer_window.empty() && c.layer_window.size() != (size_t)c.n_layers)
    bad("layer_types", "must have one entry per layer");
  for (int w : c.layer_window)
    if (w < 0) bad("sliding_window", "must be positive");
  if (!std::isfinite(c.norm_offset)) bad("norm offset", "must be finite");
  if (!(c.embed_scale > 0) || !std::isfinite(c.embed_scale)) bad("embedding scale", "must be positive");
  if (!(c.query_pre_attn_scalar >= 0) || !std::isfinite(c.query_pre_attn_scalar))
    bad("query_pre_attn_scalar", "must be positive");
  if (!(c.attn_softcap >= 0) || !std::isfinite(c.attn_softcap)) bad("attn_logit_softcapping", "must be positive or null");
  if (!(c.final_softcap >= 0) || !std::isfinite(c.final_softcap)) bad("final_logit_softcapping", "must be positive or null");
  if (!c.layer_local_rope.empty()) {
    if (c.layer_local_rope.size() != (size_t)c.n_layers) bad("layer_types", "must have one entry per layer");
    if (!(c.rope_local_theta > 0)) bad("rope_local_base_freq", "must be positive");
    if (!(c.rope_local.factor > 0)) bad("rope_parameters.sliding_attention.factor", "must be positive");
    if (c.rope_local.type != RopeType::Default && c.rope_local.type != RopeType::Linear && c.rope_local.original_max <= 0)
      bad("rope_parameters.sliding_attention.original_max_position_embeddings", "must be positive");
    if (c.rope_local.type == RopeType::Longrope && (c.rope_local.short_factor.size() != (size_t)c.head_dim / 2 ||
                                                    c.rope_local.long_factor.size() != (size_t)c.head_dim / 2))
      bad("rope_parameters.sliding_attention.short_factor/long_factor", "must have head_dim/2 values each");
  }
  // Attention scale: query_pre_attn_scalar^-0.5 (Gemma), else head_dim^-0.5 (Vaswani et al. 2017, eq. 1).
  attn_scale_ = (float)(1.0 / std::sqrt(c.query_pre_attn_scalar > 0 ? (double)c.query_pre_attn_scalar : (double)c.head_dim));
  const int64_t C = c.hidden, I = c.intermediate, V = c.vocab;
  qd_ = c.n_heads * c.head_dim;
  kd_ = c.n_kv_heads * c.head_dim;
  wte_ = add_param("model.embed_tokens.weight", {V, C});
  layers_.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    Layer& ly = layers_[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ly.ln1 = add_param(p + "input_layernorm.weight", {C});
    ly.wq = add_param(p + "self_attn.q_proj.weight", {qd_, C});
    ly.bq = c.attention_bias ? add_param(p + "self_attn.q_proj.bias", {qd_}) : kNone;
    ly.wk = add_param(p + "self_attn.k_proj.weight", {kd_, C});
    ly.bk = c.attention_bias ? add_param(p + "self_attn.k_proj.bias", {kd_}) : kNone;
    ly.wv = add_param(p + "self_attn.v_proj.weight", {kd_, C});
    ly.bv = c.attention_bias ? add_param(p + "self_attn.v_proj.bias", {kd_}) : kNone;
    ly.wo = add_param(p + "self_attn.o_proj.weight", {C, qd_});
    ly.qn = c.qk_norm ? add_param(p + "self_attn.q_norm.weight", {c.head_dim}) : kNone;
    ly.kn = c.qk_norm ? add_param(p + "self_attn.k_norm.weight", {c.head_dim}) : kNone;
    // Llama's post_attention_layernorm is the MLP's input norm; Gemma's
    // normalises the attention output, and pre_feedforward_layernorm the MLP's input.
    ly.lpa = c.post_norms ? add_param(p + "post_attention_layernorm.weight", {C}) : kNone;
    ly.ln2 = add_param(p + (c.post_norms ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"), {C});
    ly.lpf = c.post_norms ? add_param(p + "post_feedforward_layernorm.weight", {C}) : kNone;
    ly.wg = add_param(p + "mlp.gate_proj.weight", {I, C});
    ly.wu = add_param(p + "mlp.up_proj.weight", {I, C});
    ly.wd = add_param(p + "mlp.down_proj.weight", {C, I});
  }
  wnorm_ = add_param("model.norm.weight", {C});
  wlm_ = c.tie_embeddings ? wte_ : add_param("lm_head.weight", {V, C});
  const ParamSpec& last = specs_.back();
  num_params_ = last.offset + last.numel;
  views_.resize(specs_.size());
  owned_.resize(specs_.size());
  soff_.assign(specs_.size(), 0);
  size_t small = 0;
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (specs_[i].shape.size() != 1) continue;
    soff_[i] = small;
    small += specs_[i].numel;
    vec_params_.push_back((int)i);
  }
  w1_.assign(small, 0.0f);
  g1_.assign(small, 0.0f);
}

int LlamaModel::add_param(const std::string& name, std::vector<int64_t> shape) {
  ParamSpec s;
  s.name = name;
  s.numel = 1;
  for (int64_t d : shape) s.numel *= static_cast<size_t>(d);
  s.shape = std::move(shape);
  s.offset = specs_.empty() ? 0 : specs_.back().offset + specs_.back().numel;
  specs_.push_back(std::move(s));
  return (int)specs_.size() - 1;
}

void LlamaModel::set_param(size_t index, const float* data, size_t n) {
  const ParamSpec& s = specs_.at(index);
  if (n != s.numel) {
    throw DfError("ShapeMismatch", "tensor " + s.name + " needs " + std::to_string(s.numel) + " values, got " +
                                       std::to_string(n), s.name);
  }
  owned_[index].assign(data, data + n);
  WeightView v;
  v.a = owned_[index].data();
  v.ta = Dtype::F32;
  v.numel = n;
  bind_param(index, v);
}

void LlamaModel::bind_param(size_t index, const WeightView& view) {
  const ParamSpec& s = specs_.at(index);
  if (view.numel != s.numel || view.a == nullptr) {
    throw DfError("ShapeMismatch", "tensor " + s.name + " needs " + std::to_string(s.numel) + " values, got " +
                                       std::to_string(view.numel), s.name);
  }
  if (view.a != owned_[index].data()) std::vector<float>().swap(owned_[index]);  // now external
  views_[index] = view;
  if (s.shape.size() == 1) view.load(0, s.numel, w1_.data() + soff_[index]);
  cached_.clear();
}

void LlamaModel::get_param(size_t index, float* out) const {
  const ParamSpec& s = specs_.at(index);
  if (!views_[index].a) throw DfError("WeightsNotSet", "tensor " + s.name + " has no weights yet", s.name);
  views_[index].load(0, s.numel, out);
}

void LlamaModel::check_weights() const {
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (!views_[i].a) throw DfError("WeightsNotSet", "tensor " + specs_[i].name + " has no weights yet", specs_[i].name);
  }
}

FisherSink LlamaModel::sink_for(int p, const FisherTarget& t, float w) const {
  FisherSink k;
  k.s = t.s + specs_[p].offset;
  k.d = t.d ? t.d + specs_[p].offset : nullptr;
  k.w = w;
  k.view = &views_[p];
  return k;
}

void LlamaModel::fisher_epsilon(const FisherTarget& t, float eps) const {
  check_weights();
  // s += ε·1², d += ε·1²·λτ: a vector of ones folded with weight ε, in chunks.
  constexpr size_t kOnes = 4096;
  const std::vector<float> ones(kOnes, 1.0f);
  for (size_t p = 0; p < specs_.size(); ++p) {
    const size_t n = specs_[p].numel;
    const FisherSink k = sink_for((int)p, t, eps);
    const long long chunks = (long long)((n + kOnes - 1) / kOnes);
#pragma omp parallel for schedule(static) if (chunks > 8)
    for (long long c = 0; c < chunks; ++c) {
      const size_t i = (size_t)c * kOnes;
      fisher_fold(k, i, ones.data(), std::min(kOnes, n - i));
    }
  }
}

void LlamaModel::ensure_capacity(int T) {
  if (T <= cap_) return;
  const size_t t = static_cast<size_t>(T);
  const size_t C = cfg_.hidden, I = cfg_.intermediate, L = cfg_.n_layers, NH = cfg_.n_heads;
  const size_t NKV = cfg_.n_kv_heads, V = cfg_.vocab;
  seq_.resize(t);
  targets_.resize(t);
  cos_.resize(t * cfg_.head_dim / 2);
  sin_.resize(t * cfg_.head_dim / 2);
  if (!cfg_.layer_local_rope.empty()) {
    cosl_.resize(t * cfg_.head_dim / 2);
    sinl_.resize(t * cfg_.head_dim / 2);
  }
  inv_freq_.resize(cfg_.head_dim / 2);
  rope_key_ = {-1, -1};  // tables are (re)computed by forward() for its sequence length
  res_.resize((L + 1) * t * C);
  h1_.resize(L * t * C); rstd1_.resize(L * t);
  qr_.resize(L * t * qd_); kr_.resize(L * t * kd_); v_.resize(L * t * kd_);
  att_.resize(L * NH * t * t); y_.resize(L * t * qd_);
  x1_.resize(L * t * C); h2_.resize(L * t * C); rstd2_.resize(L * t);
  g_.resize(L * t * I); u_.resize(L * t * I); a_.resize(L * t * I);
  hf_.resize(t * C); rstdf_.resize(t);
  logits_.resize(t * V); logp_.resize(t); dlogits_.resize(t * V); dloss_.resize(t);
  tq_.resize(t * qd_); tk_.resize(t * kd_); tc_.resize(t * C);
  dres_.resize(t * C); dx1_.resize(t * C); dh_.resize(t * C);
  dq_.resize(t * qd_); dk_.resize(t * kd_); dv_.resize(t * kd_);
  dqr_.resize(t * qd_); dkr_.resize(t * kd_); dy_.resize(t * qd_);
  dg_.resize(t * I); du_.resize(t * I); da_.resize(t * I);
  if (cfg_.qk_norm) {
    qp_.resize(L * t * qd_); kp_.resize(L * t * kd_); rstdq_.resize(L * t * NH); rstdk_.resize(L * t * NKV);
  }
  if (cfg_.post_norms) {
    ao_.resize(L * t * C); rstdpa_.resize(L * t); mo_.resize(L * t * C); rstdpf_.resize(L * t); dpn_.resize(t * C);
  }
  datt_.resize(NKV * t); dhf_.resize(t * C);
  cap_ = T;
  cached_.clear();  // the row stride changed
}

// Per-layer activation blocks use the capacity cap_ as their row stride, so the
// rows of a shared prefix stay in place while later rows are (re)computed.
// forward() computes rows [t0, T): rows before t0 must hold the activations of
// tokens[0..t0) (causal attention: they do not depend on later tokens).
void LlamaModel::forward(const int32_t* tokens, int t0, int T, int p0, int p1) {
  const LlamaConfig& c = cfg_;
  const int C = c.hidden, I = c.intermediate, NH = c.n_heads, NKV = c.n_kv_heads, HD = c.head_dim, Vocab = c.vocab;
  for (int t = t0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= Vocab) {
      cached_.clear();
      throw DfError("TokenOutOfRange", "token id " + std::to_string(tokens[t]) + " at position " + std::to_string(t) +
                                           " is outside the vocabulary [0, " + std::to_string(Vocab) + ")");
    }
  }
  check_weights();
  const size_t S = (size_t)cap_;  // row stride of the per-layer blocks
  const size_t sc = S * C, si = S * I, sq = S * qd_, sk = S * kd_;
  // Rope tables for a sequence of T tokens (they depend on T for dynamic NTK
  // and longrope); rows computed with other tables are not reused.
  const std::pair<int64_t, int64_t> rope_key = rope_keys(T);
  if (rope_key != rope_key_) {
    float attention_scaling = 1.0f;
    rope_frequencies(inv_freq_.data(), &attention_scaling, c.rope, c.rope_theta, HD, T);
    rope_tables(cos_.data(), sin_.data(), cap_, HD, inv_freq_.data(), attention_scaling);
    if (!c.layer_local_rope.empty()) {
      rope_frequencies(inv_freq_.data(), &attention_scaling, c.rope_local, c.rope_local_theta, HD, T);
      rope_tables(cosl_.data(), sinl_.data(), cap_, HD, inv_freq_.data(), attention_scaling);
    }
    rope_key_ = rope_key;
    t0 = 0;
  }
  const float off = c.norm_offset;
  const int n = T - t0;  // rows computed now
  const size_t r = (size_t)t0;
  cached_.assign(tokens, tokens + T);
  if (n > 0) {
    embedding_forward(res_.data() + r * C, tokens + t0, V(wte_), n, C, c.embed_scale);
    for (int l = 0; l < c.n_layers; ++l) {
      const Layer& ly = layers_[l];
      const float* x0 = res_.data() + l * sc;
      float* h1 = h1_.data() + l * sc;
      float* qr = qr_.data() + l * sq;
      float* kr = kr_.data() + l * sk;
      float* v = v_.data() + l * sk;
      float* att = att_.data() + (size_t)l * NH * S * S;
      float* y = y_.data() + l * sq;
      float* x1 = x1_.data() + l * sc;
      float* h2 = h2_.data() + l * sc;
      float* g = g_.data() + l * si;
      float* u = u_.data() + l * si;
      float* a = a_.data() + l * si;
      rmsnorm_forward(h1 + r * C, rstd1_.data() + l * S + r, x0 + r * C, W1(ly.ln1), n, C, c.rms_eps, off);
      matmul_forward(tq_.data(), h1 + r * C, V(ly.wq), W1(ly.bq), n, C, qd_);
      matmul_forward(tk_.data(), h1 + r * C, V(ly.wk), W1(ly.bk), n, C, kd_);
      matmul_forward(v + r * kd_, h1 + r * C, V(ly.wv), W1(ly.bv), n, C, kd_);
      if (c.qk_norm) {  // Qwen3 / Gemma 3: per-head RMSNorm of q and k before rope (pre-norm values kept)
        float* qp = qp_.data() + l * sq;
        float* kp = kp_.data() + l * sk;
        std::memcpy(qp + r * qd_, tq_.data(), (size_t)n * qd_ * sizeof(float));
        std::memcpy(kp + r * kd_, tk_.data(), (size_t)n * kd_ * sizeof(float));
        head_rmsnorm_forward(tq_.data(), rstdq_.data() + l * S * NH + r * NH, qp + r * qd_, W1(ly.qn), n, NH, HD, c.rms_eps,
                             off);
        head_rmsnorm_forward(tk_.data(), rstdk_.data() + l * S * NKV + r * NKV, kp + r * kd_, W1(ly.kn), n, NKV, HD,
                             c.rms_eps, off);
      }
      const size_t ro = r * HD / 2;  // rope tables are indexed by absolute position
      const float* cs = (local_rope(l) ? cosl_ : cos_).data() + ro;
      const float* sn = (local_rope(l) ? sinl_ : sin_).data() + ro;
      rope_forward(qr + r * qd_, tq_.data(), cs, sn, n, NH, HD);
      rope_forward(kr + r * kd_, tk_.data(), cs, sn, n, NKV, HD);
      attention_forward(y, att, qr, kr, v, t0, T, NH, NKV, HD, cap_, window_of(l), attn_scale_, c.attn_softcap);
      if (c.post_norms) {  // Gemma: x1 = x0 + post_attention_layernorm(o_proj(y))
        float* ao = ao_.data() + l * sc + r * C;
        matmul_forward(ao, y + r * qd_, V(ly.wo), nullptr, n, qd_, C);
        rmsnorm_forward(tc_.data(), rstdpa_.data() + l * S + r, ao, W1(ly.lpa), n, C, c.rms_eps, off);
      } else {
        matmul_forward(tc_.data(), y + r * qd_, V(ly.wo), nullptr, n, qd_, C);
      }
      residual_forward(x1 + r * C, x0 + r * C, tc_.data(), n * C);
      rmsnorm_forward(h2 + r * C, rstd2_.data() + l * S + r, x1 + r * C, W1(ly.ln2), n, C, c.rms_eps, off);
      matmul_forward(g + r * I, h2 + r * C, V(ly.wg), nullptr, n, C, I);
      matmul_forward(u + r * I, h2 + r * C, V(ly.wu), nullptr, n, C, I);
      if (c.activation == Activation::GeluTanh) geglu_forward(a + r * I, g + r * I, u + r * I, n * I);
      else swiglu_forward(a + r * I, g + r * I, u + r * I, n * I);
      if (c.post_norms) {  // Gemma: x2 = x1 + post_feedforward_layernorm(down_proj(a))
        float* mo = mo_.data() + l * sc + r * C;
        matmul_forward(mo, a + r * I, V(ly.wd), nullptr, n, I, C);
        rmsnorm_forward(tc_.data(), rstdpf_.data() + l * S + r, mo, W1(ly.lpf), n, C, c.rms_eps, off);
      } else {
        matmul_forward(tc_.data(), a + r * I, V(ly.wd), nullptr, n, I, C);
      }
      residual_forward(res_.data() + (l + 1) * sc + r * C, x1 + r * C, tc_.data(), n * C);
    }
    rmsnorm_forward(hf_.data() + r * C, rstdf_.data() + r, res_.data() + c.n_layers * sc + r * C, W1(wnorm_), n, C,
                    c.rms_eps, off);
  }
  // The LM head only at the positions whose logits are wanted (soft-capped for Gemma).
  if (p1 > p0) {
    matmul_forward(logits_.data(), hf_.data() + (size_t)p0 * C, V(wlm_), nullptr, p1 - p0, C, Vocab);
    if (c.final_softcap > 0) softcap_forward(logits_.data(), (int64_t)(p1 - p0) * Vocab, c.final_softcap);
  }
}

std::pair<int64_t, int64_t> LlamaModel::rope_keys(int T) const {
  return {rope_length_key(cfg_.rope, T), cfg_.layer_local_rope.empty() ? 0 : rope_length_key(cfg_.rope_local, T)};
}

void LlamaModel::backward(const int32_t* tokens, int T, int p0, int p1, const float* dlogits, const FisherTarget* target,
                          float w) {
  const LlamaConfig& c = cfg_;
  const int C = c.hidden, I = c.intermediate, NH = c.n_heads, NKV = c.n_kv_heads, HD = c.head_dim, Vocab = c.vocab;
  const bool fused = target != nullptr;
  // Gradient destinations. Full: the flat grads_ (matmul weight gradients are
  // overwritten, each weight being used once; the accumulated ones are zeroed
  // here). Fused: 1-D parameters into g1_, folded at the end; matmul weights
  // straight into the target; the embedding over this sequence's rows.
  if (fused) {
    std::fill(g1_.begin(), g1_.end(), 0.0f);
  } else {
    if (grads_.size() != num_params_) grads_.assign(num_params_, 0.0f);
    for (int p : vec_params_) zero(grads_.data() + specs_[p].offset, specs_[p].numel);
    if (!c.tie_embeddings) zero(grads_.data() + specs_[wte_].offset, specs_[wte_].numel);
  }
  auto grad = [&](int p) -> float* {
    if (p == kNone) return nullptr;
    if (!fused) return grads_.data() + specs_[p].offset;
    return specs_[p].shape.size() == 1 ? g1_.data() + soff_[p] : nullptr;
  };
  // A linear layer's backward: the weight gradient into grads_ or into the target.
  auto linear_backward = [&](float* dinp, int wp, int bp, const float* dout, const float* inp, int Cin, int Cout) {
    if (fused) {
      matmul_backward_fisher(dinp, sink_for(wp, *target, w), nullptr, dout, inp, V(wp), T, Cin, Cout);
      if (bp != kNone) matmul_backward(nullptr, nullptr, grad(bp), dout, inp, V(wp), T, Cin, Cout);
    } else {
      matmul_backward(dinp, grad(wp), grad(bp), dout, inp, V(wp), T, Cin, Cout, true);
    }
  };
  const size_t S = (size_t)cap_;
  const size_t sc = S * C, si = S * I, sq = S * qd_, sk = S * kd_;
  const size_t tc = (size_t)T * C, ti = (size_t)T * I, tq = (size_t)T * qd_, tk = (size_t)T * kd_;
  const float* hf0 = hf_.data() + (size_t)p0 * C;
  // LM head: its input gradient now; its weight gradient now too unless it is
  // tied and fused (then at the end, together with the embedding's rows).
  zero(dhf_.data(), tc);
  if (!fused) {
    matmul_backward(dhf_.data() + (size_t)p0 * C, grad(wlm_), nullptr, dlogits, hf0, V(wlm_), p1 - p0, C, Vocab,
                    /*overwrite_dweight=*/true);  // before the embedding's scatter-add when tied
  } else if (!c.tie_embeddings) {
    matmul_backward_fisher(dhf_.data() + (size_t)p0 * C, sink_for(wlm_, *target, w), nullptr, dlogits, hf0, V(wlm_),
                           p1 - p0, C, Vocab);
  } else {
    matmul_backward(dhf_.data() + (size_t)p0 * C, nullptr, nullptr, dlogits, hf0, V(wlm_), p1 - p0, C, Vocab);
  }
  const float off = c.norm_offset;
  zero(dres_.data(), tc);
  rmsnorm_backward(dres_.data(), grad(wnorm_), dhf_.data(), res_.data() + c.n_layers * sc, W1(wnorm_), rstdf_.data(), T, C,
                   off);
  for (int l = c.n_layers - 1; l >= 0; --l) {
    const Layer& ly = layers_[l];
    const float* x0 = res_.data() + l * sc;
    const float* h1 = h1_.data() + l * sc;
    const float* qr = qr_.data() + l * sq;
    const float* kr = kr_.data() + l * sk;
    const float* v = v_.data() + l * sk;
    const float* att = att_.data() + (size_t)l * NH * S * S;
    const float* y = y_.data() + l * sq;
    const float* x1 = x1_.data() + l * sc;
    const float* h2 = h2_.data() + l * sc;
    const float* g = g_.data() + l * si;
    const float* u = u_.data() + l * si;
    const float* a = a_.data() + l * si;
    // MLP: dres = d(layer output) = d(x1 + down(a)) (Gemma: d(x1 + post_ff_norm(down(a)))).
    const float* dmlp = dres_.data();
    if (c.post_norms) {
      zero(dpn_.data(), tc);
      rmsnorm_backward(dpn_.data(), grad(ly.lpf), dres_.data(), mo_.data() + l * sc, W1(ly.lpf), rstdpf_.data() + l * S, T,
                       C, off);
      dmlp = dpn_.data();
    }
    zero(da_.data(), ti);
    linear_backward(da_.data(), ly.wd, kNone, dmlp, a, I, C);
    if (c.activation == Activation::GeluTanh) geglu_backward(dg_.data(), du_.data(), da_.data(), g, u, T * I);
    else swiglu_backward(dg_.data(), du_.data(), da_.data(), g, u, T * I);
    zero(dh_.data(), tc);
    linear_backward(dh_.data(), ly.wg, kNone, dg_.data(), h2, C, I);
    linear_backward(dh_.data(), ly.wu, kNone, du_.data(), h2, C, I);
    std::memcpy(dx1_.data(), dres_.data(), tc * sizeof(float));
    rmsnorm_backward(dx1_.data(), grad(ly.ln2), dh_.data(), x1, W1(ly.ln2), rstd2_.data() + l * S, T, C, off);
    // Attention: dx1 = d(x0 + o_proj(y)) (Gemma: d(x0 + post_attn_norm(o_proj(y)))).
    const float* dattn = dx1_.data();
    if (c.post_norms) {
      zero(dpn_.data(), tc);
      rmsnorm_backward(dpn_.data(), grad(ly.lpa), dx1_.data(), ao_.data() + l * sc, W1(ly.lpa), rstdpa_.data() + l * S, T,
                       C, off);
      dattn = dpn_.data();
    }
    zero(dy_.data(), tq);
    linear_backward(dy_.data(), ly.wo, kNone, dattn, y, qd_, C);
    zero(dqr_.data(), tq);
    zero(dkr_.data(), tk);
    zero(dv_.data(), tk);
    attention_backward(dqr_.data(), dkr_.data(), dv_.data(), dy_.data(), att, qr, kr, v, datt_.data(), T, NH, NKV, HD,
                       cap_, window_of(l), attn_scale_, c.attn_softcap);
    const float* cs = (local_rope(l) ? cosl_ : cos_).data();
    const float* sn = (local_rope(l) ? sinl_ : sin_).data();
    rope_backward(dq_.data(), dqr_.data(), cs, sn, T, NH, HD);
    rope_backward(dk_.data(), dkr_.data(), cs, sn, T, NKV, HD);
    const float* dq_proj = dq_.data();  // gradient w.r.t. the q/k projections' outputs
    const float* dk_proj = dk_.data();
    if (c.qk_norm) {  // through q_norm / k_norm (dqr_/dkr_ are free after rope_backward)
      zero(dqr_.data(), tq);
      zero(dkr_.data(), tk);
      head_rmsnorm_backward(dqr_.data(), grad(ly.qn), dq_.data(), qp_.data() + l * sq, W1(ly.qn), rstdq_.data() + l * S * NH,
                            T, NH, HD, off);
      head_rmsnorm_backward(dkr_.data(), grad(ly.kn), dk_.data(), kp_.data() + l * sk, W1(ly.kn),
                            rstdk_.data() + l * S * NKV, T, NKV, HD, off);
      dq_proj = dqr_.data();
      dk_proj = dkr_.data();
    }
    zero(dh_.data(), tc);
    linear_backward(dh_.data(), ly.wq, ly.bq, dq_proj, h1, C, qd_);
    linear_backward(dh_.data(), ly.wk, ly.bk, dk_proj, h1, C, kd_);
    linear_backward(dh_.data(), ly.wv, ly.bv, dv_.data(), h1, C, kd_);
    std::memcpy(dres_.data(), dx1_.data(), tc * sizeof(float));
    rmsnorm_backward(dres_.data(), grad(ly.ln1), dh_.data(), x0, W1(ly.ln1), rstd1_.data() + l * S, T, C, off);
  }
  if (!fused) {
    embedding_backward(grad(wte_), dres_.data(), tokens, T, C, c.embed_scale);
    return;
  }
  // Fused: the 1-D parameters' gradients, then the embedding's rows (a compact
  // buffer over the sequence's distinct tokens).
  for (int p : vec_params_) fisher_fold(sink_for(p, *target, w), 0, g1_.data() + soff_[p], specs_[p].numel);
  emb_rows_.assign(tokens, tokens + T);
  std::sort(emb_rows_.begin(), emb_rows_.end());
  emb_rows_.erase(std::unique(emb_rows_.begin(), emb_rows_.end()), emb_rows_.end());
  emb_slot_.resize(T);
  for (int t = 0; t < T; ++t) {
    emb_slot_[t] = (int32_t)(std::lower_bound(emb_rows_.begin(), emb_rows_.end(), tokens[t]) - emb_rows_.begin());
  }
  const size_t R = emb_rows_.size();
  emb_grad_.assign(R * C, 0.0f);
  embedding_backward(emb_grad_.data(), dres_.data(), emb_slot_.data(), T, C, c.embed_scale);
  const FisherSink emb = sink_for(wte_, *target, w);
  if (c.tie_embeddings) {
    // The tied matrix's gradient is the LM head's (every row) plus the
    // embedding's (these rows): the SGEMM folds the other rows, and these rows
    // get the LM head's part added here before they are squared.
    const int np = p1 - p0;
    if (lm_skip_.size() != (size_t)Vocab) lm_skip_.assign(Vocab, 0);
    for (int32_t r : emb_rows_) lm_skip_[r] = 1;
    matmul_backward_fisher(nullptr, emb, lm_skip_.data(), dlogits, hf0, V(wlm_), np, C, Vocab);
    for (int32_t r : emb_rows_) lm_skip_[r] = 0;
    for (size_t k = 0; k < R; ++k) {
      float* gr = emb_grad_.data() + k * C;
      for (int t = 0; t < np; ++t) {
        const float d = dlogits[(size_t)t * Vocab + emb_rows_[k]];
        const float* h = hf0 + (size_t)t * C;
        for (int i = 0; i < C; ++i) gr[i] += d * h[i];
      }
    }
  }
  for (size_t k = 0; k < R; ++k) fisher_fold(emb, (size_t)emb_rows_[k] * C, emb_grad_.data() + k * C, C);
}

// Rows of the cached sequence that can be reused for `tokens`: its common prefix.
int LlamaModel::reusable_rows(const int32_t* tokens, int T) const {
  const int n = std::min<int>(T, (int)cached_.size());
  int i = 0;
  while (i < n && cached_[i] == tokens[i]) ++i;
  return i;
}

std::vector<float> LlamaModel::logits(const int32_t* tokens, int T) {
  if (T <= 0) throw DfError("EmptySequence", "no tokens to run");
  if (T > cfg_.max_positions) throw DfError("SequenceTooLong", "sequence of " + std::to_string(T) +
      " tokens is longer than max_position_embeddings " + std::to_string(cfg_.max_positions));
  ensure_capacity(T);
  forward(tokens, reusable_rows(tokens, T), T, 0, T);
  return std::vector<float>(logits_.begin(), logits_.begin() + (size_t)T * cfg_.vocab);
}

// Sequence = prompt ++ choice[0..L-1): the last choice token is only a target.
// Position P-1+j predicts choice[j], so the LM head runs on positions [P-1, P+L-1).
double LlamaModel::run_choice(const int32_t* prompt, int P, const int32_t* choice, int L) {
  if (P <= 0) throw DfError("EmptyPrompt", "the prompt has no tokens (a prompt needs at least one, e.g. BOS)");
  if (L <= 0) throw DfError("EmptyChoice", "an answer choice has no tokens");
  const int T = P + L - 1;
  if (T > cfg_.max_positions) throw DfError("SequenceTooLong", "prompt + choice of " + std::to_string(P + L) +
      " tokens is longer than max_position_embeddings " + std::to_string(cfg_.max_positions));
  ensure_capacity(T);
  std::copy(prompt, prompt + P, seq_.begin());
  std::copy(choice, choice + L - 1, seq_.begin() + P);
  std::copy(choice, choice + L, targets_.begin());
  forward(seq_.data(), reusable_rows(seq_.data(), T), T, P - 1, T);
  logprob_forward(logp_.data(), logits_.data(), targets_.data(), L, cfg_.vocab);
  double s = 0;
  for (int j = 0; j < L; ++j) s += logp_[j];
  return s / L;  // length-normalised log-likelihood ℓ(y|x)
}

void LlamaModel::backward_choice(int P, int L, const FisherTarget* target, float w) {
  const int T = P + L - 1;
  for (int j = 0; j < L; ++j) dloss_[j] = 1.0f / (float)L;  // dℓ/dlogp_j
  logprob_backward(dlogits_.data(), logits_.data(), targets_.data(), dloss_.data(), L, cfg_.vocab);
  // Through the final soft-capping: logits_ holds the capped logits of these L rows.
  if (cfg_.final_softcap > 0) softcap_backward(dlogits_.data(), logits_.data(), (int64_t)L * cfg_.vocab, cfg_.final_softcap);
  backward(seq_.data(), T, P - 1, T, dlogits_.data(), target, w);
}

template <class F>
void LlamaModel::for_each_row_buffer(F&& f) {
  const size_t S = (size_t)cap_, C = cfg_.hidden, I = cfg_.intermediate, L = cfg_.n_layers;
  f(res_.data(), L + 1, S * C, C);
  for (std::vector<float>* b : {&h1_, &x1_, &h2_}) f(b->data(), L, S * C, C);
  for (std::vector<float>* b : {&rstd1_, &rstd2_}) f(b->data(), L, S, (size_t)1);
  for (std::vector<float>* b : {&qr_, &y_}) f(b->data(), L, S * qd_, (size_t)qd_);
  for (std::vector<float>* b : {&kr_, &v_}) f(b->data(), L, S * kd_, (size_t)kd_);
  for (std::vector<float>* b : {&g_, &u_, &a_}) f(b->data(), L, S * I, I);
  f(hf_.data(), (size_t)1, S * C, C);
  f(rstdf_.data(), (size_t)1, S, (size_t)1);
  f(att_.data(), L * cfg_.n_heads, S * S, S);
  if (cfg_.post_norms) {
    for (std::vector<float>* b : {&ao_, &mo_}) f(b->data(), L, S * C, C);
    for (std::vector<float>* b : {&rstdpa_, &rstdpf_}) f(b->data(), L, S, (size_t)1);
  }
  if (cfg_.qk_norm) {
    f(qp_.data(), L, S * qd_, (size_t)qd_);
    f(kp_.data(), L, S * kd_, (size_t)kd_);
    f(rstdq_.data(), L, S * cfg_.n_heads, (size_t)cfg_.n_heads);
    f(rstdk_.data(), L, S * cfg_.n_kv_heads, (size_t)cfg_.n_kv_heads);
  }
}

size_t LlamaModel::row_floats() {
  size_t n = 0;
  for_each_row_buffer([&](float*, size_t blocks, size_t, size_t width) { n += blocks * width; });
  return n;
}

void LlamaModel::stash_rows(int r0, int r1, std::vector<float>& out) {
  out.resize(row_floats() * (size_t)(r1 - r0));
  float* o = out.data();
  for_each_row_buffer([&](float* base, size_t blocks, size_t stride, size_t width) {
    for (size_t b = 0; b < blocks; ++b) {
      const size_t n = (size_t)(r1 - r0) * width;
      std::memcpy(o, base + b * stride + (size_t)r0 * width, n * sizeof(float));
      o += n;
    }
  });
}

void LlamaModel::restore_rows(int r0, int r1, const std::vector<float>& in) {
  const float* p = in.data();
  for_each_row_buffer([&](float* base, size_t blocks, size_t stride, size_t width) {
    for (size_t b = 0; b < blocks; ++b) {
      const size_t n = (size_t)(r1 - r0) * width;
      std::memcpy(base + b * stride + (size_t)r0 * width, p, n * sizeof(float));
      p += n;
    }
  });
}

double LlamaModel::choice_loglik(const int32_t* prompt, int P, const int32_t* choice, int L) {
  return run_choice(prompt, P, choice, L);
}

double LlamaModel::choice_gradient(const int32_t* prompt, int P, const int32_t* choice, int L) {
  const double ll = run_choice(prompt, P, choice, L);
  backward_choice(P, L);
  return ll;
}

void LlamaModel::fisher_example(const int32_t* prompt, int P, const std::vector<std::vector<int32_t>>& choices,
                                FisherMode mode, int gold, double u, const FisherTarget& target, double* loglik,
                                double* prob) {
  const int K = static_cast<int>(choices.size());
  if (K == 0) throw DfError("NoChoices", "an example has no answer choices");
  int longest = 0;
  for (const auto& ch : choices) longest = std::max(longest, (int)ch.size());
  reserve(P + longest - 1);
  // Score every choice. The prompt's activation rows are computed once and
  // shared; each choice's own rows (and logits) are stashed so its backward
  // needs no second forward (unless that would take more than kStashLimit).
  constexpr size_t kStashLimit = size_t(1) << 28;  // floats (1 GiB)
  size_t stash_floats = 0;
  for (int y = 0; y + 1 < K; ++y) {
    stash_floats += (size_t)std::max(0, (int)choices[y].size() - 1) * row_floats() + choices[y].size() * (size_t)cfg_.vocab;
  }
  // DFMERGE_FISHER_NO_STASH=1 forces the re-forward path (tests).
  const char* no_stash = std::getenv("DFMERGE_FISHER_NO_STASH");
  // Stashed rows are only valid when every choice's sequence gets the same rope
  // tables (dynamic NTK / longrope tables depend on the sequence length).
  bool same_rope = true;
  for (const auto& ch : choices)
    same_rope = same_rope && rope_keys(P + (int)ch.size() - 1) == rope_keys(P + (int)choices[0].size() - 1);
  const bool stash = same_rope && stash_floats <= kStashLimit && !(no_stash && no_stash[0] == '1');
  std::vector<std::vector<float>> rows(stash ? K : 0), logits(stash ? K : 0);
  for (int y = 0; y < K; ++y) {
    const int L = (int)choices[y].size();
    loglik[y] = run_choice(prompt, P, choices[y].data(), L);
    if (stash && y + 1 < K) {
      stash_rows(P, P + L - 1, rows[y]);
      logits[y].assign(logits_.begin(), logits_.begin() + (size_t)L * cfg_.vocab);
    }
  }
  // p(y|x) = softmax over choices of ℓ(·|x).
  double mx = loglik[0];
  for (int y = 1; y < K; ++y) mx = std::max(mx, loglik[y]);
  double z = 0;
  for (int y = 0; y < K; ++y) z += std::exp(loglik[y] - mx);
  for (int y = 0; y < K; ++y) prob[y] = std::exp(loglik[y] - mx) / z;
  std::vector<double> w(K, 0.0);
  if (mode == FisherMode::Expected) {
    for (int y = 0; y < K; ++y) w[y] = prob[y];
  } else if (mode == FisherMode::Sampled) {
    int pick = K - 1;
    double c = 0;
    for (int y = 0; y < K; ++y) {
      c += prob[y];
      if (u < c) { pick = y; break; }
    }
    w[pick] = 1.0;
  } else {
    if (gold < 0 || gold >= K) throw DfError("AnswerOutOfRange", "gold answer index " + std::to_string(gold) +
                                                                     " is outside the " + std::to_string(K) + " choices");
    w[gold] = 1.0;
  }
  // Backward per choice, last choice first (its activations are in place):
  // acc += w_y · (∇ℓ(y|x))², squared per example and per choice.
  for (int y = K - 1; y >= 0; --y) {
    if (w[y] == 0.0) continue;
    const int L = (int)choices[y].size();
    if (y != K - 1) {
      if (stash) {
        const int T = P + L - 1;
        std::copy(choices[y].begin(), choices[y].end() - 1, seq_.begin() + P);
        std::copy(choices[y].begin(), choices[y].end(), targets_.begin());
        restore_rows(P, T, rows[y]);
        std::copy(logits[y].begin(), logits[y].end(), logits_.begin());
        cached_.assign(seq_.begin(), seq_.begin() + T);
      } else {
        run_choice(prompt, P, choices[y].data(), L);
      }
    }
    backward_choice(P, L, &target, (float)(w[y] * target.scale));
  }
}

}  // namespace dfm
