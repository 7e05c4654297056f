// Bindings for FloatBuffer: new FloatBuffer(n), .length, .view(offset, n) (a
// zero-copy Float32Array that keeps the buffer alive), .zero().
#include "bindings/buffer_wrap.h"

#include "bindings/bindings.h"
#include "bindings/napi_util.h"

namespace dfm {

namespace {
Napi::FunctionReference* g_ctor = nullptr;
}

Napi::Function FloatBufferWrap::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "FloatBuffer", {
    InstanceAccessor<&FloatBufferWrap::Length>("length"),
    InstanceMethod<&FloatBufferWrap::View>("view"),
    InstanceMethod<&FloatBufferWrap::Zero>("zero"),
  });
  g_ctor = new Napi::FunctionReference(Napi::Persistent(f));  // lives as long as the addon
  return f;
}

FloatBufferWrap::FloatBufferWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FloatBufferWrap>(info) {
  guarded(info, [&]() -> Napi::Value {
    buf_ = std::make_shared<FloatBuffer>(index_arg(info, 0, "length"));
    return info.Env().Undefined();
  });
}

Napi::Value FloatBufferWrap::Length(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(buf_->size()));
}

Napi::Value FloatBufferWrap::View(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const uint64_t off = index_arg(info, 0, "offset");
    const uint64_t n = index_arg(info, 1, "length");
    if (off > buf_->size() || n > buf_->size() - off) {
      throw DfError("OutOfRange", "view [" + std::to_string(off) + ", " + std::to_string(off + n) +
                                      ") is outside the buffer of " + std::to_string(buf_->size()) + " floats");
    }
    Napi::Env env = info.Env();
    if (n == 0) return Napi::Float32Array::New(env, 0);
    auto* keep = new std::shared_ptr<FloatBuffer>(buf_);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, buf_->data() + off, n * sizeof(float),
                                                  [](Napi::Env, void*, std::shared_ptr<FloatBuffer>* k) { delete k; }, keep);
    return Napi::Float32Array::New(env, n, ab, 0);
  });
}

Napi::Value FloatBufferWrap::Zero(const Napi::CallbackInfo& info) {
  buf_->zero();
  return info.Env().Undefined();
}

FloatSpan float_span(Napi::Value v) {
  FloatSpan s;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    s.data = a.Data();
    s.size = a.ElementLength();
  } else if (v.IsObject() && g_ctor && v.As<Napi::Object>().InstanceOf(g_ctor->Value())) {
    FloatBufferWrap* w = FloatBufferWrap::Unwrap(v.As<Napi::Object>());
    s.data = w->buffer()->data();
    s.size = w->buffer()->size();
  }
  return s;
}

void register_buffer(Napi::Env env, Napi::Object exports) {
  exports.Set("FloatBuffer", FloatBufferWrap::Define(env));
}

}  // namespace dfm
