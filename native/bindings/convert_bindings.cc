// Bindings for dtype conversion: storage bytes <-> f32.
#include "bindings/bindings.h"
#include "bindings/napi_util.h"

namespace dfm {

namespace {

// toFloat32(src, dtype) -> Float32Array with one f32 per element.
Napi::Value ToFloat32(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const ByteSpan src = bytes_arg(info, 0, "src");
    const Dtype d = compute_dtype_arg(info, 1);
    if (src.size % dtype_size(d) != 0) throw_type(info.Env(), "src byte length is not a multiple of the dtype size");
    const size_t n = src.size / dtype_size(d);
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), n);
    to_f32(src.data, d, out.Data(), n);
    return out;
  });
}

// fromFloat32(src: Float32Array, dtype) -> Uint8Array of storage bytes (round to nearest even).
Napi::Value FromFloat32(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Float32Array src = f32_arg(info, 0, "src");
    const Dtype d = compute_dtype_arg(info, 1);
    Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), src.ElementLength() * dtype_size(d));
    from_f32(src.Data(), out.Data(), d, src.ElementLength());
    return out;
  });
}

}  // namespace

void register_convert(Napi::Env env, Napi::Object exports) {
  exports.Set("toFloat32", Napi::Function::New(env, ToFloat32, "toFloat32"));
  exports.Set("fromFloat32", Napi::Function::New(env, FromFloat32, "fromFloat32"));
}

}  // namespace dfm
