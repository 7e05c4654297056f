// Bindings for the merge kernels: argument conversion only (the kernels and the
// streaming driver are in kernels/merge.{h,cc,cu}). Whole-tensor work runs on a
// libuv worker thread and settles a Promise; the request object (and so every
// buffer it holds) is kept alive until then.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <limits>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "bindings/napi_util.h"
#include "kernels/merge.h"
#include "kernels/merge_cuda.h"
#include "kernels/merge_staging.h"
#include "kernels/radix_select.h"
#include "util/compute_thread.h"
#include "util/threads.h"

namespace dfm {

namespace {

// Runs `task` off the JS thread; resolves with result(env) or rejects with a JS
// Error carrying `code` (and `tensor`).
class TaskWorker : public Napi::AsyncWorker {
 public:
  TaskWorker(Napi::Env env, Napi::Object keep, std::function<void()> task,
             std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, "dfmerge:merge"),
        deferred_(Napi::Promise::Deferred::New(env)),
        task_(std::move(task)),
        result_(std::move(result)) {
    keep_ = Napi::Persistent(keep);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      run_on_compute_thread(task_);  // one OpenMP team for every job (util/compute_thread.h)
    } catch (const DfError& e) {
      code_ = e.code();
      tensor_ = e.tensor();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "OutOfMemory";
      SetError("out of memory in native merge");
    } catch (const std::exception& e) {
      code_ = "NativeError";
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::Error err = Napi::Error::New(env, e.Message());
    err.Set("code", Napi::String::New(env, code_.empty() ? "NativeError" : code_));
    if (!tensor_.empty()) err.Set("tensor", Napi::String::New(env, tensor_));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keep_;
  std::function<void()> task_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::string code_, tensor_;
};

// --- field readers over a request object --------------------------------------

Napi::Value field(Napi::Object o, const char* name) { return o.Get(name); }
bool has(Napi::Object o, const char* name) {
  Napi::Value v = o.Get(name);
  return !v.IsUndefined() && !v.IsNull();
}

double number_field(Napi::Env env, Napi::Object o, const char* name) {
  Napi::Value v = field(o, name);
  if (!v.IsNumber()) throw_type(env, std::string(name) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

uint64_t count_field(Napi::Env env, Napi::Object o, const char* name) {
  const double d = number_field(env, o, name);
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw_type(env, std::string(name) + " must be a non-negative integer");
  }
  return static_cast<uint64_t>(d);
}

bool bool_field(Napi::Env env, Napi::Object o, const char* name, bool dflt) {
  if (!has(o, name)) return dflt;
  Napi::Value v = field(o, name);
  if (!v.IsBoolean()) throw_type(env, std::string(name) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// A 64-bit unsigned integer given as a bigint (or a safe non-negative integer number).
uint64_t u64_field(Napi::Env env, Napi::Object o, const char* name) {
  Napi::Value v = field(o, name);
  if (v.IsBigInt()) {
    bool lossless = false;
    const uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw_type(env, std::string(name) + " must be a bigint in [0, 2^64)");
    return u;
  }
  return count_field(env, o, name);
}

Dtype dtype_value(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsString()) throw_type(env, what + " must be F32, F16 or BF16");
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "F32") return Dtype::F32;
  if (s == "F16") return Dtype::F16;
  if (s == "BF16") return Dtype::BF16;
  throw_type(env, what + " must be F32, F16 or BF16, got " + s);
}

// {data, dtype} holding exactly n elements.
TensorIn tensor_value(Napi::Env env, Napi::Value v, uint64_t n, const std::string& what) {
  if (!v.IsObject()) throw_type(env, what + " must be an object {data, dtype}");
  Napi::Object o = v.As<Napi::Object>();
  TensorIn t;
  t.dtype = dtype_value(env, o.Get("dtype"), what + ".dtype");
  const ByteSpan b = bytes_value(env, o.Get("data"), what + ".data");
  if (b.size != n * dtype_size(t.dtype)) {
    throw_type(env, what + " has " + std::to_string(b.size) + " bytes, expected " + std::to_string(n) + " " +
                        (t.dtype == Dtype::F32 ? "F32" : t.dtype == Dtype::F16 ? "F16" : "BF16") + " elements (" +
                        std::to_string(n * dtype_size(t.dtype)) + " bytes)");
  }
  t.data = b.data;
  return t;
}

std::vector<TensorIn> tensor_list(Napi::Env env, Napi::Object o, const char* name, uint64_t n) {
  Napi::Value v = field(o, name);
  if (!v.IsArray()) throw_type(env, std::string(name) + " must be an array of {data, dtype}");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<TensorIn> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    out.push_back(tensor_value(env, a.Get(i), n, std::string(name) + "[" + std::to_string(i) + "]"));
  }
  return out;
}

std::vector<float> float_list(Napi::Env env, Napi::Object o, const char* name) {
  Napi::Value v = field(o, name);
  std::vector<float> out;
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsNumber()) throw_type(env, std::string(name) + " must be an array of numbers");
      out.push_back(static_cast<float>(e.As<Napi::Number>().DoubleValue()));
    }
    return out;
  }
  throw_type(env, std::string(name) + " must be an array of numbers");
}

int threads_field(Napi::Env env, Napi::Object o) {
  if (!has(o, "threads")) return get_threads();  // read on the JS thread, where setThreads() set it
  const uint64_t t = count_field(env, o, "threads");
  if (t == 0 || t > 4096) throw_type(env, "threads must be in [1, 4096]");
  return static_cast<int>(t);
}

size_t chunk_field(Napi::Env env, Napi::Object o) {
  if (!has(o, "chunk")) return size_t(1) << 20;
  const uint64_t c = count_field(env, o, "chunk");
  if (c == 0) throw_type(env, "chunk must be a positive integer");
  return static_cast<size_t>(c);
}

// Exact doubles (float_list rounds to f32).
std::vector<double> f64_list(Napi::Env env, Napi::Object o, const char* name) {
  Napi::Value v = field(o, name);
  if (!v.IsArray()) throw_type(env, std::string(name) + " must be an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) throw_type(env, std::string(name) + " must be an array of numbers");
    out.push_back(e.As<Napi::Number>().DoubleValue());
  }
  return out;
}

std::vector<uint64_t> count_list(Napi::Env env, Napi::Object o, const char* name) {
  std::vector<uint64_t> out;
  for (double d : f64_list(env, o, name)) {
    if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
      throw_type(env, std::string(name) + " must hold non-negative integers");
    }
    out.push_back(static_cast<uint64_t>(d));
  }
  return out;
}

Segments segments_field(Napi::Env env, Napi::Object o) {
  if (!has(o, "segments")) return Segments::Whole;
  if (!field(o, "segments").IsString()) throw_type(env, "segments must be 'whole', 'rows' or 'cols'");
  const std::string s = field(o, "segments").As<Napi::String>().Utf8Value();
  if (s == "whole") return Segments::Whole;
  if (s == "rows") return Segments::Rows;
  if (s == "cols") return Segments::Cols;
  throw_type(env, "segments must be 'whole', 'rows' or 'cols', got " + s);
}

// The element methods' fields (merge.h, MergeJob: lincomb, nearswap, gta, sce).
void element_fields(Napi::Env env, Napi::Object r, MergeJob& j) {
  if (has(r, "coef")) j.coef = float_list(env, r, "coef");
  j.use_base = bool_field(env, r, "useBase", false);
  j.segments = segments_field(env, r);
  if (has(r, "segLen")) j.seg_len = count_field(env, r, "segLen");
  if (has(r, "t")) j.nearswap_t = static_cast<float>(number_field(env, r, "t"));
  if (has(r, "sparsify")) {
    if (!field(r, "sparsify").IsString()) throw_type(env, "sparsify must be 'band', 'random' or 'mask'");
    const std::string s = field(r, "sparsify").As<Napi::String>().Utf8Value();
    if (s == "band") j.sparsify = Sparsify::Band;
    else if (s == "random") j.sparsify = Sparsify::Random;
    else if (s == "mask") j.sparsify = Sparsify::Mask;
    else throw_type(env, "sparsify must be 'band', 'random' or 'mask', got " + s);
  }
  j.consensus = bool_field(env, r, "consensus", false);
  if (has(r, "rescale")) {
    const uint64_t v = count_field(env, r, "rescale");
    if (v > 2) throw_type(env, "rescale must be 0, 1 or 2");
    j.rescale = static_cast<int>(v);
  }
  if (has(r, "lambda")) j.lambda = static_cast<float>(number_field(env, r, "lambda"));
  if (has(r, "keepCount")) j.keep_count = count_list(env, r, "keepCount");
  if (has(r, "dropCount")) j.drop_count = count_list(env, r, "dropCount");
  if (has(r, "densities")) j.densities = f64_list(env, r, "densities");
  if (has(r, "epsilons")) j.epsilons = f64_list(env, r, "epsilons");
  if (has(r, "rowLen")) j.row_len = count_field(env, r, "rowLen");
  if (has(r, "maskBudget")) j.mask_budget = count_field(env, r, "maskBudget");
  if (has(r, "selectTopk")) j.select_topk = number_field(env, r, "selectTopk");
}

bool overlaps(const uint8_t* a, size_t an, const uint8_t* b, size_t bn) { return a < b + bn && b < a + an; }

// mergeTensor(request): Promise<void>. See src/native/addon.ts (NativeMergeRequest).
Napi::Value MergeTensor(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_type(env, "mergeTensor takes a request object");
    Napi::Object r = info[0].As<Napi::Object>();
    MergeJob j;
    if (!field(r, "method").IsString()) throw_type(env, "method must be a string");
    j.method = parse_merge_method(field(r, "method").As<Napi::String>().Utf8Value());
    j.n = count_field(env, r, "n");
    if (has(r, "tensor")) {
      if (!field(r, "tensor").IsString()) throw_type(env, "tensor must be a string");
      j.tensor = field(r, "tensor").As<Napi::String>().Utf8Value();
    }
    if (has(r, "base")) j.base = tensor_value(env, field(r, "base"), j.n, "base");
    j.models = tensor_list(env, r, "models", j.n);
    if (has(r, "fishers")) j.fishers = tensor_list(env, r, "fishers", j.n);
    if (has(r, "weights")) j.weights = float_list(env, r, "weights");
    j.normalize = bool_field(env, r, "normalize", false);
    if (has(r, "density")) j.density = number_field(env, r, "density");
    if (has(r, "seed")) j.seed = u64_field(env, r, "seed");
    if (has(r, "tensorId")) j.tensor_id = u64_field(env, r, "tensorId");
    if (has(r, "fisherScale")) j.fisher_scale = float_list(env, r, "fisherScale");
    if (has(r, "fisherFloor")) j.fisher_floor = static_cast<float>(number_field(env, r, "fisherFloor"));
    if (has(r, "scale")) j.df_scale = static_cast<float>(number_field(env, r, "scale"));
    j.chunk = chunk_field(env, r);
    j.threads = threads_field(env, r);
    j.release_inputs = bool_field(env, r, "release", true);
    element_fields(env, r, j);

    if (!field(r, "out").IsObject()) throw_type(env, "out must be {data, dtype} or {fd, offset, dtype}");
    Napi::Object out = field(r, "out").As<Napi::Object>();
    j.out_dtype = dtype_value(env, out.Get("dtype"), "out.dtype");
    const size_t out_bytes = j.n * dtype_size(j.out_dtype);
    if (has(out, "fd")) {
      const uint64_t fd = count_field(env, out, "fd");
      if (fd > static_cast<uint64_t>(std::numeric_limits<int>::max())) throw_type(env, "out.fd is not a file descriptor");
      j.fd = static_cast<int>(fd);
      j.fd_offset = count_field(env, out, "offset");
    } else {
      const ByteSpan b = bytes_value(env, out.Get("data"), "out.data");
      if (b.size != out_bytes) {
        throw_type(env, "out.data has " + std::to_string(b.size) + " bytes, expected " + std::to_string(out_bytes));
      }
      j.out = b.data;
      // In place (out is exactly an input) is fine; a partial overlap is not.
      std::vector<TensorIn> all = j.models;
      all.push_back(j.base);
      for (const TensorIn& f : j.fishers) all.push_back(f);
      for (const TensorIn& t : all) {
        if (t.data == nullptr) continue;
        const size_t tb = j.n * dtype_size(t.dtype);
        if (overlaps(t.data, tb, j.out, out_bytes) && !(t.data == j.out && tb == out_bytes)) {
          throw_type(env, "out.data partially overlaps an input");
        }
      }
    }
    validate_merge_job(j);

    std::string device = "cpu";
    if (has(r, "device")) {
      if (!field(r, "device").IsString()) throw_type(env, "device must be 'cpu' or 'cuda'");
      device = field(r, "device").As<Napi::String>().Utf8Value();
      if (device != "cpu" && device != "cuda") throw_type(env, "device must be 'cpu' or 'cuda', got " + device);
    }
    const bool cuda = device == "cuda";
    auto* w = new TaskWorker(env, r, [j, cuda]() { cuda ? merge_tensor_cuda(j) : merge_tensor_cpu(j); }, nullptr);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

// tensorGram(request): Promise<Float64Array> of segments × k × k (kernels/merge.h, GramJob).
Napi::Value TensorGram(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_type(env, "tensorGram takes a request object");
    Napi::Object r = info[0].As<Napi::Object>();
    GramJob j;
    j.n = count_field(env, r, "n");
    if (has(r, "tensor")) {
      if (!field(r, "tensor").IsString()) throw_type(env, "tensor must be a string");
      j.tensor = field(r, "tensor").As<Napi::String>().Utf8Value();
    }
    if (has(r, "base")) j.base = tensor_value(env, field(r, "base"), j.n, "base");
    j.models = tensor_list(env, r, "models", j.n);
    j.segments = segments_field(env, r);
    if (has(r, "segLen")) j.seg_len = count_field(env, r, "segLen");
    j.threads = threads_field(env, r);
    j.release_inputs = bool_field(env, r, "release", true);
    auto result = std::make_shared<std::vector<double>>();
    auto* w = new TaskWorker(
        env, r, [j, result]() { *result = tensor_gram_cpu(j); },
        [result](Napi::Env e) -> Napi::Value {
          Napi::Float64Array a = Napi::Float64Array::New(e, result->size());
          std::copy(result->begin(), result->end(), a.Data());
          return a;
        });
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

// accumulateFisher(request): Promise<void>. S += F; W += F ⊙ λ (x − base).
Napi::Value AccumulateFisher(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_type(env, "accumulateFisher takes a request object");
    Napi::Object r = info[0].As<Napi::Object>();
    AccumulateJob j;
    j.n = count_field(env, r, "n");
    j.fisher = tensor_value(env, field(r, "fisher"), j.n, "fisher");
    j.model = tensor_value(env, field(r, "model"), j.n, "model");
    if (has(r, "base")) j.base = tensor_value(env, field(r, "base"), j.n, "base");
    j.lambda = static_cast<float>(number_field(env, r, "lambda"));
    for (const char* name : {"s", "w"}) {
      Napi::Value v = field(r, name);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
          v.As<Napi::TypedArray>().ElementLength() != j.n) {
        throw_type(env, std::string(name) + " must be a Float32Array of n = " + std::to_string(j.n) + " elements");
      }
      (name[0] == 's' ? j.s : j.w) = v.As<Napi::Float32Array>().Data();
    }
    if (overlaps(reinterpret_cast<uint8_t*>(j.s), j.n * 4, reinterpret_cast<uint8_t*>(j.w), j.n * 4) && j.n > 0) {
      throw_type(env, "s and w must not overlap");
    }
    j.chunk = chunk_field(env, r);
    j.threads = threads_field(env, r);
    j.release_inputs = bool_field(env, r, "release", true);
    auto* w = new TaskWorker(env, r, [j]() { df_accumulate_cpu(j); }, nullptr);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

// sumOfSquares(data, dtype): Promise<number>.
Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const ByteSpan b = bytes_arg(info, 0, "data");
    const Dtype d = compute_dtype_arg(info, 1);
    if (b.size % dtype_size(d) != 0) throw_type(env, "data byte length is not a multiple of the dtype size");
    const TensorIn t{b.data, d};
    const size_t n = b.size / dtype_size(d);
    const int threads = get_threads();
    auto result = std::make_shared<double>(0.0);
    Napi::Object keep = Napi::Object::New(env);
    keep.Set("data", info[0]);
    auto* w = new TaskWorker(
        env, keep, [t, n, threads, result]() { *result = sum_of_squares_cpu(t, n, threads, true); },
        [result](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *result); });
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

// streamCopy(src, dst): number of bytes copied (synchronous bandwidth probe).
Napi::Value StreamCopy(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const ByteSpan src = bytes_arg(info, 0, "src");
    const ByteSpan dst = bytes_arg(info, 1, "dst");
    if (src.size != dst.size) throw_type(info.Env(), "src and dst must have the same byte length");
    if (overlaps(src.data, src.size, dst.data, dst.size) && src.size > 0) throw_type(info.Env(), "src and dst overlap");
    stream_copy(src.data, dst.data, src.size, get_threads());
    return Napi::Number::New(info.Env(), static_cast<double>(src.size));
  });
}

// fileCopyProbe({inputs, n, fd, offset}): Promise<void> (kernels/merge.h, stream_file_copy).
Napi::Value FileCopyProbe(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_type(env, "fileCopyProbe takes a request object");
    Napi::Object r = info[0].As<Napi::Object>();
    const uint64_t n = count_field(env, r, "n");
    const std::vector<TensorIn> inputs = tensor_list(env, r, "inputs", n);
    const uint64_t fd = count_field(env, r, "fd");
    if (fd > static_cast<uint64_t>(std::numeric_limits<int>::max())) throw_type(env, "fd is not a file descriptor");
    const uint64_t off = count_field(env, r, "offset");
    const int threads = threads_field(env, r);
    auto* w = new TaskWorker(env, r, [inputs, n, fd, off, threads]() { stream_file_copy(inputs, n, static_cast<int>(fd), off, threads); }, nullptr);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

// kthLargestU32(keys: Uint32Array, r): the r-th largest (0-based) key, by the
// radix selection the merge's top-k selections use (kernels/radix_select.h); the
// keys are not changed (selected in a copy). For tests.
Napi::Value KthLargestU32(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      throw_type(env, "kthLargestU32 takes a Uint32Array");
    }
    Napi::Uint32Array keys = info[0].As<Napi::Uint32Array>();
    if (!info[1].IsNumber()) throw_type(env, "r must be a number");
    const double r = info[1].As<Napi::Number>().DoubleValue();
    if (!(r >= 0) || r != std::floor(r) || r >= static_cast<double>(keys.ElementLength())) {
      throw_type(env, "r must be an integer rank below the number of keys");
    }
    std::vector<uint32_t> v(keys.Data(), keys.Data() + keys.ElementLength());
    std::vector<uint32_t> hist;
    return Napi::Number::New(env, kth_largest_u32(v.data(), v.size(), static_cast<size_t>(r), hist));
  });
}

// setInputStaging(on): read mapped inputs with pread into reused buffers (default)
// or through their mappings (the earlier path, for the benchmark's breakdown).
Napi::Value SetInputStaging(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsBoolean()) throw_type(info.Env(), "setInputStaging takes a boolean");
    set_input_staging(info[0].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  });
}

}  // namespace

void register_merge(Napi::Env env, Napi::Object exports) {
  exports.Set("mergeTensor", Napi::Function::New(env, MergeTensor, "mergeTensor"));
  exports.Set("tensorGram", Napi::Function::New(env, TensorGram, "tensorGram"));
  exports.Set("accumulateFisher", Napi::Function::New(env, AccumulateFisher, "accumulateFisher"));
  exports.Set("sumOfSquares", Napi::Function::New(env, SumOfSquares, "sumOfSquares"));
  exports.Set("streamCopy", Napi::Function::New(env, StreamCopy, "streamCopy"));
  exports.Set("fileCopyProbe", Napi::Function::New(env, FileCopyProbe, "fileCopyProbe"));
  exports.Set("setInputStaging", Napi::Function::New(env, SetInputStaging, "setInputStaging"));
  exports.Set("kthLargestU32", Napi::Function::New(env, KthLargestU32, "kthLargestU32"));
}

}  // namespace dfm
