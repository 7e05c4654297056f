// Bindings for the training kernels (kernels/adamw.h): synchronous calls over
// Float32Arrays (each is a single pass over at most a few million floats).
#include <string>

#include "bindings/bindings.h"
#include "bindings/napi_util.h"
#include "kernels/adamw.h"

namespace dfm {

namespace {

float hyper_field(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_type(o.Env(), std::string("adamwUpdate: hyper.") + key + " must be a number");
  return static_cast<float>(v.As<Napi::Number>().DoubleValue());
}

// adamwUpdate(theta, grad, m, v, {lr, beta1, beta2, eps, weightDecay, step}): one
// AdamW step in place over theta, m, v (all the same length).
Napi::Value AdamwUpdate(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array theta = f32_arg(info, 0, "adamwUpdate: theta");
    Napi::Float32Array grad = f32_arg(info, 1, "adamwUpdate: grad");
    Napi::Float32Array m = f32_arg(info, 2, "adamwUpdate: m");
    Napi::Float32Array v = f32_arg(info, 3, "adamwUpdate: v");
    const size_t n = theta.ElementLength();
    if (grad.ElementLength() != n || m.ElementLength() != n || v.ElementLength() != n) {
      throw_type(info.Env(), "adamwUpdate: theta, grad, m and v must have the same length");
    }
    if (!info[4].IsObject()) throw_type(info.Env(), "adamwUpdate: hyper must be an object");
    Napi::Object o = info[4].As<Napi::Object>();
    AdamWHyper h;
    h.lr = hyper_field(o, "lr");
    h.beta1 = hyper_field(o, "beta1");
    h.beta2 = hyper_field(o, "beta2");
    h.eps = hyper_field(o, "eps");
    h.weight_decay = hyper_field(o, "weightDecay");
    Napi::Value sv = o.Get("step");
    if (!sv.IsNumber() || sv.As<Napi::Number>().DoubleValue() < 1) {
      throw_type(info.Env(), "adamwUpdate: hyper.step must be a number >= 1 (1-based step count)");
    }
    h.step = sv.As<Napi::Number>().Int64Value();
    adamw_update(theta.Data(), grad.Data(), m.Data(), v.Data(), n, h);
    return info.Env().Undefined();
  });
}

// sumSquares(x) -> Σ x² (double).
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array x = f32_arg(info, 0, "sumSquares: x");
    return Napi::Number::New(info.Env(), sum_squares(x.Data(), x.ElementLength()));
  });
}

// clipGradNorm(g, maxNorm) -> norm before clipping; scales g in place when above maxNorm.
Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array g = f32_arg(info, 0, "clipGradNorm: g");
    return Napi::Number::New(info.Env(), clip_grad_norm(g.Data(), g.ElementLength(), number_arg(info, 1, "maxNorm")));
  });
}

// axpy(y, x, a): y += a·x.
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array y = f32_arg(info, 0, "axpy: y");
    Napi::Float32Array x = f32_arg(info, 1, "axpy: x");
    if (x.ElementLength() != y.ElementLength()) throw_type(info.Env(), "axpy: x and y must have the same length");
    axpy(y.Data(), x.Data(), static_cast<float>(number_arg(info, 2, "a")), y.ElementLength());
    return info.Env().Undefined();
  });
}

// scaleInPlace(x, s): x *= s.
Napi::Value ScaleInPlace(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array x = f32_arg(info, 0, "scaleInPlace: x");
    scale_inplace(x.Data(), static_cast<float>(number_arg(info, 1, "s")), x.ElementLength());
    return info.Env().Undefined();
  });
}

}  // namespace

void register_train(Napi::Env env, Napi::Object exports) {
  exports.Set("adamwUpdate", Napi::Function::New(env, AdamwUpdate, "adamwUpdate"));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
  exports.Set("clipGradNorm", Napi::Function::New(env, ClipGradNorm, "clipGradNorm"));
  exports.Set("axpy", Napi::Function::New(env, Axpy, "axpy"));
  exports.Set("scaleInPlace", Napi::Function::New(env, ScaleInPlace, "scaleInPlace"));
}

}  // namespace dfm
