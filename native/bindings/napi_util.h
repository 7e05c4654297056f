// Shared helpers for the N-API bindings: argument conversion and the one place
// where C++ exceptions become JS errors (no exception crosses the boundary unconverted).
#pragma once
#include <napi.h>

#include <cstdint>
#include <exception>
#include <string>
#include <utility>

#include "kernels/convert.h"
#include "util/error.h"

namespace dfm {

struct ByteSpan {
  uint8_t* data = nullptr;
  size_t size = 0;
};

// Turns a C++ exception into a JS Error carrying `code` (and `tensor` when known).
[[noreturn]] inline void rethrow_as_js(Napi::Env env) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;
  } catch (const DfError& e) {
    Napi::Error err = Napi::Error::New(env, e.what());
    err.Set("code", Napi::String::New(env, e.code()));
    if (!e.tensor().empty()) err.Set("tensor", Napi::String::New(env, e.tensor()));
    throw err;
  } catch (const std::bad_alloc&) {
    Napi::Error err = Napi::Error::New(env, "out of memory in native code");
    err.Set("code", Napi::String::New(env, "OutOfMemory"));
    throw err;
  } catch (const std::exception& e) {
    Napi::Error err = Napi::Error::New(env, e.what());
    err.Set("code", Napi::String::New(env, "NativeError"));
    throw err;
  }
}

// Wraps a binding body so every exception is converted.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (...) {
    rethrow_as_js(info.Env());
  }
}

[[noreturn]] inline void throw_type(Napi::Env env, const std::string& msg) {
  Napi::TypeError err = Napi::TypeError::New(env, msg);
  err.Set("code", Napi::String::New(env, "InvalidArgument"));
  throw err;
}

// Bytes of a TypedArray, DataView, Buffer or ArrayBuffer value.
inline ByteSpan bytes_value(Napi::Env env, Napi::Value v, const std::string& what) {
  ByteSpan s;
  if (v.IsTypedArray()) {
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    s.data = static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    s.size = t.ByteLength();
  } else if (v.IsDataView()) {
    Napi::DataView d = v.As<Napi::DataView>();
    s.data = static_cast<uint8_t*>(d.ArrayBuffer().Data()) + d.ByteOffset();
    s.size = d.ByteLength();
  } else if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer b = v.As<Napi::ArrayBuffer>();
    s.data = static_cast<uint8_t*>(b.Data());
    s.size = b.ByteLength();
  } else {
    throw_type(env, what + " must be a TypedArray or ArrayBuffer");
  }
  return s;
}

// Bytes of a TypedArray, DataView, Buffer or ArrayBuffer argument.
inline ByteSpan bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return bytes_value(info.Env(), info[i], what);
}

// A Float32Array argument (TypeError naming it otherwise).
inline Napi::Float32Array f32_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw_type(info.Env(), std::string(what) + " must be a Float32Array");
  }
  return info[i].As<Napi::Float32Array>();
}

inline double number_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) throw_type(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

// A non-negative integer argument that is exactly representable (< 2^53).
inline uint64_t index_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  const double d = number_arg(info, i, what);
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw_type(info.Env(), std::string(what) + " must be a non-negative integer");
  }
  return static_cast<uint64_t>(d);
}

// An open file descriptor argument (a non-negative int).
inline int fd_arg(const Napi::CallbackInfo& info, size_t i) {
  const double d = number_arg(info, i, "fd");
  if (!(d >= 0 && d < 2147483647.0 && d == static_cast<double>(static_cast<int>(d)))) throw_type(info.Env(), "fd must be a file descriptor");
  return static_cast<int>(d);
}

inline std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) throw_type(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// "F32" | "F16" | "BF16" -> Dtype.
inline Dtype compute_dtype_arg(const Napi::CallbackInfo& info, size_t i) {
  const std::string s = string_arg(info, i, "dtype");
  if (s == "F32") return Dtype::F32;
  if (s == "F16") return Dtype::F16;
  if (s == "BF16") return Dtype::BF16;
  throw_type(info.Env(), "dtype must be F32, F16 or BF16, got " + s);
}

}  // namespace dfm
