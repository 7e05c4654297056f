// Bindings for build information and thread control.
#include "bindings/bindings.h"
#include "bindings/napi_util.h"
#include "util/cuda_info.h"
#include "util/threads.h"

namespace dfm {

namespace {

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cuda", Napi::Boolean::New(env, cuda_compiled()));
  o.Set("cudaDevices", Napi::Number::New(env, cuda_device_count()));
  o.Set("cudaDeviceNames", [&] {
    Napi::Array names = Napi::Array::New(env);
    for (int i = 0; i < cuda_device_count(); ++i) names.Set(static_cast<uint32_t>(i), cuda_device_name(i));
    return names;
  }());
  o.Set("threads", Napi::Number::New(env, get_threads()));
  o.Set("compiler", Napi::String::New(env, __VERSION__));
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    set_threads(static_cast<int>(number_arg(info, 0, "threads")));
    return Napi::Number::New(info.Env(), get_threads());
  });
}

}  // namespace

void register_system(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
}

}  // namespace dfm
