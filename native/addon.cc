// The dfmerge native addon: registration only. Each area's bindings live in
// native/bindings/, its logic in io/, kernels/, model/.
#include <napi.h>

#include "bindings/bindings.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  dfm::register_io(env, exports);
  dfm::register_convert(env, exports);
  dfm::register_system(env, exports);
  dfm::register_merge(env, exports);
  dfm::register_model(env, exports);
  dfm::register_buffer(env, exports);
  dfm::register_train(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(dfmerge, Init)
