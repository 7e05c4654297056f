// Each binding file registers its functions on the addon's exports.
#pragma once
#include <napi.h>

namespace dfm {

void register_io(Napi::Env env, Napi::Object exports);
void register_convert(Napi::Env env, Napi::Object exports);
void register_system(Napi::Env env, Napi::Object exports);
void register_merge(Napi::Env env, Napi::Object exports);
void register_model(Napi::Env env, Napi::Object exports);
void register_buffer(Napi::Env env, Napi::Object exports);
void register_train(Napi::Env env, Napi::Object exports);

}  // namespace dfm
