// Bindings for the Llama-family runtime: a LlamaModel object holding f32
// weights; long work (logits, scoring, gradients, Fisher) runs on the libuv
// pool in an AsyncWorker and returns a Promise. One call at a time per model.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <vector>

#include "bindings/bindings.h"
#include "bindings/buffer_wrap.h"
#include "bindings/napi_util.h"
#include "kernels/fisher.h"
#include "model/layers.h"
#include "model/llama.h"
#include "util/compute_thread.h"
#include "util/threads.h"

namespace dfm {

namespace {

struct Example {
  std::vector<int32_t> prompt;
  std::vector<std::vector<int32_t>> choices;
  int answer = -1;
  double u = 0.0;
};

int int_field(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_type(o.Env(), std::string("config.") + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int>(d))) throw_type(o.Env(), std::string("config.") + key + " must be an integer");
  return static_cast<int>(d);
}

float float_field(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_type(o.Env(), std::string("config.") + key + " must be a number");
  return static_cast<float>(v.As<Napi::Number>().DoubleValue());
}

bool bool_field(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) throw_type(o.Env(), std::string("config.") + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

double opt_number(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw_type(o.Env(), std::string("config.rope.") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

std::vector<float> float_list(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  std::vector<float> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) throw_type(o.Env(), std::string("config.rope.") + key + " must be an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    if (!a.Get(i).IsNumber()) throw_type(o.Env(), std::string("config.rope.") + key + " must be an array of numbers");
    out.push_back((float)a.Get(i).As<Napi::Number>().DoubleValue());
  }
  return out;
}

// config.rope (optional; absent = default rope): {type, factor, originalMax, ...} (src/model/config.ts).
// key: "rope", or the local layers' rope object (config.localRope.scaling).
RopeScaling rope_of(Napi::Object cfg, const char* key = "rope") {
  RopeScaling r;
  Napi::Value v = cfg.Get(key);
  if (v.IsUndefined() || v.IsNull()) return r;
  if (!v.IsObject()) throw_type(cfg.Env(), std::string("config.") + key + " must be an object");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value tv = o.Get("type");
  const std::string t = tv.IsString() ? tv.As<Napi::String>().Utf8Value() : "";
  if (t == "default") r.type = RopeType::Default;
  else if (t == "linear") r.type = RopeType::Linear;
  else if (t == "dynamic") r.type = RopeType::Dynamic;
  else if (t == "yarn") r.type = RopeType::Yarn;
  else if (t == "longrope") r.type = RopeType::Longrope;
  else if (t == "llama3") r.type = RopeType::Llama3;
  else throw_type(cfg.Env(), "config.rope.type must be default, linear, dynamic, yarn, longrope or llama3, got " + t);
  r.factor = opt_number(o, "factor", 1.0);
  r.original_max = (int)opt_number(o, "originalMax", 0);
  r.low_freq_factor = opt_number(o, "lowFreqFactor", r.low_freq_factor);
  r.high_freq_factor = opt_number(o, "highFreqFactor", r.high_freq_factor);
  r.beta_fast = opt_number(o, "betaFast", r.beta_fast);
  r.beta_slow = opt_number(o, "betaSlow", r.beta_slow);
  r.mscale = opt_number(o, "mscale", 0.0);
  r.mscale_all_dim = opt_number(o, "mscaleAllDim", 0.0);
  r.attention_factor = opt_number(o, "attentionFactor", 0.0);
  Napi::Value tr = o.Get("truncate");
  r.truncate = tr.IsBoolean() ? tr.As<Napi::Boolean>().Value() : true;
  r.short_factor = float_list(o, "shortFactor");
  r.long_factor = float_list(o, "longFactor");
  return r;
}

// config.layerWindows (optional): sliding window per layer, 0 = full attention.
std::vector<int> windows_of(Napi::Object cfg) {
  Napi::Value v = cfg.Get("layerWindows");
  std::vector<int> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) throw_type(cfg.Env(), "config.layerWindows must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    if (!a.Get(i).IsNumber()) throw_type(cfg.Env(), "config.layerWindows must be an array of integers");
    out.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  return out;
}

double opt_config_number(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw_type(o.Env(), std::string("config.") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool opt_bool(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsBoolean()) throw_type(o.Env(), std::string("config.") + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// The Gemma layer kinds of config (src/model/config.ts): activation, norm
// offset, embedding scale, post-norms, attention scale, soft-capping, local rope.
void gemma_fields_of(Napi::Object o, LlamaConfig& c) {
  Napi::Value act = o.Get("activation");
  if (!act.IsUndefined() && !act.IsNull()) {
    const std::string a = act.IsString() ? act.As<Napi::String>().Utf8Value() : "";
    if (a == "silu") c.activation = Activation::Silu;
    else if (a == "gelu_pytorch_tanh") c.activation = Activation::GeluTanh;
    else throw_type(o.Env(), "config.activation must be silu or gelu_pytorch_tanh, got " + a);
  }
  c.norm_offset = (float)opt_config_number(o, "normOffset", 0.0);
  c.embed_scale = (float)opt_config_number(o, "embedScale", 1.0);
  c.post_norms = opt_bool(o, "postNorms");
  c.query_pre_attn_scalar = (float)opt_config_number(o, "queryPreAttnScalar", 0.0);
  c.attn_softcap = (float)opt_config_number(o, "attnSoftcap", 0.0);
  c.final_softcap = (float)opt_config_number(o, "finalSoftcap", 0.0);
  Napi::Value lr = o.Get("localRope");
  if (lr.IsUndefined() || lr.IsNull()) return;
  if (!lr.IsObject()) throw_type(o.Env(), "config.localRope must be an object {theta, scaling, layers}");
  Napi::Object l = lr.As<Napi::Object>();
  c.rope_local_theta = float_field(l, "theta");
  c.rope_local = rope_of(l, "scaling");
  Napi::Value layers = l.Get("layers");
  if (!layers.IsArray()) throw_type(o.Env(), "config.localRope.layers must be an array of booleans");
  Napi::Array a = layers.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    if (!a.Get(i).IsBoolean()) throw_type(o.Env(), "config.localRope.layers must be an array of booleans");
    c.layer_local_rope.push_back(a.Get(i).As<Napi::Boolean>().Value() ? 1 : 0);
  }
}

std::vector<int32_t> tokens_of(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw_type(env, std::string(what) + " must be an Int32Array of token ids");
  }
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<Example> examples_of(Napi::Env env, Napi::Value v) {
  if (!v.IsArray()) throw_type(env, "examples must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<Example> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value ev = arr.Get(i);
    if (!ev.IsObject()) throw_type(env, "examples[" + std::to_string(i) + "] must be an object");
    Napi::Object e = ev.As<Napi::Object>();
    out[i].prompt = tokens_of(env, e.Get("prompt"), "example.prompt");
    Napi::Value cv = e.Get("choices");
    if (!cv.IsArray()) throw_type(env, "examples[" + std::to_string(i) + "].choices must be an array");
    Napi::Array ca = cv.As<Napi::Array>();
    for (uint32_t j = 0; j < ca.Length(); ++j) out[i].choices.push_back(tokens_of(env, ca.Get(j), "example.choices[j]"));
    if (e.Get("answer").IsNumber()) out[i].answer = e.Get("answer").As<Napi::Number>().Int32Value();
    if (e.Get("u").IsNumber()) out[i].u = e.Get("u").As<Napi::Number>().DoubleValue();
  }
  return out;
}

class LlamaModelWrap;

// Runs `work` off the main thread; resolves the promise with `done(env)` or
// rejects it with the converted native error.
class ModelWorker : public Napi::AsyncWorker {
 public:
  ModelWorker(Napi::Env env, LlamaModelWrap* owner, std::function<void()> work,
              std::function<Napi::Value(Napi::Env)> done, std::vector<Napi::Object> keep);
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      // on the thread that runs every OpenMP job (util/compute_thread.h); the
      // thread count is that thread's setting: set there for this job, then restored
      run_on_compute_thread([this] {
        struct Restore {
          int n = omp_get_max_threads();
          ~Restore() { omp_set_num_threads(n); }
        } restore;
        omp_set_num_threads(threads_);
        work_();
      });
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  void finish();
  Napi::Promise::Deferred deferred_;
  LlamaModelWrap* owner_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::vector<Napi::ObjectReference> keep_;
  std::exception_ptr error_;
  int threads_;
};

class LlamaModelWrap : public Napi::ObjectWrap<LlamaModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "LlamaModel", {
      InstanceMethod<&LlamaModelWrap::Params>("params"),
      InstanceMethod<&LlamaModelWrap::NumParams>("numParams"),
      InstanceMethod<&LlamaModelWrap::SetParam>("setParam"),
      InstanceMethod<&LlamaModelWrap::BindParam>("bindParam"),
      InstanceMethod<&LlamaModelWrap::FisherEpsilon>("fisherEpsilon"),
      InstanceMethod<&LlamaModelWrap::GetParam>("getParam"),
      InstanceMethod<&LlamaModelWrap::Logits>("logits"),
      InstanceMethod<&LlamaModelWrap::Score>("score"),
      InstanceMethod<&LlamaModelWrap::Gradient>("gradient"),
      InstanceMethod<&LlamaModelWrap::Fisher>("fisher"),
    });
  }

  explicit LlamaModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LlamaModelWrap>(info) {
    try {
      if (!info[0].IsObject()) throw_type(info.Env(), "LlamaModel(config): config must be an object");
      Napi::Object o = info[0].As<Napi::Object>();
      LlamaConfig c;
      c.hidden = int_field(o, "hidden");
      c.intermediate = int_field(o, "intermediate");
      c.n_heads = int_field(o, "heads");
      c.n_kv_heads = int_field(o, "kvHeads");
      c.head_dim = int_field(o, "headDim");
      c.n_layers = int_field(o, "layers");
      c.vocab = int_field(o, "vocab");
      c.max_positions = int_field(o, "maxPositions");
      c.rms_eps = float_field(o, "rmsEps");
      c.rope_theta = float_field(o, "ropeTheta");
      c.tie_embeddings = bool_field(o, "tieEmbeddings");
      c.attention_bias = bool_field(o, "attentionBias");
      c.rope = rope_of(o);
      c.layer_window = windows_of(o);
      c.qk_norm = o.Get("qkNorm").IsBoolean() && o.Get("qkNorm").As<Napi::Boolean>().Value();
      gemma_fields_of(o, c);
      model_ = std::make_unique<LlamaModel>(c);
      keep_a_.resize(model_->param_specs().size());
      keep_b_.resize(model_->param_specs().size());
    } catch (...) {
      rethrow_as_js(info.Env());
    }
  }

  bool busy = false;

 private:
  void check_idle(Napi::Env env) {
    if (busy) {
      Napi::Error err = Napi::Error::New(env, "the model is busy with another call; await it first");
      err.Set("code", Napi::String::New(env, "ModelBusy"));
      throw err;
    }
  }

  Napi::Value queue(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done,
                    std::vector<Napi::Object> keep = {}) {
    check_idle(env);
    auto* w = new ModelWorker(env, this, std::move(work), std::move(done), std::move(keep));
    busy = true;
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  Napi::Value Params(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& specs = model_->param_specs();
    Napi::Array out = Napi::Array::New(env, specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", specs[i].name);
      Napi::Array shape = Napi::Array::New(env, specs[i].shape.size());
      for (size_t d = 0; d < specs[i].shape.size(); ++d) shape.Set(d, Napi::Number::New(env, (double)specs[i].shape[d]));
      o.Set("shape", shape);
      o.Set("offset", Napi::Number::New(env, (double)specs[i].offset));
      o.Set("numel", Napi::Number::New(env, (double)specs[i].numel));
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value NumParams(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)model_->num_params());
  }

  uint64_t spec_index(const Napi::CallbackInfo& info, size_t i) {
    const uint64_t idx = index_arg(info, i, "param index");
    if (idx >= model_->param_specs().size()) throw_type(info.Env(), "param index out of range");
    return idx;
  }

  // setParam(index, Float32Array): copies one tensor's f32 values in.
  Napi::Value SetParam(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      check_idle(info.Env());
      const uint64_t idx = spec_index(info, 0);
      Napi::Float32Array a = f32_arg(info, 1, "setParam: data");
      model_->set_param(idx, a.Data(), a.ElementLength());
      keep_a_[idx].Reset();
      keep_b_[idx].Reset();
      return info.Env().Undefined();
    });
  }

  // bindParam(index, a, aDtype, b | null, bDtype, lambda): the parameter reads
  // a (bytes of numel elements of aDtype, e.g. a zero-copy mmap view), or the
  // scaled model a + λ·(b − a). b may hold fewer elements than a (a fine-tune
  // with fewer vocabulary rows; the rows it lacks read a). The buffers are kept
  // alive while bound.
  Napi::Value BindParam(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      check_idle(env);
      const uint64_t idx = spec_index(info, 0);
      const ParamSpec& s = model_->param_specs()[idx];
      size_t b_numel = s.numel;
      auto tensor = [&](size_t arg, size_t dt_arg, const char* what, Dtype* dtype, bool may_be_shorter) -> const void* {
        const ByteSpan b = bytes_arg(info, arg, what);
        *dtype = compute_dtype_arg(info, dt_arg);
        const size_t es = dtype_size(*dtype);
        if (may_be_shorter && b.size < s.numel * es && b.size % es == 0) {
          b_numel = b.size / es;
          return b.data;
        }
        if (b.size != s.numel * es) {
          throw DfError("ShapeMismatch", std::string(what) + " of tensor " + s.name + " has " + std::to_string(b.size) +
                                             " bytes, " + std::to_string(s.numel) + " elements need " +
                                             std::to_string(s.numel * dtype_size(*dtype)), s.name);
        }
        return b.data;
      };
      WeightView v;
      v.numel = s.numel;
      v.a = tensor(1, 2, "a", &v.ta, false);
      const bool scaled = !info[3].IsNull() && !info[3].IsUndefined();
      if (scaled) {
        v.b = tensor(3, 4, "b", &v.tb, true);
        v.b_numel = b_numel;
        v.lambda = (float)number_arg(info, 5, "lambda");
        if (!std::isfinite(v.lambda)) throw_type(env, "bindParam: lambda must be finite");
      }
      model_->bind_param(idx, v);
      keep_a_[idx] = Napi::Persistent(info[1].As<Napi::Object>());
      if (scaled) keep_b_[idx] = Napi::Persistent(info[3].As<Napi::Object>());
      else keep_b_[idx].Reset();
      return env.Undefined();
    });
  }

  // getParam(index) -> Float32Array copy.
  Napi::Value GetParam(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const uint64_t idx = spec_index(info, 0);
      Napi::Float32Array a = Napi::Float32Array::New(info.Env(), model_->param_specs()[idx].numel);
      model_->get_param(idx, a.Data());
      return a;
    });
  }

  // logits(tokens: Int32Array) -> Promise<Float32Array [T*V]>
  Napi::Value Logits(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto tokens = std::make_shared<std::vector<int32_t>>(tokens_of(info.Env(), info[0], "tokens"));
      auto out = std::make_shared<std::vector<float>>();
      LlamaModel* m = model_.get();
      return queue(info.Env(), [=] { *out = m->logits(tokens->data(), (int)tokens->size()); },
                   [=](Napi::Env env) -> Napi::Value {
                     Napi::Float32Array a = Napi::Float32Array::New(env, out->size());
                     std::memcpy(a.Data(), out->data(), out->size() * sizeof(float));
                     return a;
                   });
    });
  }

  // score(examples) -> Promise<Float64Array[]>: ℓ(y|x) of every choice of every example.
  Napi::Value Score(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto ex = std::make_shared<std::vector<Example>>(examples_of(info.Env(), info[0]));
      auto out = std::make_shared<std::vector<std::vector<double>>>(ex->size());
      LlamaModel* m = model_.get();
      return queue(info.Env(),
                   [=] {
                     for (size_t i = 0; i < ex->size(); ++i) {
                       const Example& e = (*ex)[i];
                       size_t longest = 0;
                       for (const auto& c : e.choices) longest = std::max(longest, c.size());
                       m->reserve((int)(e.prompt.size() + longest) - 1);
                       for (const auto& c : e.choices) {
                         (*out)[i].push_back(m->choice_loglik(e.prompt.data(), (int)e.prompt.size(), c.data(), (int)c.size()));
                       }
                     }
                   },
                   [=](Napi::Env env) -> Napi::Value {
                     Napi::Array arr = Napi::Array::New(env, out->size());
                     for (size_t i = 0; i < out->size(); ++i) {
                       Napi::Float64Array a = Napi::Float64Array::New(env, (*out)[i].size());
                       std::copy((*out)[i].begin(), (*out)[i].end(), a.Data());
                       arr.Set(i, a);
                     }
                     return arr;
                   });
    });
  }

  // gradient(prompt, choice) -> Promise<{loglik, grad: Float32Array (flat, param layout)}>
  Napi::Value Gradient(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto prompt = std::make_shared<std::vector<int32_t>>(tokens_of(info.Env(), info[0], "prompt"));
      auto choice = std::make_shared<std::vector<int32_t>>(tokens_of(info.Env(), info[1], "choice"));
      auto ll = std::make_shared<double>(0.0);
      LlamaModel* m = model_.get();
      return queue(info.Env(),
                   [=] { *ll = m->choice_gradient(prompt->data(), (int)prompt->size(), choice->data(), (int)choice->size()); },
                   [=](Napi::Env env) -> Napi::Value {
                     Napi::Object o = Napi::Object::New(env);
                     o.Set("loglik", Napi::Number::New(env, *ll));
                     Napi::Float32Array g = Napi::Float32Array::New(env, m->num_params());
                     std::memcpy(g.Data(), m->grads(), m->num_params() * sizeof(float));
                     o.Set("grad", g);
                     return o;
                   });
    });
  }

  // The S and W arguments of fisher / fisherEpsilon: FloatBuffer or Float32Array
  // of numParams() floats (W may be null).
  FisherTarget target_args(const Napi::CallbackInfo& info, std::vector<Napi::Object>& keep) {
    Napi::Env env = info.Env();
    FisherTarget t;
    const FloatSpan s = float_span(info[0]);
    if (!s.data || s.size != model_->num_params()) {
      throw_type(env, "fisher: S must be a FloatBuffer or Float32Array of numParams() = " +
                          std::to_string(model_->num_params()) + " floats");
    }
    t.s = s.data;
    keep.push_back(info[0].As<Napi::Object>());
    if (!info[1].IsNull() && !info[1].IsUndefined()) {
      const FloatSpan d = float_span(info[1]);
      if (!d.data || d.size != model_->num_params()) {
        throw_type(env, "fisher: W must be null or a FloatBuffer or Float32Array of numParams() floats");
      }
      t.d = d.data;
      keep.push_back(info[1].As<Napi::Object>());
    }
    return t;
  }

  // fisher(S, W | null, examples, mode, scale) -> Promise<{loglik, prob}[]>;
  // S += scale·Σ_examples Σ_y w_y·g_y², W += scale·Σ w_y·g_y²·λτ (flat param layout).
  Napi::Value Fisher(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      std::vector<Napi::Object> keep;
      FisherTarget target = target_args(info, keep);
      auto ex = std::make_shared<std::vector<Example>>(examples_of(env, info[2]));
      const std::string ms = string_arg(info, 3, "mode");
      FisherMode mode;
      if (ms == "expected") mode = FisherMode::Expected;
      else if (ms == "sampled") mode = FisherMode::Sampled;
      else if (ms == "empirical") mode = FisherMode::Empirical;
      else throw_type(env, "fisher: mode must be expected, sampled or empirical, got " + ms);
      target.scale = (float)number_arg(info, 4, "scale");
      if (!std::isfinite(target.scale)) throw_type(env, "fisher: scale must be finite");
      auto ll = std::make_shared<std::vector<std::vector<double>>>(ex->size());
      auto pr = std::make_shared<std::vector<std::vector<double>>>(ex->size());
      LlamaModel* m = model_.get();
      return queue(env,
                   [=] {
                     for (size_t i = 0; i < ex->size(); ++i) {
                       const Example& e = (*ex)[i];
                       (*ll)[i].resize(e.choices.size());
                       (*pr)[i].resize(e.choices.size());
                       m->fisher_example(e.prompt.data(), (int)e.prompt.size(), e.choices, mode, e.answer, e.u, target,
                                         (*ll)[i].data(), (*pr)[i].data());
                     }
                   },
                   [=](Napi::Env env) -> Napi::Value {
                     Napi::Array arr = Napi::Array::New(env, ll->size());
                     for (size_t i = 0; i < ll->size(); ++i) {
                       Napi::Object o = Napi::Object::New(env);
                       Napi::Float64Array a = Napi::Float64Array::New(env, (*ll)[i].size());
                       std::copy((*ll)[i].begin(), (*ll)[i].end(), a.Data());
                       Napi::Float64Array b = Napi::Float64Array::New(env, (*pr)[i].size());
                       std::copy((*pr)[i].begin(), (*pr)[i].end(), b.Data());
                       o.Set("loglik", a);
                       o.Set("prob", b);
                       arr.Set(i, o);
                     }
                     return arr;
                   },
                   keep);
    });
  }

  // fisherEpsilon(S, W | null, eps) -> Promise<void>: S += ε, W += ε·λτ over every parameter.
  Napi::Value FisherEpsilon(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      std::vector<Napi::Object> keep;
      const FisherTarget target = target_args(info, keep);
      const float eps = (float)number_arg(info, 2, "eps");
      LlamaModel* m = model_.get();
      return queue(info.Env(), [=] { m->fisher_epsilon(target, eps); },
                   [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, keep);
    });
  }

  std::unique_ptr<LlamaModel> model_;
  std::vector<Napi::ObjectReference> keep_a_, keep_b_;  // the JS buffers bound parameters read
};

ModelWorker::ModelWorker(Napi::Env env, LlamaModelWrap* owner, std::function<void()> work,
                         std::function<Napi::Value(Napi::Env)> done, std::vector<Napi::Object> keep)
    : Napi::AsyncWorker(env, "dfmerge.model"),
      deferred_(Napi::Promise::Deferred::New(env)),
      owner_(owner),
      work_(std::move(work)),
      done_(std::move(done)),
      threads_(get_threads()) {
  owner_->Ref();
  for (auto& o : keep) keep_.push_back(Napi::Persistent(o));
}

void ModelWorker::finish() {
  owner_->busy = false;
  owner_->Unref();
}

void ModelWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  finish();
  try {
    if (error_) {
      try {
        std::rethrow_exception(error_);
      } catch (...) {
        rethrow_as_js(env);
      }
    }
    deferred_.Resolve(done_(env));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

void ModelWorker::OnError(const Napi::Error& e) {
  finish();
  deferred_.Reject(e.Value());
}

// fisherFinalize(acc: Float32Array, scale, eps): acc = acc·scale + eps.
Napi::Value FisherFinalize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array acc = f32_arg(info, 0, "fisherFinalize: acc");
    fisher_finalize(acc.Data(), (float)number_arg(info, 1, "scale"), (float)number_arg(info, 2, "eps"), acc.ElementLength());
    return info.Env().Undefined();
  });
}

// fisherAccumulate(acc, g, w): acc += w·g² (exposed for tests and the merge loop).
Napi::Value FisherAccumulate(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array acc = f32_arg(info, 0, "fisherAccumulate: acc");
    Napi::Float32Array g = f32_arg(info, 1, "fisherAccumulate: g");
    if (acc.ElementLength() != g.ElementLength()) throw_type(info.Env(), "fisherAccumulate: acc and g differ in length");
    fisher_accumulate(acc.Data(), g.Data(), (float)number_arg(info, 2, "w"), acc.ElementLength());
    return info.Env().Undefined();
  });
}

// fisherInterpolate(out, f0, f1, t, log): the Fisher between two grid points (kernels/fisher.h).
Napi::Value FisherInterpolate(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array out = f32_arg(info, 0, "fisherInterpolate: out");
    Napi::Float32Array f0 = f32_arg(info, 1, "fisherInterpolate: f0");
    Napi::Float32Array f1 = f32_arg(info, 2, "fisherInterpolate: f1");
    if (f0.ElementLength() != out.ElementLength() || f1.ElementLength() != out.ElementLength()) {
      throw_type(info.Env(), "fisherInterpolate: out, f0 and f1 differ in length");
    }
    const double t = number_arg(info, 3, "t");
    if (!(t >= 0 && t <= 1)) throw_type(info.Env(), "fisherInterpolate: t must be in [0, 1]");
    if (!info[4].IsBoolean()) throw_type(info.Env(), "fisherInterpolate: log must be a boolean");
    fisher_interpolate(out.Data(), f0.Data(), f1.Data(), (float)t, info[4].As<Napi::Boolean>().Value(), out.ElementLength());
    return info.Env().Undefined();
  });
}

// ropeFrequencies(config, T) -> {invFreq: Float32Array [headDim/2], attentionScaling}: the
// rope frequencies the model uses for a sequence of T tokens (exposed for tests).
Napi::Value RopeFrequencies(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsObject()) throw_type(info.Env(), "ropeFrequencies(config, T): config must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    const int HD = int_field(o, "headDim");
    if (HD <= 0 || HD % 2 != 0) throw_type(info.Env(), "ropeFrequencies: headDim must be positive and even");
    const RopeScaling r = rope_of(o);
    if (r.type == RopeType::Longrope && (r.short_factor.size() != (size_t)HD / 2 || r.long_factor.size() != (size_t)HD / 2))
      throw_type(info.Env(), "ropeFrequencies: longrope factors must have headDim/2 values");
    Napi::Float32Array inv = Napi::Float32Array::New(info.Env(), HD / 2);
    float scaling = 1.0f;
    rope_frequencies(inv.Data(), &scaling, r, float_field(o, "ropeTheta"), HD, (int)number_arg(info, 1, "T"));
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("invFreq", inv);
    out.Set("attentionScaling", Napi::Number::New(info.Env(), scaling));
    return out;
  });
}

Napi::Value MatmulBackend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), matmul_backend());
}

}  // namespace

void register_model(Napi::Env env, Napi::Object exports) {
  exports.Set("LlamaModel", LlamaModelWrap::Define(env));
  exports.Set("fisherFinalize", Napi::Function::New(env, FisherFinalize, "fisherFinalize"));
  exports.Set("fisherAccumulate", Napi::Function::New(env, FisherAccumulate, "fisherAccumulate"));
  exports.Set("matmulBackend", Napi::Function::New(env, MatmulBackend, "matmulBackend"));
  exports.Set("fisherInterpolate", Napi::Function::New(env, FisherInterpolate, "fisherInterpolate"));
  exports.Set("ropeFrequencies", Napi::Function::New(env, RopeFrequencies, "ropeFrequencies"));
}

}  // namespace dfm
