// CUDA twins of the merge tile kernels (merge.cc) and the chunked driver for a GPU.
// Same formulas, in the same order of operations, one thread per element; the
// DARE drops come from the same counter-based hash (merge_rng.h) and the TIES
// thresholds from the same exact two-pass radix selection, so both are
// bit-identical to the CPU's. This file is compiled with --ftz=false
// --prec-div=true --fmad=false (CMakeLists.txt) so the f32 arithmetic is plain IEEE.
//
// The driver streams from host memory: each chunk's inputs are read into pinned
// buffers (pread for mapped files), copied to the device in their storage dtype
// on one of two streams, merged there, and the output copied back (to memory or
// pwrite() into the file slot) while the next chunk is read (ChunkStreamer), so
// host memory stays at two chunks.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "io/file_read.h"
#include "io/finite_scan.h"
#include "io/mapped_file.h"
#include "kernels/merge.h"
#include "kernels/merge_staging.h"
#include "io/file_write.h"
#include "kernels/merge_cuda.h"
#include "kernels/merge_rng.h"
#include "util/error.h"

namespace dfm {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw DfError("CudaError", std::string(what) + ": " + cudaGetErrorString(e));
  }
}

constexpr int kMaxK = 64;

struct DevIn {
  const uint8_t* p;
  int dtype;  // Dtype as int
};

// ---------------------------------------------------------------------------
// Element access in storage dtypes.

__device__ __forceinline__ float ld(DevIn in, size_t i) {
  if (in.dtype == static_cast<int>(Dtype::F32)) return reinterpret_cast<const float*>(in.p)[i];
  const uint16_t h = reinterpret_cast<const uint16_t*>(in.p)[i];
  if (in.dtype == static_cast<int>(Dtype::BF16)) return __uint_as_float(static_cast<uint32_t>(h) << 16);
  return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ void st(uint8_t* out, int dtype, size_t i, float v) {
  if (dtype == static_cast<int>(Dtype::F32)) {
    reinterpret_cast<float*>(out)[i] = v;
  } else if (dtype == static_cast<int>(Dtype::BF16)) {
    // round to nearest even; NaN stays a quiet NaN with its sign (as convert.h)
    const uint32_t u = __float_as_uint(v);
    const uint32_t r = (u & 0x7fffffffu) > 0x7f800000u ? ((u >> 16) | 0x40u) : ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    reinterpret_cast<uint16_t*>(out)[i] = static_cast<uint16_t>(r);
  } else {
    reinterpret_cast<uint16_t*>(out)[i] = __half_as_ushort(__float2half_rn(v));
  }
}

// ---------------------------------------------------------------------------
// The per-element merge (the formulas of merge.h, one element at a time).

struct KParams {
  int method;
  int k;
  size_t n;       // elements in this chunk
  uint64_t first; // index of the chunk's first element in the tensor
  DevIn base;
  DevIn x[kMaxK];
  DevIn f[kMaxK];
  float w[kMaxK];
  float c[kMaxK];
  uint32_t thr[kMaxK];
  uint64_t key[kMaxK];
  float scale, inv_lam_sum, floor, keep_prob, df_m;
  uint32_t keep_thr;
  int normalize;
  uint8_t* out;
  int out_dtype;
};
static_assert(sizeof(KParams) <= 4096, "kernel parameters must fit in 4 KiB");

// The sparsified task vector of model q at element i (TIES trim, DARE drop, or plain τ).
__device__ __forceinline__ float sparse_delta(const KParams& p, int q, size_t i, float b) {
  const float t = ld(p.x[q], i) - b;
  const MergeMethod m = static_cast<MergeMethod>(p.method);
  if (m == MergeMethod::Ties) return (__float_as_uint(t) & 0x7fffffffu) >= p.thr[q] ? t : 0.0f;
  if (m == MergeMethod::DareLinear || m == MergeMethod::DareTies) {
    const float s = t / p.keep_prob;
    return dare_u24(p.key[q], p.first + i) >= p.keep_thr ? s : 0.0f;
  }
  return t;
}

__global__ void merge_kernel(const KParams p) {
  const MergeMethod m = static_cast<MergeMethod>(p.method);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < p.n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float out = 0.0f;
    switch (m) {
      case MergeMethod::Linear: {  // s · Σ w_k x_k
        float acc = p.w[0] * ld(p.x[0], i);
        for (int q = 1; q < p.k; ++q) acc += p.w[q] * ld(p.x[q], i);
        out = p.scale != 1.0f ? acc * p.scale : acc;
        break;
      }
      case MergeMethod::TaskArithmetic:
      case MergeMethod::DareLinear: {  // b + s · Σ λ_k τ_k
        const float b = ld(p.base, i);
        float acc = p.w[0] * sparse_delta(p, 0, i, b);
        for (int q = 1; q < p.k; ++q) acc += p.w[q] * sparse_delta(p, q, i, b);
        out = b + p.scale * acc;
        break;
      }
      case MergeMethod::Ties:
      case MergeMethod::DareTies: {  // sign election over w_k τ_k
        const float b = ld(p.base, i);
        float e = p.w[0] * sparse_delta(p, 0, i, b);
        for (int q = 1; q < p.k; ++q) e += p.w[q] * sparse_delta(p, q, i, b);
        const float sgn = e >= 0.0f ? 1.0f : -1.0f;
        float mixed = 0.0f, div = 0.0f;
        for (int q = 0; q < p.k; ++q) {
          const float wd = p.w[q] * sparse_delta(p, q, i, b);
          const bool agree = wd * sgn > 0.0f;
          mixed += agree ? wd : 0.0f;
          div += agree ? p.w[q] : 0.0f;
        }
        out = p.normalize ? b + mixed / (div == 0.0f ? 1.0f : div) : b + mixed;
        break;
      }
      case MergeMethod::Fisher: {  // Σ λ F̂ x / Σ λ F̂, F̂ = max(c F, floor)
        float num = 0.0f, den = 0.0f;
        for (int q = 0; q < p.k; ++q) {
          float fh = p.c[q] * ld(p.f[q], i);
          fh = fh < p.floor ? p.floor : fh;
          const float lf = p.w[q] * fh;
          num += lf * ld(p.x[q], i);
          den += lf;
        }
        if (den != 0.0f) {
          out = num / den;
        } else {
          float acc = 0.0f;
          for (int q = 0; q < p.k; ++q) acc += p.w[q] * ld(p.x[q], i);
          out = acc * p.inv_lam_sum;
        }
        break;
      }
      case MergeMethod::DfCombine: {  // b + M · W / S
        const float b = ld(p.base, i), w = ld(p.x[0], i), s = ld(p.x[1], i);
        out = b + (s != 0.0f ? p.df_m * w / s : 0.0f);
        break;
      }
    }
    st(p.out, p.out_dtype, i, out);
  }
}

// TIES selection histograms of |x − b| bit patterns: pass 0 the high 16 bits, pass
// 1 the low 16 bits of entries whose high bits are `hb`. Warp-aggregated atomics.
__global__ void ties_hist_kernel(DevIn base, DevIn x, size_t n, int pass, uint32_t hb, unsigned int* hist) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t start = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  // every lane of a warp runs the same number of iterations (the sync below needs it)
  const size_t rounds = (n + stride - 1) / stride;
  for (size_t r = 0; r < rounds; ++r) {
    const size_t i = start + r * stride;
    int bin = -1;
    if (i < n) {
      const uint32_t u = __float_as_uint(ld(x, i) - ld(base, i)) & 0x7fffffffu;
      if (pass == 0) bin = static_cast<int>(u >> 16);
      else if ((u >> 16) == hb) bin = static_cast<int>(u & 0xffffu);
    }
    const unsigned same = __match_any_sync(0xffffffffu, bin);
    if (bin >= 0 && (threadIdx.x & 31) == static_cast<unsigned>(__ffs(same) - 1)) atomicAdd(hist + bin, __popc(same));
  }
}

// ---------------------------------------------------------------------------
// Host side.

struct DevBuf {
  void* p = nullptr;
  DevBuf() = default;
  explicit DevBuf(size_t bytes) { check(cudaMalloc(&p, std::max<size_t>(bytes, 16)), "cudaMalloc"); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p(o.p) { o.p = nullptr; }
  DevBuf& operator=(DevBuf&& o) noexcept {
    std::swap(p, o.p);
    return *this;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  uint8_t* u8() const { return static_cast<uint8_t*>(p); }
};

int grid_for(size_t n) { return static_cast<int>(std::min<size_t>((n + 255) / 256, 65535)); }

// Page-locked host memory (cudaHostAlloc): copies from it run asynchronously at
// full link speed, where pageable memory is staged by the driver first.
struct PinnedBuf {
  void* p = nullptr;
  PinnedBuf() = default;
  explicit PinnedBuf(size_t bytes) { check(cudaHostAlloc(&p, std::max<size_t>(bytes, 16), cudaHostAllocDefault), "cudaHostAlloc"); }
  PinnedBuf(const PinnedBuf&) = delete;
  PinnedBuf& operator=(const PinnedBuf&) = delete;
  PinnedBuf(PinnedBuf&& o) noexcept : p(o.p) { o.p = nullptr; }
  PinnedBuf& operator=(PinnedBuf&& o) noexcept {
    std::swap(p, o.p);
    return *this;
  }
  ~PinnedBuf() {
    if (p) cudaFreeHost(p);
  }
  uint8_t* u8() const { return static_cast<uint8_t*>(p); }
};

// Double-buffered host <-> device streaming of a tensor's chunks (docs/design.md
// §11). Two slots, each with pinned host buffers for every input and the output,
// device buffers and its own stream. The host reads chunk c's inputs into slot
// c mod 2 (pread of mapped files straight into pinned memory, else a memcpy) and
// enqueues the upload, the kernel and the download on that slot's stream; the
// slot's previous chunk is finished (waited for and its output pwrite()n or
// copied out) just before, so reading chunk c + 1 and writing chunk c − 1 overlap
// the GPU's work on chunk c.
class ChunkStreamer {
 public:
  ChunkStreamer(const std::vector<const TensorIn*>& inputs, size_t chunk, const MergeJob& j)
      : inputs_(inputs), job_(j), osz_(dtype_size(j.out_dtype)) {
    for (const TensorIn* in : inputs_) {
      FileRegion r;
      const bool mapped = input_staging() && in->data != nullptr && mapped_region(in->data, j.n * dtype_size(in->dtype), &r);
      regions_.push_back(mapped ? r : FileRegion{});
      mapped_.push_back(mapped);
      nonfinite_.push_back({0, UINT64_MAX});
    }
    for (int s = 0; s < 2; ++s) {
      check(cudaStreamCreateWithFlags(&slot_[s].stream, cudaStreamNonBlocking), "cudaStreamCreate");
      for (const TensorIn* in : inputs_) {
        slot_[s].host_in.emplace_back(chunk * dtype_size(in->dtype));
        slot_[s].dev_in.emplace_back(chunk * dtype_size(in->dtype));
      }
      slot_[s].host_out = PinnedBuf(chunk * osz_);
      slot_[s].dev_out = DevBuf(chunk * osz_);
    }
  }
  ~ChunkStreamer() {
    for (Slot& sl : slot_) {
      if (sl.stream) {
        cudaStreamSynchronize(sl.stream);
        cudaStreamDestroy(sl.stream);
      }
    }
    cudaGetLastError();
  }
  ChunkStreamer(const ChunkStreamer&) = delete;
  ChunkStreamer& operator=(const ChunkStreamer&) = delete;

  // Reads [c0, c0 + m) of every input into slot s and enqueues the uploads; the
  // device views of the inputs go to views[i].
  void load(int s, size_t c0, size_t m, DevIn* views) {
    Slot& sl = slot_[s];
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const TensorIn& in = *inputs_[i];
      const size_t es = dtype_size(in.dtype);
      uint8_t* host = sl.host_in[i].u8();
      if (mapped_[i]) {
        pread_all(regions_[i].fd, host, m * es, regions_[i].offset + c0 * es, regions_[i].path, job_.tensor);
        const NonFinite nf = scan_non_finite_span(host, m, in.dtype);
        if (nf.count > 0) {
          nonfinite_[i].first = std::min(nonfinite_[i].first, static_cast<uint64_t>(c0 + nf.first));
          nonfinite_[i].count += nf.count;
        }
        readahead_window(regions_[i].fd, regions_[i].offset + (c0 + m) * es, m * es);  // as the CPU stage
      } else {
        std::memcpy(host, in.data + c0 * es, m * es);
      }
      check(cudaMemcpyAsync(sl.dev_in[i].p, host, m * es, cudaMemcpyHostToDevice, sl.stream), "cudaMemcpyAsync to device");
      views[i] = DevIn{sl.dev_in[i].u8(), static_cast<int>(in.dtype)};
    }
  }
  uint8_t* dev_out(int s) const { return slot_[s].dev_out.u8(); }
  cudaStream_t stream(int s) const { return slot_[s].stream; }
  // Enqueues the download of slot s's output (elements [c0, c0 + m)).
  void store(int s, size_t c0, size_t m) {
    Slot& sl = slot_[s];
    check(cudaMemcpyAsync(sl.host_out.p, sl.dev_out.p, m * osz_, cudaMemcpyDeviceToHost, sl.stream), "cudaMemcpyAsync to host");
    sl.c0 = c0;
    sl.m = m;
    sl.pending = true;
  }
  // Waits for slot s and delivers its output.
  void finish(int s) {
    Slot& sl = slot_[s];
    if (!sl.pending) return;
    check(cudaStreamSynchronize(sl.stream), "merge on the device");
    sl.pending = false;
    if (job_.fd >= 0) pwrite_all(job_.fd, sl.host_out.u8(), sl.m * osz_, job_.fd_offset + sl.c0 * osz_);
    else std::memcpy(job_.out + sl.c0 * osz_, sl.host_out.u8(), sl.m * osz_);
  }
  // After both slots are finished: NaN/±Inf of a mapped input is an error (as merge_tensor_cpu).
  void check_finite() const {
    for (size_t i = 0; i < inputs_.size(); ++i) {
      if (nonfinite_[i].count > 0) throw_non_finite(regions_[i].path, job_.tensor, nonfinite_[i].count, nonfinite_[i].first);
    }
  }

 private:
  struct Slot {
    cudaStream_t stream = nullptr;
    std::vector<PinnedBuf> host_in;
    std::vector<DevBuf> dev_in;
    PinnedBuf host_out;
    DevBuf dev_out;
    size_t c0 = 0, m = 0;
    bool pending = false;
  };
  std::vector<const TensorIn*> inputs_;
  const MergeJob& job_;
  size_t osz_;
  std::vector<FileRegion> regions_;
  std::vector<bool> mapped_;
  std::vector<NonFinite> nonfinite_;
  Slot slot_[2];
};

// Copies [c0, c0 + m) of `in` to the device buffer and returns its device view.
DevIn upload(const TensorIn& in, const DevBuf& buf, size_t c0, size_t m) {
  const size_t sz = dtype_size(in.dtype);
  check(cudaMemcpy(buf.p, in.data + c0 * sz, m * sz, cudaMemcpyHostToDevice), "cudaMemcpy to device");
  return DevIn{buf.u8(), static_cast<int>(in.dtype)};
}

std::vector<uint32_t> ties_thresholds_cuda(const MergeJob& j, size_t chunk) {
  const size_t k = j.models.size();
  const uint64_t kk = static_cast<uint64_t>(std::llround(j.density * static_cast<double>(j.n)));
  if (kk == 0) return std::vector<uint32_t>(k, 0xffffffffu);
  std::vector<uint32_t> thr(k, 0);
  if (kk >= j.n) return thr;
  DevBuf dbase(chunk * 4), dx(chunk * 4), dhist(k * 65536 * sizeof(unsigned int));
  std::vector<unsigned int> part(k * 65536);
  std::vector<uint64_t> total(k * 65536);
  std::vector<uint32_t> high(k, 0);
  std::vector<uint64_t> remaining(k, 0);
  std::vector<TensorIn> inputs = j.models;
  inputs.push_back(j.base);
  for (int pass = 0; pass < 2; ++pass) {
    std::fill(total.begin(), total.end(), 0);
    PageReleaser releaser(j.release_inputs, inputs);
    for (size_t c0 = 0; c0 < j.n; c0 += chunk) {
      const size_t m = std::min(chunk, j.n - c0);
      check(cudaMemset(dhist.p, 0, k * 65536 * sizeof(unsigned int)), "cudaMemset");
      const DevIn b = upload(j.base, dbase, c0, m);
      for (size_t q = 0; q < k; ++q) {
        const DevIn x = upload(j.models[q], dx, c0, m);
        ties_hist_kernel<<<grid_for(m), 256>>>(b, x, m, pass, high[q], static_cast<unsigned int*>(dhist.p) + q * 65536);
        check(cudaGetLastError(), "TIES histogram kernel");
      }
      check(cudaMemcpy(part.data(), dhist.p, part.size() * sizeof(unsigned int), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
      for (size_t q = 0; q < part.size(); ++q) total[q] += part[q];
      releaser.upto(c0 + m);
    }
    for (size_t q = 0; q < k; ++q) {
      if (pass == 0) high[q] = ties_select_high(total.data() + q * 65536, kk, &remaining[q]);
      else thr[q] = (high[q] << 16) | ties_select_low(total.data() + q * 65536, remaining[q]);
    }
  }
  return thr;
}

// ---------------------------------------------------------------------------
// Element methods: the same <name>_elem formulas as the CPU (merge_methods.h), one
// thread per element; their per-tensor statistics come from the CPU's prepare step.

struct DevInputs {
  DevIn base;
  DevIn xs[kMaxK];
  __device__ float b(size_t i) const { return ld(base, i); }
  __device__ float x(int q, size_t i) const { return ld(xs[q], i); }
};

struct ElemKParams {
  int method;
  size_t n;
  uint64_t first;
  DevInputs in;
  ElemParams ep;
  uint8_t* out;
  int out_dtype;
};
static_assert(sizeof(ElemKParams) <= 4096, "kernel parameters must fit in 4 KiB");

__global__ void elem_kernel(const ElemKParams p) {
  const MergeMethod m = static_cast<MergeMethod>(p.method);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < p.n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float v = 0.0f;
    switch (m) {
#define DFM_ELEM_CASE(E, fn)               \
  case MergeMethod::E:                     \
    v = fn(p.ep, p.in, i, p.first + i);    \
    break;
      DFM_ELEMENT_METHODS(DFM_ELEM_CASE)
#undef DFM_ELEM_CASE
      default:
        break;
    }
    st(p.out, p.out_dtype, i, v);
  }
}

// rs: L1 rescale factors that replace the job's own (a DELLA block: for_della_blocks).
void merge_elements_cuda(const MergeJob& j, size_t chunk, const std::vector<float>* rs = nullptr) {
  MergeJob stats_job = j;  // the statistics passes re-point its inputs at staging buffers (merge_staging.h)
  const ElemPrepared prep = prepare_element_method(stats_job);
  ElemKParams p{};
  p.method = static_cast<int>(j.method);
  p.ep = prep.p;
  if (rs) {
    for (size_t q = 0; q < rs->size(); ++q) p.ep.rs[q] = (*rs)[q];
  }
  p.out_dtype = static_cast<int>(j.out_dtype);
  DevBuf dcoef(j.coef.size() * sizeof(float)), dmask(prep.mask.size());
  if (!j.coef.empty()) {
    check(cudaMemcpy(dcoef.p, j.coef.data(), j.coef.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy to device");
    p.ep.coef = static_cast<const float*>(dcoef.p);
  }
  if (!prep.mask.empty()) {
    check(cudaMemcpy(dmask.p, prep.mask.data(), prep.mask.size(), cudaMemcpyHostToDevice), "cudaMemcpy to device");
    p.ep.mask = dmask.u8();
  }
  const bool base = merge_uses_base(j);
  const int k = static_cast<int>(j.models.size());
  std::vector<const TensorIn*> inputs;
  for (const TensorIn& x : j.models) inputs.push_back(&x);
  if (base) inputs.push_back(&j.base);
  ChunkStreamer cs(inputs, chunk, j);
  DevIn views[kMaxK + 1];
  for (size_t c0 = 0, c = 0; c0 < j.n; c0 += chunk, ++c) {
    const int s = static_cast<int>(c % 2);
    const size_t m = std::min(chunk, j.n - c0);
    cs.finish(s);
    cs.load(s, c0, m, views);
    p.n = m;
    p.first = c0;
    for (int q = 0; q < k; ++q) p.in.xs[q] = views[q];
    if (base) p.in.base = views[k];
    p.out = cs.dev_out(s);
    elem_kernel<<<grid_for(m), 256, 0, cs.stream(s)>>>(p);
    check(cudaGetLastError(), "merge kernel");
    cs.store(s, c0, m);
  }
  cs.finish(0);
  cs.finish(1);
  cs.check_finite();
}

}  // namespace

void merge_tensor_cuda(const MergeJob& j) {
  validate_merge_job(j);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    throw DfError("CudaUnavailable", "no CUDA device answers (no GPU or no driver); merge with device 'cpu'", j.tensor);
  }
  check(cudaSetDevice(0), "cudaSetDevice");
  if (j.n == 0) return;
  const size_t chunk = std::max<size_t>(j.chunk, 256);
  const MergeConstants mc = merge_constants(j);
  const int k = mc.k;

  KParams p{};
  p.method = static_cast<int>(j.method);
  p.k = k;
  p.scale = mc.scale;
  p.inv_lam_sum = mc.inv_lam_sum;
  p.floor = j.fisher_floor;
  p.keep_prob = mc.keep_prob;
  p.keep_thr = mc.keep_thr;
  p.df_m = j.df_scale;
  p.normalize = j.normalize ? 1 : 0;
  p.out_dtype = static_cast<int>(j.out_dtype);
  for (int q = 0; q < k; ++q) {
    p.w[q] = q < static_cast<int>(j.weights.size()) ? j.weights[q] : 0.0f;
    p.c[q] = q < static_cast<int>(mc.c.size()) ? mc.c[q] : 1.0f;
    p.key[q] = q < static_cast<int>(mc.keys.size()) ? mc.keys[q] : 0;
  }
  if (j.method == MergeMethod::Ties) {
    const std::vector<uint32_t> thr = ties_thresholds_cuda(j, chunk);
    for (int q = 0; q < k; ++q) p.thr[q] = thr[q];
  }

  if (della_in_blocks(j)) {  // a drop mask over its budget: blocks of rows, as on the CPU
    MergeJob whole = j;
    for_della_blocks(whole, [chunk](MergeJob& block, const std::vector<float>* rs) { merge_elements_cuda(block, chunk, rs); });
    return;
  }
  if (is_element_method(j.method)) {
    merge_elements_cuda(j, chunk);
    return;
  }
  const bool base = merge_uses_base(j);
  const size_t nf = j.fishers.size();
  std::vector<const TensorIn*> inputs;
  for (const TensorIn& x : j.models) inputs.push_back(&x);
  for (const TensorIn& f : j.fishers) inputs.push_back(&f);
  if (base) inputs.push_back(&j.base);
  ChunkStreamer cs(inputs, chunk, j);
  std::vector<DevIn> views(inputs.size());
  for (size_t c0 = 0, c = 0; c0 < j.n; c0 += chunk, ++c) {
    const int s = static_cast<int>(c % 2);
    const size_t m = std::min(chunk, j.n - c0);
    cs.finish(s);  // slot s's previous chunk: wait, write its output
    cs.load(s, c0, m, views.data());
    p.n = m;
    p.first = c0;
    for (int q = 0; q < k; ++q) p.x[q] = views[q];
    for (size_t q = 0; q < nf; ++q) p.f[q] = views[k + q];
    if (base) p.base = views[k + nf];
    p.out = cs.dev_out(s);
    merge_kernel<<<grid_for(m), 256, 0, cs.stream(s)>>>(p);
    check(cudaGetLastError(), "merge kernel");
    cs.store(s, c0, m);
  }
  cs.finish(0);
  cs.finish(1);
  cs.check_finite();
}

}  // namespace dfm
