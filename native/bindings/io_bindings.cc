// Bindings for safetensors files over mmap: header table, zero-copy views,
// page release. Argument conversion only; the logic is in io/.
#include <memory>

#include "bindings/bindings.h"
#include "bindings/napi_util.h"
#include "io/file_read.h"
#include "io/file_write.h"
#include "io/finite_scan.h"
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
                        InstanceMethod("identity", &SafetensorsFileWrap::Identity),
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
      // [key, value] pairs, not an object: keys come from the file ("__proto__" is data).
      Napi::Array meta = Napi::Array::New(env, header_.metadata.size());
      for (size_t i = 0; i < header_.metadata.size(); ++i) {
        Napi::Array kv = Napi::Array::New(env, 2);
        kv.Set(0u, Napi::String::New(env, header_.metadata[i].first));
        kv.Set(1u, Napi::String::New(env, header_.metadata[i].second));
        meta.Set(static_cast<uint32_t>(i), kv);
      }
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

  // identity(): {opened, now}, each {dev, ino, size, mtimeNs, ctimeNs} (numbers; ns as strings).
  Napi::Value Identity(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      const MappedFile& f = open_file(env);
      auto to_js = [&](const FileIdentity& id) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("dev", Napi::String::New(env, std::to_string(id.dev)));
        o.Set("ino", Napi::String::New(env, std::to_string(id.ino)));
        o.Set("size", Napi::Number::New(env, static_cast<double>(id.size)));
        o.Set("mtimeNs", Napi::String::New(env, std::to_string(id.mtime_ns)));
        o.Set("ctimeNs", Napi::String::New(env, std::to_string(id.ctime_ns)));
        return o;
      };
      Napi::Object out = Napi::Object::New(env);
      out.Set("opened", to_js(f.identity_at_open()));
      out.Set("now", to_js(f.identity_now()));
      return out;
    });
  }

  // close(): drops this object's mapping; views already handed out stay valid.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    file_.reset();
    return info.Env().Undefined();
  }
};

// scanNonFinite(bytes, dtype) -> {count, first}: NaN/Inf among the stored values.
Napi::Value ScanNonFinite(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const ByteSpan src = bytes_arg(info, 0, "bytes");
    const Dtype d = compute_dtype_arg(info, 1);
    if (src.size % dtype_size(d) != 0) throw_type(info.Env(), "byte length is not a multiple of the dtype size");
    const NonFinite r = scan_non_finite(src.data, src.size / dtype_size(d), d);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("count", Napi::Number::New(info.Env(), static_cast<double>(r.count)));
    out.Set("first", Napi::Number::New(info.Env(), static_cast<double>(r.first)));
    return out;
  });
}

// copyToFile(bytes, fd, offset, tensor): writes a tensor's bytes into an output
// file slot, reading a mapped input with pread (a truncated input is an error
// naming it, never SIGBUS). Synchronous: used for the few tensors copied unchanged.
Napi::Value CopyToFile(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const ByteSpan src = bytes_arg(info, 0, "bytes");
    if (!info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsString()) {
      throw_type(env, "copyToFile(bytes, fd, offset, tensor)");
    }
    copy_to_file(src.data, src.size, fd_arg(info, 1), index_arg(info, 2, "offset"), info[3].As<Napi::String>().Utf8Value());
    return env.Undefined();
  });
}

// startWriteback(fd, offset, length): the kernel starts writing that range of the
// file to the device (a hint: io/file_write.h).
Napi::Value StartWriteback(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    start_writeback(fd_arg(info, 0), index_arg(info, 1, "offset"), index_arg(info, 2, "length"));
    return info.Env().Undefined();
  });
}

}  // namespace

void register_io(Napi::Env env, Napi::Object exports) {
  exports.Set("SafetensorsFile", SafetensorsFileWrap::Init(env));
  exports.Set("scanNonFinite", Napi::Function::New(env, ScanNonFinite, "scanNonFinite"));
  exports.Set("copyToFile", Napi::Function::New(env, CopyToFile, "copyToFile"));
  exports.Set("startWriteback", Napi::Function::New(env, StartWriteback, "startWriteback"));
}

}  // namespace dfm
