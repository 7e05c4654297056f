// Bindings for safetensors files over mmap: header table, zero-copy views,
// page release. Argument conversion only; the logic is in io/.
#include <memory>

#include "bindings/bindings.h"
#include "bindings/napi_util.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"

namespace dfm {

namespace {

class SafetensorsFileWrap : public Napi::ObjectWrap<SafetensorsFileWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "SafetensorsFile",
                       {InstanceMethod("header", &SafetensorsFileWrap::Header),
                        InstanceMethod("view", &SafetensorsFileWrap::View),
                        InstanceMethod("release", &SafetensorsFileWrap::Release),
                        InstanceMethod("close", &SafetensorsFileWrap::Close)});
  }

  explicit SafetensorsFileWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SafetensorsFileWrap>(info) {
    guarded(info, [&]() -> Napi::Value {
      const std::string path = string_arg(info, 0, "path");
      file_ = std::make_shared<MappedFile>(path);
      header_ = parse_safetensors_header(file_->data(), file_->size());
      return info.Env().Undefined();
    });
  }

 private:
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;

  const MappedFile& open_file(Napi::Env env) const {
    if (!file_) {
      Napi::Error err = Napi::Error::New(env, "file was closed");
      err.Set("code", Napi::String::New(env, "Closed"));
      throw err;
    }
    return *file_;
  }

  Napi::Value Header(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      const MappedFile& f = open_file(env);
      Napi::Object out = Napi::Object::New(env);
      out.Set("fileSize", Napi::Number::New(env, static_cast<double>(f.size())));
      out.Set("headerLength", Napi::Number::New(env, static_cast<double>(header_.header_len)));
      out.Set("dataStart", Napi::Number::New(env, static_cast<double>(header_.data_start)));
      Napi::Array tensors = Napi::Array::New(env, header_.tensors.size());
      for (size_t i = 0; i < header_.tensors.size(); ++i) {
        const TensorEntry& t = header_.tensors[i];
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", Napi::String::New(env, t.name));
        o.Set("dtype", Napi::String::New(env, t.dtype));
        Napi::Array shape = Napi::Array::New(env, t.shape.size());
        for (size_t d = 0; d < t.shape.size(); ++d) {
          shape.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(t.shape[d])));
        }
        o.Set("shape", shape);
        o.Set("begin", Napi::Number::New(env, static_cast<double>(t.begin)));
        o.Set("end", Napi::Number::New(env, static_cast<double>(t.end)));
        tensors.Set(static_cast<uint32_t>(i), o);
      }
      out.Set("tensors", tensors);
      Napi::Object meta = Napi::Object::New(env);
      for (const auto& kv : header_.metadata) meta.Set(kv.first, Napi::String::New(env, kv.second));
      out.Set("metadata", meta);
      return out;
    });
  }

  // view(begin, end): zero-copy ArrayBuffer over data-section bytes [begin, end).
  Napi::Value View(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      const MappedFile& f = open_file(env);
      const uint64_t begin = index_arg(info, 0, "begin");
      const uint64_t end = index_arg(info, 1, "end");
      if (begin > end || end > header_.data_size) {
        throw DfError("OffsetsOutOfRange", "view [" + std::to_string(begin) + ", " + std::to_string(end) +
                                               ") is outside the data section");
      }
      if (begin == end) return Napi::ArrayBuffer::New(env, 0);
      auto* keep = new std::shared_ptr<MappedFile>(file_);
      uint8_t* p = f.mutable_data() + header_.data_start + begin;
      return Napi::ArrayBuffer::New(env, p, static_cast<size_t>(end - begin),
                                    [](Napi::Env, void*, std::shared_ptr<MappedFile>* hint) { delete hint; }, keep);
    });
  }

  // release(begin, end): drop resident pages of that data-section range.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const MappedFile& f = open_file(info.Env());
      const uint64_t begin = index_arg(info, 0, "begin");
      const uint64_t end = index_arg(info, 1, "end");
      if (begin < end && end <= header_.data_size) f.release(header_.data_start + begin, end - begin);
      return info.Env().Undefined();
    });
  }

  // close(): drops this object's mapping; views already handed out stay valid.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    file_.reset();
    return info.Env().Undefined();
  }
};

}  // namespace

void register_io(Napi::Env env, Napi::Object exports) {
  exports.Set("SafetensorsFile", SafetensorsFileWrap::Init(env));
}

}  // namespace dfm
