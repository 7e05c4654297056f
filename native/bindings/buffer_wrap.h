// FloatBuffer as a JS object (native memory, see util/float_buffer.h), shared
// by the bindings that read or write one.
#pragma once
#include <napi.h>

#include <memory>

#include "util/float_buffer.h"

namespace dfm {

class FloatBufferWrap : public Napi::ObjectWrap<FloatBufferWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit FloatBufferWrap(const Napi::CallbackInfo& info);
  const std::shared_ptr<FloatBuffer>& buffer() const { return buf_; }

 private:
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value View(const Napi::CallbackInfo& info);
  Napi::Value Zero(const Napi::CallbackInfo& info);
  std::shared_ptr<FloatBuffer> buf_;
};

// The floats behind a FloatBuffer object or a Float32Array (nullptr for anything else).
struct FloatSpan {
  float* data = nullptr;
  size_t size = 0;
};
FloatSpan float_span(Napi::Value v);

}  // namespace dfm
