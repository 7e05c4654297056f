// CPU merge kernels and the chunked streaming driver (see merge.h).
#include "kernels/merge.h"
#include "io/file_write.h"
#include "io/file_read.h"

#include <sys/mman.h>

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "io/mapped_file.h"
#include "kernels/della_keep.h"
#include "kernels/fixed_sums.h"
#include "kernels/merge_rng.h"
#include "kernels/merge_staging.h"
#include "kernels/merge_tiles.h"
#include "kernels/radix_select.h"
#include "util/error.h"

namespace dfm {

// ===========================================================================
// Conversion of one tile between storage dtypes and f32 (one dtype switch per tile).

namespace {

constexpr size_t kTile = 1024;   // elements per tile: a kernel's buffers stay in L1
constexpr size_t kAlign = 256;   // threads' shares of a chunk start at multiples of this
constexpr size_t kStagePiece = 32768;  // elements read and merged at a time from staged inputs (L2 sized)

void load_tile(const TensorIn& in, size_t first, float* __restrict dst, size_t n) {
  switch (in.dtype) {
    case Dtype::F32:
      std::memcpy(dst, in.data + 4 * first, 4 * n);
      return;
    case Dtype::BF16: {
      const uint8_t* __restrict s = in.data + 2 * first;
#pragma omp simd
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        const uint32_t u = static_cast<uint32_t>(h) << 16;
        std::memcpy(dst + i, &u, 4);
      }
      return;
    }
    case Dtype::F16: {
      const uint8_t* s = in.data + 2 * first;
      size_t i = 0;
#if defined(__F16C__)
      for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
      }
#endif
      for (; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    }
  }
}

void store_tile(const float* __restrict src, Dtype d, uint8_t* dst, size_t n) {
  switch (d) {
    case Dtype::F32:
      std::memcpy(dst, src, 4 * n);
      return;
    case Dtype::BF16:
      f32_to_bf16_span(src, dst, n);
      return;
    case Dtype::F16: {
      size_t i = 0;
#if defined(__F16C__)
      for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i), h);
      }
#endif
      for (; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    }
  }
}

// First exception thrown by any thread of a parallel region.
class Failure {
 public:
  void capture() {
    std::lock_guard<std::mutex> lock(m_);
    if (!ep_) ep_ = std::current_exception();
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  void rethrow() const {
    if (ep_) std::rethrow_exception(ep_);
  }

 private:
  std::mutex m_;
  std::exception_ptr ep_;
  std::atomic<bool> failed_{false};
};

// Streams [0, n) in chunks. Without an active InputStage, every thread gets one
// contiguous share [b, e) of each chunk and calls work(state, b, e) on it; after
// the chunk, the finished input pages are released. With one, each chunk's inputs
// are first pointed at the stage's buffers (one thread, between barriers), and
// the threads claim the chunk's pieces (L2-sized, at most max_share elements,
// starting at multiples of kAlign) one at a time, each pread()ing a piece's
// inputs and calling work on it at once (merge_staging.h): which thread does
// which piece varies, so work must not depend on it (per-element results,
// integer counts, candidate sets). `make_state(max_share)` builds each thread's
// scratch; finish(state) runs once per thread at the end (e.g. to fold partial
// results).
template <class MakeState, class Work, class Finish>
void run_chunked(size_t n, size_t chunk, int threads, PageReleaser& releaser, InputStage* stage, MakeState&& make_state,
                 Work&& work, Finish&& finish) {
  if (n == 0) return;
  chunk = std::max<size_t>(chunk, kAlign);
  threads = std::max(1, threads);
  if (n < 2 * kAlign * static_cast<size_t>(threads)) threads = 1;  // tiny tensors: no team
  const bool staged = stage != nullptr && stage->active();
  Failure failure;
  std::atomic<size_t> next_piece{0};  // staged: the next piece of the chunk to claim
#pragma omp parallel num_threads(threads)
  {
    const size_t nt = static_cast<size_t>(omp_get_num_threads());
    const size_t tid = static_cast<size_t>(omp_get_thread_num());
    const size_t share_max = ((std::min(chunk, n) + nt - 1) / nt + kAlign - 1) / kAlign * kAlign;
    const size_t piece = std::min(kStagePiece, share_max);  // a multiple of kAlign
    bool have_state = false;
    try {
      auto state = make_state(share_max);
      have_state = true;
      for (size_t c0 = 0; c0 < n; c0 += chunk) {
        const size_t c1 = std::min(n, c0 + chunk);
        const size_t share = ((c1 - c0 + nt - 1) / nt + kAlign - 1) / kAlign * kAlign;
        const size_t b = std::min(c1, c0 + tid * share);
        const size_t e = std::min(c1, b + share);
        if (staged) {
          if (tid == 0) {
            stage->begin_chunk(c0, c1);
            next_piece.store(c0, std::memory_order_relaxed);
          }
#pragma omp barrier
        }
        if (staged && !failure.failed()) {
          // Read and work in pieces that stay in this core's L2 (read, then used at
          // once), each claimed by whichever thread is free: with fixed halves the
          // thread whose reads were slower kept the other waiting at the barrier.
          // (At most share_max elements: a thread's output buffer holds that many.)
          try {
            for (;;) {
              const size_t p0 = next_piece.fetch_add(piece, std::memory_order_relaxed);
              if (p0 >= c1) break;
              const size_t p1 = std::min(c1, p0 + piece);
              stage->read(p0, p1);
              work(state, p0, p1);
            }
          } catch (...) {
            failure.capture();
          }
        } else if (!staged && b < e && !failure.failed()) {
          try {
            releaser.populate(b, e);
            work(state, b, e);
          } catch (...) {
            failure.capture();
          }
        }
#pragma omp barrier
        if (tid == 0 && !failure.failed() && !staged) releaser.upto(c1);
      }
      if (!failure.failed()) finish(state);
    } catch (...) {
      failure.capture();
      if (!have_state) {
        // make_state failed (out of memory): this thread takes no share, but still
        // meets the others at every barrier, so nobody deadlocks.
        for (size_t c0 = 0; c0 < n; c0 += chunk) {
          if (staged) {
            if (tid == 0) {
              stage->begin_chunk(c0, std::min(n, c0 + chunk));
              next_piece.store(c0, std::memory_order_relaxed);
            }
#pragma omp barrier
          }
#pragma omp barrier
        }
      }
    }
  }
  failure.rethrow();
}

template <class MakeState, class Work>
void run_chunked(size_t n, size_t chunk, int threads, PageReleaser& releaser, MakeState&& make_state, Work&& work) {
  run_chunked(n, chunk, threads, releaser, nullptr, make_state, work, [](auto&) {});
}

template <class MakeState, class Work>
void run_chunked(size_t n, size_t chunk, int threads, PageReleaser& releaser, InputStage* stage, MakeState&& make_state,
                 Work&& work) {
  run_chunked(n, chunk, threads, releaser, stage, make_state, work, [](auto&) {});
}

// Per-thread f32 scratch.
struct Scratch {
  std::vector<float> buf;
  std::unique_ptr<DeferredWriter> writer;  // file output: this thread's pending output bytes
};

struct Prepared : MergeConstants {
  std::vector<uint32_t> thresholds;  // ties
  ElemPrepared elem;                 // element methods
};

double weight_sum(const std::vector<float>& w) {
  double s = 0;
  for (float x : w) s += x;
  return s;
}

bool method_uses_base(MergeMethod m) {
  switch (m) {
#define DFM_CASE(E, name, base, kind) \
  case MergeMethod::E:                \
    return base;
    DFM_MERGE_METHODS(DFM_CASE)
#undef DFM_CASE
  }
  return false;
}

bool uses_base(const MergeJob& j) { return j.method == MergeMethod::Lincomb ? j.use_base : method_uses_base(j.method); }

std::vector<TensorIn> values_of(const std::vector<TensorIn*>& live) {
  std::vector<TensorIn> v;
  for (const TensorIn* t : live) v.push_back(*t);
  return v;
}

Prepared prepare(MergeJob& j) {
  Prepared p;
  static_cast<MergeConstants&>(p) = merge_constants(j);
  if (j.method == MergeMethod::Ties) p.thresholds = ties_thresholds(j);
  if (is_element_method(j.method)) p.elem = prepare_element_method(j);
  return p;
}

constexpr int kMaxModels = kMaxMergeModels;

// A tile's view of one input: its own bytes when the source reads that storage
// dtype directly, else its f32 conversion in `scratch`.
template <class S>
S source(const TensorIn& in, size_t i0, size_t m, float* scratch);
template <>
F32Src source<F32Src>(const TensorIn& in, size_t i0, size_t m, float* scratch) {
  load_tile(in, i0, scratch, m);
  return F32Src{scratch};
}
template <>
BF16Src source<BF16Src>(const TensorIn& in, size_t i0, size_t, float*) {
  return BF16Src{in.data + 2 * i0};
}
template <>
RawF32Src source<RawF32Src>(const TensorIn& in, size_t i0, size_t, float*) {
  return RawF32Src{in.data + 4 * i0};
}

// An element method's view of a tile's inputs (merge_methods.h).
template <class S>
struct TileInputs {
  S base;
  const S* xs;
  float b(size_t i) const { return base[i]; }
  float x(int q, size_t i) const { return xs[q][i]; }
};

// Computes output elements [i0, i0 + m) of a merge into `out` (f32). Scratch `s`
// holds kTile floats each for: base | x_0..x_{k-1} | f_0..f_{k-1} or d_0..d_{k-1} | tmp (2).
template <class S>
void merge_tile(const MergeJob& j, const Prepared& p, float* s, size_t i0, size_t m, float* out) {
  const int k = p.k;
  const float* w = j.weights.data();
  S b{};
  if (uses_base(j)) b = source<S>(j.base, i0, m, s);
  S xs[kMaxModels];
  float* ds[kMaxModels];
  for (int q = 0; q < k; ++q) {
    xs[q] = source<S>(j.models[q], i0, m, s + kTile * (1 + q));
    ds[q] = s + kTile * (1 + k + q);
  }
  float* tmp = s + kTile * (1 + 2 * k);
  if (j.method == MergeMethod::Gta) {  // the vectorised twin of gta_elem
    gta_tile(p.elem.p, b, xs, i0, ds, out, tmp, m);
    return;
  }
  if (j.method == MergeMethod::Sce) {  // the vectorised twin of sce_elem
    sce_tile(p.elem.p, b, xs, ds, out, tmp, m);
    return;
  }
  if (j.method == MergeMethod::Lincomb && p.elem.p.seg_mode != static_cast<int>(Segments::Cols)) {
    lincomb_tile(p.elem.p, b, xs, i0, out, m);  // the vectorised twin of lincomb_elem
    return;
  }
  switch (j.method) {
    case MergeMethod::Linear:
      linear_tile(xs, w, k, p.scale, out, m);
      break;
    case MergeMethod::TaskArithmetic:
      task_arithmetic_tile(b, xs, w, k, p.scale, out, m);
      break;
    case MergeMethod::Ties:
      for (int q = 0; q < k; ++q) ties_trim_tile(b, xs[q], p.thresholds[q], ds[q], m);
      sign_elect_tile(b, ds, w, k, j.normalize, out, tmp, m);
      break;
    case MergeMethod::DareLinear:
    case MergeMethod::DareTies:
      for (int q = 0; q < k; ++q) dare_drop_tile(b, xs[q], p.keys[q], p.keep_thr, p.keep_prob, i0, ds[q], m);
      if (j.method == MergeMethod::DareLinear) {
        delta_sum_tile(b, ds, w, k, p.scale, out, m);
      } else {
        sign_elect_tile(b, ds, w, k, j.normalize, out, tmp, m);
      }
      break;
    case MergeMethod::Fisher: {
      S fs[kMaxModels];
      for (int q = 0; q < k; ++q) fs[q] = source<S>(j.fishers[q], i0, m, ds[q]);
      fisher_tile(xs, fs, w, p.c.data(), j.fisher_floor, k, p.inv_lam_sum, out, tmp, m);
      break;
    }
    case MergeMethod::DfCombine:
      df_combine_tile(b, xs[0], xs[1], j.df_scale, out, m);
      break;
#define DFM_ELEM_CASE(E, fn)                                                   \
  case MergeMethod::E: {                                                       \
    const TileInputs<S> in{b, xs};                                             \
    for (size_t i = 0; i < m; ++i) out[i] = fn(p.elem.p, in, i, i0 + i);       \
    break;                                                                     \
  }
      DFM_ELEMENT_METHODS(DFM_ELEM_CASE)
#undef DFM_ELEM_CASE
  }
}

using MergeTileFn = void (*)(const MergeJob&, const Prepared&, float*, size_t, size_t, float*);

// Inputs all BF16 or all F32 are read in place; any other mix is converted tile by tile.
MergeTileFn merge_tile_for(const MergeJob& j) {
  std::vector<TensorIn> used = j.models;
  if (uses_base(j)) used.push_back(j.base);
  for (const TensorIn& f : j.fishers) used.push_back(f);
  auto all = [&](Dtype d) {
    return std::all_of(used.begin(), used.end(), [d](const TensorIn& t) { return t.dtype == d; });
  };
  if (all(Dtype::BF16)) return &merge_tile<BF16Src>;
  if (all(Dtype::F32)) return &merge_tile<RawF32Src>;
  return &merge_tile<F32Src>;
}


}  // namespace

// ===========================================================================
// Whole-tensor jobs.

PageReleaser::PageReleaser(bool enabled, std::vector<TensorIn> inputs) : enabled_(enabled), inputs_(std::move(inputs)) {
  for (const TensorIn& in : inputs_) from_.push_back(reinterpret_cast<uintptr_t>(in.data));
}

void PageReleaser::populate(size_t b, size_t e) const {
#ifndef MADV_POPULATE_READ
  constexpr int MADV_POPULATE_READ = 22;  // Linux 5.14; older kernels answer EINVAL, which is harmless
#endif
  if (!enabled_ || e <= b) return;
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  for (const TensorIn& in : inputs_) {
    if (in.data == nullptr) continue;
    const size_t es = dtype_size(in.dtype);
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(in.data) + b * es) / page * page;
    const uintptr_t hi = reinterpret_cast<uintptr_t>(in.data) + e * es;
    ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_POPULATE_READ);
  }
}

void PageReleaser::upto(size_t pos) {
  if (!enabled_) return;
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (inputs_[i].data == nullptr) continue;
    const uintptr_t to = reinterpret_cast<uintptr_t>(inputs_[i].data) + pos * dtype_size(inputs_[i].dtype);
    if (to <= from_[i]) continue;
    release_if_mapped(reinterpret_cast<const void*>(from_[i]), to - from_[i]);
    from_[i] = std::max(from_[i], to / page * page);  // page aligned from now on: nothing is skipped
  }
}

bool merge_uses_base(const MergeJob& j) { return uses_base(j); }

bool is_element_method(MergeMethod m) {
  switch (m) {
#define DFM_CASE(E, fn) \
  case MergeMethod::E:  \
    return true;
    DFM_ELEMENT_METHODS(DFM_CASE)
#undef DFM_CASE
    default:
      return false;
  }
}

namespace {
// The per-model keys of the counter-based hash (DARE's drops, DELLA's draws).
std::vector<uint64_t> model_keys(const MergeJob& j) {
  std::vector<uint64_t> keys(j.models.size());
  for (size_t q = 0; q < keys.size(); ++q) keys[q] = dare_key(j.seed, j.tensor_id, static_cast<uint32_t>(q));
  return keys;
}
}  // namespace

MergeConstants merge_constants(const MergeJob& j) {
  MergeConstants p;
  p.k = static_cast<int>(j.models.size());
  const double ws = weight_sum(j.weights);
  switch (j.method) {
    case MergeMethod::Linear:
      p.scale = j.normalize ? static_cast<float>(1.0 / ws) : 1.0f;
      break;
    case MergeMethod::TaskArithmetic:
    case MergeMethod::DareLinear:
      // mergekit: divisor Σλ, with |Σλ| < 1e-8 treated as 1
      p.scale = j.normalize && std::fabs(ws) >= 1e-8 ? static_cast<float>(1.0 / ws) : 1.0f;
      break;
    case MergeMethod::Fisher:
      p.inv_lam_sum = static_cast<float>(1.0 / ws);
      p.c = j.fisher_scale.empty() ? std::vector<float>(j.models.size(), 1.0f) : j.fisher_scale;
      break;
    default:
      break;
  }
  if (j.method == MergeMethod::DareLinear || j.method == MergeMethod::DareTies) {
    p.keys = model_keys(j);
    p.keep_thr = dare_keep_threshold(1.0 - j.density);
    p.keep_prob = static_cast<float>(j.density);
  }
  return p;
}

MergeMethod parse_merge_method(const std::string& name) {
#define DFM_PARSE(E, str, base, kind) \
  if (name == str) return MergeMethod::E;
  DFM_MERGE_METHODS(DFM_PARSE)
#undef DFM_PARSE
  std::string all;
#define DFM_LIST(E, str, base, kind) all += std::string(all.empty() ? "" : ", ") + str;
  DFM_MERGE_METHODS(DFM_LIST)
#undef DFM_LIST
  throw DfError("UnknownMethod", "unknown merge method \"" + name + "\" (expected one of " + all + ")");
}

const char* merge_method_name(MergeMethod m) {
  switch (m) {
#define DFM_NAME(E, str, base, kind) \
  case MergeMethod::E:               \
    return str;
    DFM_MERGE_METHODS(DFM_NAME)
#undef DFM_NAME
  }
  return "?";
}

void validate_element_job(const MergeJob& j, const std::function<void(const std::string&)>& bad);

void validate_merge_job(const MergeJob& j) {
  const std::string what = std::string(merge_method_name(j.method)) + (j.tensor.empty() ? "" : " of " + j.tensor);
  auto bad = [&](const std::string& msg) { throw DfError("InvalidArgument", what + ": " + msg, j.tensor); };
  const size_t k = j.models.size();
  if (j.method == MergeMethod::DfCombine) {
    if (k != 2) bad("dfmerge takes exactly the two accumulators W and S");
  } else {
    if (k == 0) bad("at least one model is needed");
    if (k > static_cast<size_t>(kMaxModels)) bad("at most 64 models can be merged at once");
    if (j.weights.size() != k) bad("expected " + std::to_string(k) + " weights, got " + std::to_string(j.weights.size()));
    for (float w : j.weights) {
      if (!std::isfinite(w)) bad("weights must be finite");
    }
  }
  if (uses_base(j) && j.base.data == nullptr && j.n > 0) bad("a base model is needed");
  for (const TensorIn& in : j.models) {
    if (in.data == nullptr && j.n > 0) bad("missing model input");
  }
  const double ws = weight_sum(j.weights);
  if (j.method == MergeMethod::Linear && j.normalize && ws == 0.0) bad("weights sum to zero, cannot normalise");
  if (j.method == MergeMethod::Fisher) {
    if (j.fishers.size() != k) bad("expected one Fisher tensor per model (" + std::to_string(k) + "), got " + std::to_string(j.fishers.size()));
    for (const TensorIn& in : j.fishers) {
      if (in.data == nullptr && j.n > 0) bad("missing Fisher input");
    }
    if (!j.fisher_scale.empty() && j.fisher_scale.size() != k) bad("expected one Fisher scale per model");
    for (float c : j.fisher_scale) {
      if (!std::isfinite(c) || c < 0) bad("Fisher scales must be finite and non-negative");
    }
    if (ws == 0.0) bad("weights sum to zero");
    if (std::isnan(j.fisher_floor)) bad("Fisher floor is NaN");
  }
  if (j.method == MergeMethod::Ties && !(j.density >= 0.0 && j.density <= 1.0)) bad("density must be in [0, 1]");
  if ((j.method == MergeMethod::DareLinear || j.method == MergeMethod::DareTies) && !(j.density > 0.0 && j.density <= 1.0)) {
    bad("density (keep probability 1 - p) must be in (0, 1]");
  }
  if (j.method == MergeMethod::DfCombine && !std::isfinite(j.df_scale)) bad("scale M must be finite");
  if (is_element_method(j.method)) validate_element_job(j, bad);
  if ((j.out == nullptr) == (j.fd < 0)) bad("exactly one output (memory or file) is needed");
  if (j.chunk == 0) bad("chunk size must be positive");
}

uint32_t ties_select_high(const uint64_t* hist, uint64_t kk, uint64_t* remaining) {
  // The bin holding the kk-th largest value, scanning from the top.
  uint64_t above = 0;
  for (int h = 0xffff; h >= 0; --h) {
    if (above + hist[h] >= kk) {
      *remaining = kk - above;
      return static_cast<uint32_t>(h);
    }
    above += hist[h];
  }
  *remaining = 0;
  return 0;
}

uint32_t ties_select_low(const uint64_t* hist, uint64_t remaining) {
  uint64_t above = 0;
  for (int l = 0xffff; l >= 0; --l) {
    above += hist[l];
    if (above >= remaining) return static_cast<uint32_t>(l);
  }
  return 0;
}

namespace {

// The exact two-pass radix selection for the groups `active` (0 < kk < n): pass 0
// histograms the high 16 bits of the keys, pass 1 the low 16 bits inside each
// group's chosen bin. Writes thr[g] for g in active.
void kth_largest_by_histogram(size_t n, const std::vector<uint64_t>& kk, const std::vector<size_t>& src,
                              const std::vector<size_t>& active, const KeyFn& keys, const std::vector<TensorIn*>& inputs,
                              const std::string& tensor, size_t chunk, int threads, bool release_inputs,
                              std::vector<uint32_t>& thr) {
  const size_t na = active.size();
  std::vector<uint64_t> total(na * 65536, 0);
  std::mutex fold_mutex;
  // Per thread and group, four interleaved 32-bit sub-histograms (counter
  // [bin][i mod 4], so runs of equal bins do not serialise on one counter and the
  // four share a cache line), folded into `total` at the end
  // (and after every share when a thread could see 2^32 elements).
  constexpr size_t kSub = 4;
  const bool fold_often = n >= (uint64_t(1) << 32);
  auto fold = [&](std::vector<uint32_t>& h) {
    std::lock_guard<std::mutex> lock(fold_mutex);
    for (size_t a = 0; a < na; ++a) {
      const uint32_t* src = h.data() + a * kSub * 65536;
      uint64_t* dst = total.data() + a * 65536;
      for (size_t v = 0; v < 65536; ++v) {
        for (size_t sub = 0; sub < kSub; ++sub) dst[v] += src[v * kSub + sub];
      }
    }
    std::fill(h.begin(), h.end(), 0u);
  };
  struct HistState {
    std::vector<float> scratch;
    std::vector<uint32_t> bits, hist;
  };

  // pass 0: histogram of the high 16 bits of the keys; pass 1: of the low 16 bits
  // inside each group's chosen bin.
  std::vector<uint32_t> high(na, 0);
  std::vector<uint64_t> remaining(na, 0);
  for (int pass = 0; pass < 2; ++pass) {
    std::fill(total.begin(), total.end(), 0);
    InputStage stage(inputs, n, std::max<size_t>(chunk, kAlign), tensor, false);
    PageReleaser releaser(release_inputs && !stage.active(), values_of(inputs));
    run_chunked(
        n, chunk, threads, releaser, &stage,
        [&](size_t) {
          return HistState{std::vector<float>(kSelectScratch), std::vector<uint32_t>(kTile),
                           std::vector<uint32_t>(na * kSub * 65536, 0u)};
        },
        [&](HistState& st, size_t b0, size_t e0) {
          for (size_t t0 = b0; t0 < e0; t0 += kTile) {
            const size_t m = std::min(kTile, e0 - t0);
            for (size_t a = 0; a < na; ++a) {
              uint32_t* u = st.bits.data();
              keys(src[active[a]], t0, m, u, st.scratch.data());
              uint32_t* h = st.hist.data() + a * kSub * 65536;
              if (pass == 0) {
                size_t i = 0;
                for (; i + kSub <= m; i += kSub) {
                  ++h[(u[i] >> 16) * kSub];
                  ++h[(u[i + 1] >> 16) * kSub + 1];
                  ++h[(u[i + 2] >> 16) * kSub + 2];
                  ++h[(u[i + 3] >> 16) * kSub + 3];
                }
                for (; i < m; ++i) ++h[(u[i] >> 16) * kSub];
              } else {
                const uint32_t hb = high[a];
                for (size_t i = 0; i < m; ++i) {
                  if ((u[i] >> 16) == hb) ++h[(u[i] & 0xffffu) * kSub + (i & (kSub - 1))];
                }
              }
            }
          }
          if (fold_often) fold(st.hist);
        },
        [&](HistState& st) { fold(st.hist); });
    for (size_t a = 0; a < na; ++a) {
      if (pass == 0) {
        high[a] = ties_select_high(total.data() + a * 65536, kk[active[a]], &remaining[a]);
      } else {
        thr[active[a]] = (high[a] << 16) | ties_select_low(total.data() + a * 65536, remaining[a]);
      }
    }
  }
}

}  // namespace

std::vector<uint32_t> kth_largest_keys(size_t n, const std::vector<uint64_t>& kk, const KeyFn& keys,
                                       const std::vector<TensorIn*>& inputs, const std::string& tensor, size_t chunk,
                                       int threads, bool release_inputs) {
  std::vector<size_t> src(kk.size());
  for (size_t g = 0; g < src.size(); ++g) src[g] = g;
  return kth_largest_keys(n, kk, src, keys, inputs, tensor, chunk, threads, release_inputs);
}

namespace {

// A stratified sample's blocks of every input, side by side: block bi of input t
// is its elements [b0, b0 + block) for the b0 that fill(bi, b0) is given, and
// while the object lives each target's data points at its compact buffer, so
// that keys(stream, bi · block, block, ...) reads block bi. Filled by pread from
// the file for mapped inputs (as InputStage reads), else by memcpy.
class CompactSample {
 public:
  CompactSample(const std::vector<TensorIn*>& targets, size_t n, size_t block, size_t blocks) : block_(block) {
    for (TensorIn* t : targets) {
      if (t == nullptr || t->data == nullptr) continue;
      Input in;
      in.target = t;
      in.original = t->data;
      in.elem = dtype_size(t->dtype);
      in.mapped = input_staging() && mapped_region(t->data, n * in.elem, &in.region);
      in.buf.resize(blocks * block * in.elem);
      inputs_.push_back(std::move(in));
    }
    for (Input& in : inputs_) in.target->data = in.buf.data();
  }
  ~CompactSample() {
    for (Input& in : inputs_) in.target->data = in.original;
  }
  CompactSample(const CompactSample&) = delete;
  CompactSample& operator=(const CompactSample&) = delete;

  void fill(size_t bi, size_t b0, const std::string& tensor) {
    for (Input& in : inputs_) {
      uint8_t* dst = in.buf.data() + bi * block_ * in.elem;
      const size_t bytes = block_ * in.elem;
      if (in.mapped) pread_all(in.region.fd, dst, bytes, in.region.offset + b0 * in.elem, in.region.path, tensor);
      else std::memcpy(dst, in.original + b0 * in.elem, bytes);
    }
  }

 private:
  struct Input {
    TensorIn* target = nullptr;
    const uint8_t* original = nullptr;
    size_t elem = 0;
    bool mapped = false;
    FileRegion region;
    std::vector<uint8_t> buf;
  };
  size_t block_;
  std::vector<Input> inputs_;
};

// Step 1 of kth_select: for each active group a (streams[slot[active[a]]] its key
// stream), a bracket [lo[a], hi[a]] of keys around its kk-th largest, from a
// stratified sample. In nz mode (nz_frac ≥ 0, one group) kk[0] is set to the
// sample's estimate of floor(nnz · nz_frac) and the bracket widened by its spread.
void sample_brackets(size_t n, std::vector<uint64_t>& kk, double nz_frac, const std::vector<size_t>& streams,
                     const std::vector<size_t>& slot, const std::vector<size_t>& active, const KeyFn& keys,
                     const std::vector<TensorIn*>& inputs, const std::string& tensor, int threads,
                     std::vector<uint32_t>& lo, std::vector<uint32_t>& hi) {
  const bool nz_mode = nz_frac >= 0.0;
  // S = n/64 keys (16Ki to 1Mi) in blocks of 1024 spread evenly over the tensor;
  // the bracket is the sample's ranks kk/n · S ± (4σ + 32) (σ of a binomial count).
  constexpr size_t kBlock = 1024;
  static_assert(kBlock <= kTile, "keys() takes at most a tile");
  const size_t sample = std::min<size_t>(size_t(1) << 20, std::max<size_t>(size_t(1) << 14, n / 64)) / kBlock * kBlock;
  const size_t blocks = sample / kBlock;
  std::vector<std::vector<uint32_t>> samp(streams.size(), std::vector<uint32_t>(sample));
  {
    // The sample's blocks side by side (keys depend on values, not on the index:
    // merge.h), read and keyed by every thread; one thread did it while the other
    // idled, ~20 ms of a 0.6 s TIES merge.
    CompactSample cs(inputs, n, kBlock, blocks);
    Failure failure;
    const long nb = static_cast<long>(blocks);
#pragma omp parallel num_threads(std::max(1, threads))
    {
      std::vector<float> scratch;
      try {
        scratch.resize(kSelectScratch);
      } catch (...) {
        failure.capture();
      }
#pragma omp for schedule(dynamic, 8)
      for (long bl = 0; bl < nb; ++bl) {
        if (failure.failed()) continue;
        try {
          const size_t bi = static_cast<size_t>(bl);
          const size_t b0 = static_cast<size_t>(static_cast<double>(bi) * static_cast<double>(n - kBlock) / static_cast<double>(blocks - 1));
          cs.fill(bi, b0, tensor);
          for (size_t si = 0; si < streams.size(); ++si) keys(streams[si], bi * kBlock, kBlock, samp[si].data() + bi * kBlock, scratch.data());
        } catch (...) {
          failure.capture();
        }
      }
    }
    failure.rethrow();
  }
  const size_t na = active.size();
  lo.assign(na, 0);
  hi.assign(na, 0);
  double nz_spread = 0.0;  // nz mode: the sample's spread of the non-zero count, in sample ranks
  if (nz_mode) {
    const double p = static_cast<double>(std::count_if(samp[0].begin(), samp[0].end(), [](uint32_t x) { return x != 0; })) /
                     static_cast<double>(sample);
    kk[0] = std::max<uint64_t>(1, static_cast<uint64_t>(p * nz_frac * static_cast<double>(n)));
    nz_spread = 4.0 * nz_frac * std::sqrt(static_cast<double>(sample) * p * (1.0 - p));
  }
  // The streams' samples selected in parallel, a thread per stream (a sample
  // serves every group reading that stream, in turn; on one thread these and the
  // candidates' selections below were 5.8% of a TIES merge's samples while the
  // other threads idled). Nothing in the loop allocates or throws.
  const long ns = static_cast<long>(streams.size());
  std::vector<std::vector<uint32_t>> work(streams.size()), hist(streams.size());
  for (size_t si = 0; si < streams.size(); ++si) {
    work[si].resize(sample);
    hist[si].reserve(kSelectHistogram);
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, std::min(threads, static_cast<int>(ns))))
  for (long si = 0; si < ns; ++si) {
    for (size_t a = 0; a < na; ++a) {
      const size_t g = active[a];
      if (slot[g] != static_cast<size_t>(si)) continue;
      const double f = std::min(1.0, static_cast<double>(kk[g]) / static_cast<double>(n));
      const double r = f * static_cast<double>(sample);
      const double margin = 4.0 * std::sqrt(static_cast<double>(sample) * f * (1.0 - f)) + nz_spread + 32.0;
      // each selection on a copy of the sample (the stream's other groups select from it too)
      const std::vector<uint32_t>& v = samp[static_cast<size_t>(si)];
      std::vector<uint32_t>& w = work[static_cast<size_t>(si)];
      std::vector<uint32_t>& h = hist[static_cast<size_t>(si)];
      auto rank = [&](size_t rk) {
        std::copy(v.begin(), v.end(), w.begin());
        return kth_largest_u32(w.data(), sample, rk, h);
      };
      hi[a] = r - margin < 0.0 ? 0xffffffffu : rank(static_cast<size_t>(r - margin));
      lo[a] = r + margin >= static_cast<double>(sample) - 1.0 ? 0u : rank(static_cast<size_t>(r + margin));
    }
  }
  samp.clear();
}

// Candidate lists of the selection pass. They grow without clearing what they
// add, and each thread keeps its lists for the next tensor (up to
// kKeepCandidates elements each): fresh lists per tensor were zeroed and
// re-faulted as they doubled, then copied into one list per group (page faults,
// memset and memmove ~8% of a TIES merge's samples).
template <class T>
struct UninitAlloc : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitAlloc<U>;
  };
  template <class U>
  void construct(U*) noexcept {}  // value-initialisation (resize) leaves the element as it is
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
};
using CandList = std::vector<uint32_t, UninitAlloc<uint32_t>>;
constexpr size_t kKeepCandidates = size_t(1) << 20;

// This thread's lists (at least `na`).
std::vector<CandList>& thread_candidates(size_t na) {
  thread_local std::vector<CandList> lists;
  if (lists.size() < na) lists.resize(na);
  return lists;
}

// Frees a list that grew past what is kept between tensors.
void trim_candidates(CandList& c) {
  if (c.capacity() > kKeepCandidates) CandList().swap(c);
}

// kth_largest_keys; with nz_frac ≥ 0 (one group only), kk is not given but
// floor(nnz · nz_frac), nnz the number of non-zero keys, counted in the same pass
// (and estimated from the sample for the bracket).
std::vector<uint32_t> kth_select(size_t n, std::vector<uint64_t> kk, const std::vector<size_t>& src, const KeyFn& keys,
                                 const std::vector<TensorIn*>& inputs, const std::string& tensor, size_t chunk,
                                 int threads, bool release_inputs, double nz_frac) {
  const bool nz_mode = nz_frac >= 0.0;
  const size_t k = kk.size();
  if (nz_mode) kk.assign(1, 1);  // provisional: active until the count is known
  std::vector<uint32_t> thr(k, 0);
  std::vector<size_t> active;
  for (size_t g = 0; g < k; ++g) {
    if (nz_mode) active.push_back(g);          // kk known after counting
    else if (kk[g] == 0) thr[g] = 0xffffffffu;  // keeps nothing
    else if (kk[g] < n) active.push_back(g);
  }
  if (active.empty()) return thr;
  // The key streams the active groups read, each computed once per tile.
  std::vector<size_t> streams;
  std::vector<size_t> slot(k, 0);  // group → index in streams
  for (size_t g : active) {
    auto it = std::find(streams.begin(), streams.end(), src[g]);
    slot[g] = static_cast<size_t>(it - streams.begin());
    if (it == streams.end()) streams.push_back(src[g]);
  }
  if (n <= (size_t(1) << 16)) {
    // Small tensors: select directly, the inputs read in one piece (through the
    // stage like every pass: a page of a truncated file is an error, not SIGBUS).
    InputStage stage(inputs, n, n, tensor, false);
    stage.begin_chunk(0, n);
    stage.read(0, n);
    std::vector<uint32_t> u(n), v(n), hist;
    std::vector<float> scratch(kSelectScratch);
    for (size_t si = 0; si < streams.size(); ++si) {
      for (size_t t0 = 0; t0 < n; t0 += kTile) keys(streams[si], t0, std::min(kTile, n - t0), u.data() + t0, scratch.data());
      if (nz_mode) {
        const uint64_t nnz = static_cast<uint64_t>(std::count_if(u.begin(), u.end(), [](uint32_t x) { return x != 0; }));
        kk[0] = static_cast<uint64_t>(std::floor(static_cast<double>(nnz) * nz_frac));
        if (kk[0] == 0 || kk[0] >= n) return {kk[0] == 0 ? 0xffffffffu : 0u};
      }
      for (size_t g : active) {
        if (slot[g] != si) continue;
        v = u;
        thr[g] = kth_largest_u32(v.data(), n, static_cast<size_t>(kk[g] - 1), hist);
      }
    }
    return thr;
  }

  // 1. A bracket [lo, hi] of keys around each group's kk-th largest (sample_brackets).
  const size_t na = active.size();
  std::vector<uint32_t> lo, hi;
  sample_brackets(n, kk, nz_frac, streams, slot, active, keys, inputs, tensor, threads, lo, hi);

  // 2. One pass: per group, the keys above the bracket counted and those inside collected
  //    (at most `cap` in all per group; more sends the group to the histogram selection).
  const size_t cap = std::max<size_t>(size_t(1) << 16, (size_t(16) << 20) / na);
  std::vector<uint64_t> above(na, 0);
  uint64_t nonzero = 0;  // nz mode: non-zero keys of the stream
  std::vector<CandList>& cand = thread_candidates(na);  // per group, all threads' candidates (this thread's lists)
  std::vector<uint8_t> overflow(na, 0);
  std::mutex fold_mutex;
  struct CandState {
    std::vector<float> scratch;
    std::vector<uint32_t> bits;
    std::vector<uint64_t> above;
    std::vector<CandList>* cand;  // the team thread's own lists
    std::vector<size_t> count;
    uint64_t nonzero = 0;
  };
  std::vector<std::pair<std::vector<CandList>*, std::vector<size_t>>> parts;  // each thread's lists and counts
  const size_t nthreads = static_cast<size_t>(std::max(1, threads));
  const size_t tcap = cap / nthreads + kTile;
  {
    InputStage stage(inputs, n, std::max<size_t>(chunk, kAlign), tensor, false);
    PageReleaser releaser(release_inputs && !stage.active(), values_of(inputs));
    run_chunked(
        n, chunk, threads, releaser, &stage,
        [&](size_t) {
          CandState st{std::vector<float>(kSelectScratch), std::vector<uint32_t>(kTile * streams.size()),
                       std::vector<uint64_t>(na, 0), &thread_candidates(na), std::vector<size_t>(na, 0)};
          return st;  // candidate lists grow as they fill (a fixed size would be touched whole per tensor)
        },
        [&](CandState& st, size_t b0, size_t e0) {
          for (size_t t0 = b0; t0 < e0; t0 += kTile) {
            const size_t m = std::min(kTile, e0 - t0);
            for (size_t si = 0; si < streams.size(); ++si) keys(streams[si], t0, m, st.bits.data() + si * kTile, st.scratch.data());
            if (nz_mode) {
              const uint32_t* u = st.bits.data();
              uint64_t c = 0;
#pragma omp simd reduction(+ : c)
              for (size_t i = 0; i < m; ++i) c += u[i] != 0 ? 1u : 0u;
              st.nonzero += c;
            }
            for (size_t a = 0; a < na; ++a) {
              const uint32_t* u = st.bits.data() + slot[active[a]] * kTile;
              const uint32_t l = lo[a], h = hi[a];
              size_t c = st.count[a];
              if (c + m > tcap) {  // overflowed (reported at the fold): still counted
                uint64_t up = 0;
#pragma omp simd reduction(+ : up)
                for (size_t i = 0; i < m; ++i) up += u[i] > h ? 1u : 0u;
                st.above[a] += up;
                continue;
              }
              CandList& buf = (*st.cand)[a];
              if (buf.size() < c + m) buf.resize(std::min(tcap, std::max(2 * buf.size(), c + m + 4096)));
              st.count[a] = collect_in_range_count_above(u, m, l, h, buf.data(), c, &st.above[a]);
            }
          }
        },
        [&](CandState& st) {
          std::lock_guard<std::mutex> lock(fold_mutex);
          nonzero += st.nonzero;
          for (size_t a = 0; a < na; ++a) {
            above[a] += st.above[a];
            if (st.count[a] + kTile > tcap) overflow[a] = 1;  // a tile may have been skipped
          }
          parts.emplace_back(st.cand, st.count);
        });
  }
  // Each group's candidates in one list: this thread's own first (already in
  // place when it took part), then the others' appended (a thread's lists
  // outlive the region: they are its thread_local ones).
  for (size_t a = 0; a < na; ++a) {
    size_t total = 0, own = 0;
    for (const auto& [lists, count] : parts) {
      total += count[a];
      if (lists == &cand) own = count[a];
    }
    if (overflow[a]) {
      cand[a].resize(0);
      continue;
    }
    cand[a].resize(own);  // (no clearing: UninitAlloc)
    cand[a].reserve(total);
    for (const auto& [lists, count] : parts) {
      if (lists == &cand || count[a] == 0) continue;
      const uint32_t* from = (*lists)[a].data();
      cand[a].insert(cand[a].end(), from, from + count[a]);
    }
  }
  for (const auto& part : parts) {
    if (part.first == &cand) continue;
    for (CandList& c : *part.first) trim_candidates(c);
  }

  if (nz_mode) {  // the exact kk, now that the non-zero keys are counted
    kk[0] = static_cast<uint64_t>(std::floor(static_cast<double>(nonzero) * nz_frac));
    if (kk[0] == 0 || kk[0] >= n) return {kk[0] == 0 ? 0xffffffffu : 0u};
  }
  // 3. The kk-th largest is inside the bracket when above < kk ≤ above + |candidates|
  //    (the groups' selections in parallel, a thread each; nothing in the loop throws:
  //    the candidates are freed by a swap).
  std::vector<uint8_t> miss(na, 0);
  std::vector<std::vector<uint32_t>> hist(na);
  for (std::vector<uint32_t>& h : hist) h.reserve(kSelectHistogram);
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, std::min(threads, static_cast<int>(na))))
  for (long ai = 0; ai < static_cast<long>(na); ++ai) {
    const size_t a = static_cast<size_t>(ai);
    const size_t g = active[a];
    CandList& c = cand[a];
    if (!overflow[a] && above[a] < kk[g] && kk[g] - above[a] <= c.size()) {
      const size_t r = static_cast<size_t>(kk[g] - above[a]) - 1;
      thr[g] = kth_largest_u32(c.data(), c.size(), r, hist[a]);
    } else {
      miss[a] = 1;
    }
    trim_candidates(c);
  }
  std::vector<size_t> missed;
  for (size_t a = 0; a < na; ++a) {
    if (miss[a]) missed.push_back(active[a]);
  }
  if (!missed.empty()) {
    kth_largest_by_histogram(n, kk, src, missed, keys, inputs, tensor, chunk, threads, release_inputs, thr);
  }
  return thr;
}

}  // namespace

std::vector<uint32_t> kth_largest_keys(size_t n, const std::vector<uint64_t>& kk, const std::vector<size_t>& src,
                                       const KeyFn& keys, const std::vector<TensorIn*>& inputs,
                                       const std::string& tensor, size_t chunk, int threads, bool release_inputs) {
  return kth_select(n, kk, src, keys, inputs, tensor, chunk, threads, release_inputs, -1.0);
}

uint32_t kth_largest_of_nonzero(size_t n, double frac, const KeyFn& keys, const std::vector<TensorIn*>& inputs,
                                const std::string& tensor, size_t chunk, int threads, bool release_inputs) {
  return kth_select(n, {1}, {0}, keys, inputs, tensor, chunk, threads, release_inputs, frac)[0];
}

namespace {

// Keys |x_q − b| (f32 bit patterns) of model q, for the magnitude selections.
KeyFn tau_keys(const std::vector<TensorIn>& models, const TensorIn& base) {
  return [&models, &base](size_t q, size_t first, size_t m, uint32_t* out, float* scratch) {
    if (base.dtype == Dtype::BF16 && models[q].dtype == Dtype::BF16) {
      // straight from the stored bf16 (no f32 copies of both tiles in scratch first)
      const BF16Src bs{base.data + 2 * first}, xs{models[q].data + 2 * first};
#pragma omp simd
      for (size_t i = 0; i < m; ++i) out[i] = abs_bits(xs[i] - bs[i]);
      return;
    }
    float* b = scratch;
    float* x = scratch + kTile;
    load_tile(base, first, b, m);
    load_tile(models[q], first, x, m);
    for (size_t i = 0; i < m; ++i) out[i] = abs_bits(x[i] - b[i]);
  };
}

}  // namespace

std::vector<uint32_t> ties_thresholds(MergeJob& j) {
  const size_t k = j.models.size();
  const uint64_t kk = static_cast<uint64_t>(std::llround(j.density * static_cast<double>(j.n)));
  std::vector<TensorIn*> inputs;
  for (TensorIn& m : j.models) inputs.push_back(&m);
  inputs.push_back(&j.base);
  return kth_largest_keys(j.n, std::vector<uint64_t>(k, kk), tau_keys(j.models, j.base), inputs, j.tensor, j.chunk,
                          j.threads, j.release_inputs);
}

// ===========================================================================
// Per-tensor statistics of the element methods and the Gram matrices.

namespace {

constexpr size_t kReduceBlock = 16384;  // elements per f64 partial sum (fixed: results do not depend on threads)

// Sums `nacc` f64 accumulators over [0, n): fn(first, m, acc, scratch) adds block
// [first, first + m) into acc (zeroed); the block partials are added in block order.
using BlockFn = std::function<void(size_t, size_t, double*, float*)>;
std::vector<double> block_reduce(size_t n, size_t nacc, size_t scratch_floats, const BlockFn& fn,
                                 const std::vector<TensorIn*>& inputs, const std::string& tensor, int threads,
                                 bool release) {
  std::vector<double> total(nacc, 0.0);
  if (n == 0) return total;
  constexpr size_t kBlocksPerChunk = 64;
  std::vector<double> part(kBlocksPerChunk * nacc);
  InputStage stage(inputs, n, kBlocksPerChunk * kReduceBlock, tensor, false);
  PageReleaser releaser(release && !stage.active(), values_of(inputs));
  Failure failure;
  for (size_t c0 = 0; c0 < n; c0 += kBlocksPerChunk * kReduceBlock) {
    const size_t c1 = std::min(n, c0 + kBlocksPerChunk * kReduceBlock);
    const long nb = static_cast<long>((c1 - c0 + kReduceBlock - 1) / kReduceBlock);
    std::fill(part.begin(), part.end(), 0.0);
    stage.begin_chunk(c0, c1);
#pragma omp parallel num_threads(std::max(1, std::min<int>(threads, static_cast<int>(nb))))
    {
      std::vector<float> scratch;
      try {
        scratch.resize(scratch_floats);
      } catch (...) {
        failure.capture();
      }
#pragma omp for schedule(static)
      for (long b = 0; b < nb; ++b) {
        if (failure.failed()) continue;
        try {
          const size_t first = c0 + static_cast<size_t>(b) * kReduceBlock;
          stage.read(first, std::min(c1, first + kReduceBlock));
          fn(first, std::min(kReduceBlock, c1 - first), part.data() + static_cast<size_t>(b) * nacc, scratch.data());
        } catch (...) {
          failure.capture();
        }
      }
    }
    failure.rethrow();
    for (long b = 0; b < nb; ++b) {
      for (size_t a = 0; a < nacc; ++a) total[a] += part[static_cast<size_t>(b) * nacc + a];
    }
    releaser.upto(c1);
  }
  return total;
}

// v_q of elements [first, first + m): x_q − b (f32) with a base, else x_q, into dst (m floats each, k of them).
void load_vectors(const std::vector<TensorIn>& models, const TensorIn& base, size_t first, size_t m, float* dst,
                  float* bscratch) {
  if (base.data) load_tile(base, first, bscratch, m);
  for (size_t q = 0; q < models.size(); ++q) {
    float* v = dst + q * kTile;
    load_tile(models[q], first, v, m);
    if (base.data) {
      for (size_t i = 0; i < m; ++i) v[i] = v[i] - bscratch[i];
    }
  }
}

// Adds the Gram matrix of the k tile vectors (m elements each, stride kTile) into g (k × k, upper triangle).
void add_gram(const float* v, size_t k, size_t m, double* g) {
  for (size_t q = 0; q < k; ++q) {
    for (size_t r = q; r < k; ++r) {
      const float* a = v + q * kTile;
      const float* c = v + r * kTile;
      g[q * k + r] += dot_sum(a, c, m);  // four f64 lanes in a fixed order (fixed_sums.h)
    }
  }
}

void symmetrize(double* g, size_t k) {
  for (size_t q = 0; q < k; ++q) {
    for (size_t r = 0; r < q; ++r) g[q * k + r] = g[r * k + q];
  }
}

// DELLA (Deep et al. 2024, MagPrune as mergekit's della_magprune): in each row,
// entries ranked by |τ| (ascending, ties by position: rank r = 1..C) are kept with
// probability p = (d − ε) + 2ε (r − 1)/(C − 1) (C = 1: d − ε), drawn from
// dare_u24(key, i) < p · 2^24. One bit per element and model.
// With `l1` set (the L1 rescale), also returns per model Σ|τ| and Σ|kept τ| (2k
// values), summed per row in f64 and then over rows in row order.
// With store false no mask is kept (only the sums: the L1 factors of a tensor
// merged in blocks). The hash reads element g as j.first_element + g. All models
// in one pass over the rows (each row's base read and converted once); the
// keep decisions themselves are della_row_keep's (della_keep.h).
std::vector<uint8_t> della_mask(MergeJob& j, const std::vector<uint64_t>& keys, uint64_t* stride,
                                std::vector<double>* l1, bool store) {
  const size_t k = j.models.size();
  const size_t row = j.row_len == 0 ? j.n : j.row_len;
  const size_t rows = j.n / row;
  *stride = (j.n + 7) / 8;
  std::vector<uint8_t> mask(store ? k * *stride : 0, 0);
  Failure failure;
  const size_t rows_per_chunk = std::max<size_t>(1, (size_t(1) << 20) / row);
  // One pass for all models: each row's base read and converted once.
  std::vector<TensorIn*> inputs{&j.base};
  for (TensorIn& m : j.models) inputs.push_back(&m);
  InputStage stage(inputs, j.n, rows_per_chunk * row, j.tensor, false);
  PageReleaser releaser(j.release_inputs && !stage.active(), values_of(inputs));
  std::vector<DellaTable> tables;
  for (size_t q = 0; q < k; ++q) tables.push_back(della_table(row, j.densities[q], j.epsilons[q]));
  std::vector<double> row_l1(l1 ? 2 * rows * k : 0);  // per model, per row: Σ|τ|, Σ|kept τ|
  const bool all_bf16 = j.base.dtype == Dtype::BF16 &&
                        std::all_of(j.models.begin(), j.models.end(), [](const TensorIn& t) { return t.dtype == Dtype::BF16; });
  for (size_t r0 = 0; r0 < rows; r0 += rows_per_chunk) {
    const long r1 = static_cast<long>(std::min(rows, r0 + rows_per_chunk));
    stage.begin_chunk(r0 * row, static_cast<size_t>(r1) * row);
#pragma omp parallel num_threads(std::max(1, j.threads))
    {
      std::vector<float> b, x;
      std::vector<uint32_t> key, u, lim;
      std::vector<uint8_t> bits;
      DellaRowScratch scratch;
      try {
        b.resize(row);
        x.resize(row);
        key.resize(row);
        u.resize(row);
        lim.resize(row);
        if (store) bits.resize(row / 8 + 2);
      } catch (...) {
        failure.capture();
      }
      // The chunk's inputs read first, by the team in large pieces (a pread per row
      // of a few KiB spent more time in the kernel than the sort took).
      {
        constexpr size_t kReadPiece = size_t(1) << 16;
        const size_t c0 = r0 * row, c1 = static_cast<size_t>(r1) * row;
        const long pieces = static_cast<long>((c1 - c0 + kReadPiece - 1) / kReadPiece);
#pragma omp for schedule(static)
        for (long pc = 0; pc < pieces; ++pc) {
          if (failure.failed()) continue;
          try {
            const size_t p0 = c0 + static_cast<size_t>(pc) * kReadPiece;
            stage.read(p0, std::min(c1, p0 + kReadPiece));
          } catch (...) {
            failure.capture();
          }
        }
      }
#pragma omp for schedule(dynamic, 1)
      for (long r = static_cast<long>(r0); r < r1; ++r) {
        if (failure.failed()) continue;
        const size_t first = static_cast<size_t>(r) * row;
        if (!all_bf16) load_tile(j.base, first, b.data(), row);
        for (size_t q = 0; q < k; ++q) {
          // the keys |τ| (f32 bits; bf16 inputs read in place) and the draws
          // u_i = dare_u24(key, g), vectorised as gta_tile does
          if (all_bf16) {
            const BF16Src bs{j.base.data + 2 * first}, xs{j.models[q].data + 2 * first};
            uint32_t* __restrict kp = key.data();
#pragma omp simd
            for (size_t i = 0; i < row; ++i) kp[i] = abs_bits(xs[i] - bs[i]);
          } else {
            load_tile(j.models[q], first, x.data(), row);
            for (size_t i = 0; i < row; ++i) key[i] = abs_bits(x[i] - b[i]);
          }
          const uint64_t hkey = keys[q];
          const uint64_t h0 = j.first_element + first;  // hash index of the row's first element
          if ((h0 >> 32) == ((h0 + row - 1) >> 32)) {
            const uint32_t lo0 = static_cast<uint32_t>(h0), k0 = static_cast<uint32_t>(hkey);
            const uint32_t k1 = static_cast<uint32_t>(h0 >> 32) + static_cast<uint32_t>(hkey >> 32);
            uint32_t* __restrict up = u.data();
#pragma omp simd
            for (size_t i = 0; i < row; ++i) up[i] = mix32(mix32((lo0 + static_cast<uint32_t>(i)) ^ k0) ^ k1) >> 8;
          } else {
            for (size_t i = 0; i < row; ++i) u[i] = dare_u24(hkey, h0 + i);
          }
          // keep[i] (in lim, as 0/1) = u_i < T[rank of element i]
          della_row_keep(key.data(), u.data(), tables[q], row, lim.data(), scratch);
          if (store) {
            // This row's bits, assembled in position order from byte first/8 on;
            // only the first and last byte can be shared with a neighbouring row.
            const uint64_t byte0 = first >> 3;
            const size_t nbytes = static_cast<size_t>(((first + row - 1) >> 3) - byte0 + 1);
            std::fill(bits.begin(), bits.begin() + static_cast<std::ptrdiff_t>(nbytes), uint8_t(0));
            // (eight 0/1 words to a byte, vectorised, from the first byte boundary on)
            const size_t lead = std::min(row, static_cast<size_t>((8 - (first & 7)) & 7));
            for (size_t i = 0; i < lead; ++i) bits[0] |= static_cast<uint8_t>(lim[i] << ((first + i) & 7));
            const size_t whole = (row - lead) / 8;
            uint8_t* __restrict packed = bits.data() + (lead != 0 ? 1 : 0);
            const uint32_t* __restrict lp = lim.data() + lead;
#pragma omp simd
            for (size_t t = 0; t < whole; ++t) {
              const uint32_t* w8 = lp + 8 * t;
              packed[t] = static_cast<uint8_t>(w8[0] | w8[1] << 1 | w8[2] << 2 | w8[3] << 3 | w8[4] << 4 | w8[5] << 5 |
                                               w8[6] << 6 | w8[7] << 7);
            }
            for (size_t i = lead + 8 * whole; i < row; ++i) {
              const uint64_t g = first + i;
              bits[(g >> 3) - byte0] |= static_cast<uint8_t>(lim[i] << (g & 7));
            }
            uint8_t* mq = mask.data() + q * *stride + byte0;
            __atomic_fetch_or(mq, bits[0], __ATOMIC_RELAXED);
            for (size_t t = 1; t + 1 < nbytes; ++t) mq[t] = bits[t];
            if (nbytes > 1) __atomic_fetch_or(mq + nbytes - 1, bits[nbytes - 1], __ATOMIC_RELAXED);
          }
          if (l1) {
            // Σ|τ| and Σ|kept τ| of the row in f64, in a fixed order
            double* acc = &row_l1[2 * (q * rows + static_cast<size_t>(r))];
            abs_key_sums(key.data(), lim.data(), row, acc, acc + 1);
          }
        }
      }
    }
    failure.rethrow();
    releaser.upto(static_cast<size_t>(r1) * row);
  }
  for (size_t q = 0; l1 && q < k; ++q) {
    double all = 0, kept = 0;
    for (size_t r = 0; r < rows; ++r) {
      all += row_l1[2 * (q * rows + r)];
      kept += row_l1[2 * (q * rows + r) + 1];
    }
    (*l1)[2 * q] = all;
    (*l1)[2 * q + 1] = j.densities[q] >= 1.0 ? all : kept;  // density 1 keeps everything
  }
  return mask;
}

// mergekit's rescale_norm l1: Σ|τ| / Σ|kept τ| (1 when either is < 1e-7).
float l1_rescale(double before, double after) {
  return before < 1e-7 || after < 1e-7 ? 1.0f : static_cast<float>(before / after);
}

// SCE's variance tile: τ_q of elements [first, first + m) into scratch tiles 1..k,
// their variance into tile k + 2 (returned; the mean in tile k + 1).
using VarianceTileFn = std::function<const float*(float* scratch, size_t first, size_t m)>;

// SCE's selection and its weights' sums in one pass: the variance cut-off
// kth_largest_of_nonzero(frac) would give (*thr), and per model Σ τ² over the
// elements whose variance key is ≥ it (*sq). Usual case: a sample brackets the
// cut-off (sample_brackets); the pass counts the non-zero keys and those above
// the bracket, sums τ² of the elements above it per fixed block, and keeps the
// elements inside it (key, block, τ of every model). With the cut-off selected
// among those, each block's kept elements at or above it are added to a second
// per-block sum (in element order: a block is one thread's), and the sums are
// added in block order, a fixed order. Returns false, having set nothing, when
// the cut-off falls outside the bracket or the bracket holds too many elements;
// the caller then selects and sums in separate passes.
bool sce_select_and_square_sums(MergeJob& j, double frac, const KeyFn& keys, const VarianceTileFn& variance_tile,
                                size_t vscratch, const std::vector<TensorIn*>& inputs, uint32_t* thr,
                                std::vector<double>* sq) {
  const size_t k = j.models.size(), n = j.n;
  std::vector<uint64_t> kk{1};
  std::vector<uint32_t> lo, hi;
  sample_brackets(n, kk, frac, {0}, {0}, {0}, keys, inputs, j.tensor, j.threads, lo, hi);
  const size_t stride = 2 + k;  // a kept element: key, block, τ_0 … τ_{k−1} (f32 bits)
  const size_t nthreads = static_cast<size_t>(std::max(1, j.threads));
  const size_t tcap = (size_t(64) << 20) / sizeof(uint32_t) / nthreads / stride * stride;  // 64 MiB in all
  std::vector<std::vector<uint32_t>> kept(nthreads);
  std::vector<uint8_t> overflow(nthreads, 0);
  // acc: Σ τ_q² above the bracket (k), the non-zero keys, the keys above the bracket
  const std::vector<double> total = block_reduce(
      n, k + 2, vscratch,
      [&](size_t first, size_t m, double* acc, float* scratch) {
        const size_t tid = static_cast<size_t>(omp_get_thread_num());
        const uint32_t l = lo[0], h = hi[0];  // copies: the key stores below could alias captured ones
        std::vector<uint32_t>& c = kept[tid];
        const uint32_t block = static_cast<uint32_t>(first / kReduceBlock);
        for (size_t t0 = first; t0 < first + m; t0 += kTile) {
          const size_t mm = std::min(kTile, first + m - t0);
          const float* var = variance_tile(scratch, t0, mm);
          uint32_t u[kTile];
          uint32_t nz = 0, up = 0;
#pragma omp simd reduction(+ : nz, up)
          for (size_t i = 0; i < mm; ++i) {
            u[i] = abs_bits(var[i]);
            nz += u[i] != 0 ? 1u : 0u;
            up += u[i] > h ? 1u : 0u;
          }
          acc[k] += static_cast<double>(nz);
          acc[k + 1] += static_cast<double>(up);
          if (h != 0xffffffffu) {
            for (size_t q = 0; q < k; ++q) acc[q] += selected_square_sum(scratch + kTile * (1 + q), var, h + 1, false, mm);
          }
          if (overflow[tid]) continue;
          // the elements inside the bracket (u − l ≤ h − l: l ≤ u ≤ h), their positions
          // listed without a branch first (about half of all groups of 16 hold one:
          // a skip of empty groups mispredicted that often)
          const uint32_t span = h - l;
          uint32_t at[kTile + 16];
          size_t hits = 0, i = 0;
#if defined(__AVX512F__)
          {  // 16 at a time: a compress of their positions in registers, one full store
            const __m512i vl = _mm512_set1_epi32(static_cast<int>(l)), vspan = _mm512_set1_epi32(static_cast<int>(span));
            const __m512i step = _mm512_set1_epi32(16);
            __m512i pos = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            for (; i + 16 <= mm; i += 16) {
              const __m512i v = _mm512_sub_epi32(_mm512_loadu_si512(u + i), vl);
              const __mmask16 in = _mm512_cmple_epu32_mask(v, vspan);
              _mm512_storeu_si512(at + hits, _mm512_maskz_compress_epi32(in, pos));
              hits += static_cast<size_t>(__builtin_popcount(in));
              pos = _mm512_add_epi32(pos, step);
            }
          }
#endif
          for (; i < mm; ++i) {
            at[hits] = static_cast<uint32_t>(i);
            hits += u[i] - l <= span ? 1u : 0u;
          }
          if (hits == 0) continue;
          if (c.size() + hits * stride > tcap) {
            overflow[tid] = 1;
            continue;
          }
          size_t w = c.size();
          c.resize(w + hits * stride);
          for (size_t t = 0; t < hits; ++t) {
            const size_t e = at[t];
            c[w] = u[e];
            c[w + 1] = block;
            for (size_t q = 0; q < k; ++q) std::memcpy(&c[w + 2 + q], scratch + kTile * (1 + q) + e, 4);
            w += stride;
          }
        }
      },
      inputs, j.tensor, j.threads, j.release_inputs);
  if (std::any_of(overflow.begin(), overflow.end(), [](uint8_t o) { return o != 0; })) return false;
  const uint64_t want = static_cast<uint64_t>(std::floor(total[k] * frac));  // floor(nnz · frac)
  if (want == 0) {  // nothing selected (kth_largest_of_nonzero's kk = 0)
    *thr = 0xffffffffu;
    sq->assign(k, 0.0);
    return true;
  }
  const uint64_t above = static_cast<uint64_t>(total[k + 1]);
  std::vector<uint32_t> ck;
  for (const std::vector<uint32_t>& c : kept) {
    for (size_t r = 0; r < c.size(); r += stride) ck.push_back(c[r]);
  }
  if (want >= n || above >= want || want - above > ck.size()) return false;
  const size_t rank = static_cast<size_t>(want - above) - 1;
  std::vector<uint32_t> hist;
  const uint32_t t = kth_largest_u32(ck.data(), ck.size(), rank, hist);
  const size_t nblocks = (n + kReduceBlock - 1) / kReduceBlock;
  std::vector<double> per_block(nblocks * k, 0.0);
  for (const std::vector<uint32_t>& c : kept) {
    for (size_t r = 0; r < c.size(); r += stride) {
      if (c[r] < t) continue;
      double* pb = per_block.data() + static_cast<size_t>(c[r + 1]) * k;
      for (size_t q = 0; q < k; ++q) {
        float v;
        std::memcpy(&v, &c[r + 2 + q], 4);
        pb[q] += static_cast<double>(v) * v;
      }
    }
  }
  sq->assign(total.begin(), total.begin() + static_cast<std::ptrdiff_t>(k));
  for (size_t b = 0; b < nblocks; ++b) {
    for (size_t q = 0; q < k; ++q) (*sq)[q] += per_block[b * k + q];
  }
  *thr = t;
  return true;
}
}  // namespace

void validate_element_job(const MergeJob& j, const std::function<void(const std::string&)>& bad) {
  const size_t k = j.models.size();
  auto per_model = [&](size_t got, const char* what) {
    if (got != k) bad(std::string("expected one ") + what + " per model (" + std::to_string(k) + "), got " + std::to_string(got));
  };
  switch (j.method) {
    case MergeMethod::Lincomb: {
      if (j.segments != Segments::Whole && (j.seg_len == 0 || j.n % j.seg_len != 0)) {
        bad("segment length " + std::to_string(j.seg_len) + " does not divide the " + std::to_string(j.n) + " elements");
      }
      const uint64_t segs = j.segments == Segments::Whole ? 1 : j.segments == Segments::Rows ? j.n / j.seg_len : j.seg_len;
      if (j.coef.size() != segs * k) {
        bad("expected " + std::to_string(segs * k) + " coefficients (" + std::to_string(segs) + " segments × " +
            std::to_string(k) + " models), got " + std::to_string(j.coef.size()));
      }
      for (float c : j.coef) {
        if (!std::isfinite(c)) bad("coefficients must be finite");
      }
      break;
    }
    case MergeMethod::Nearswap:
      if (k != 1) bad("nearswap takes exactly one model besides the base");
      if (!std::isfinite(j.nearswap_t)) bad("t must be finite");
      break;
    case MergeMethod::Gta:
      if (!j.keep_count.empty()) per_model(j.keep_count.size(), "keep count");
      if (!j.drop_count.empty()) per_model(j.drop_count.size(), "drop count");
      if (j.sparsify == Sparsify::Random || j.sparsify == Sparsify::Mask || j.rescale == 2) {
        per_model(j.densities.size(), "density");
        for (double d : j.densities) {
          if (!(d > 0.0 && d <= 1.0)) bad("density must be in (0, 1]");
        }
      }
      if (j.sparsify == Sparsify::Mask) {
        per_model(j.epsilons.size(), "epsilon");
        for (size_t q = 0; q < k; ++q) {
          const double d = j.densities[q], e = j.epsilons[q];
          if (!(e >= 0.0) || (d < 1.0 && !(d - e > 0.0 && d + e < 1.0))) bad("density ± epsilon must lie in (0, 1)");
        }
        if (j.row_len != 0 && j.n % j.row_len != 0) bad("row length does not divide the element count");
      }
      if (j.rescale < 0 || j.rescale > 2) bad("rescale must be 0 (none), 1 (L1 norm) or 2 (1/density)");
      if (!std::isfinite(j.lambda)) bad("lambda must be finite");
      break;
    case MergeMethod::Sce:
      if (!(j.select_topk >= 0.0 && j.select_topk <= 1.0)) bad("select_topk must be in [0, 1]");
      break;
    default:
      break;
  }
}

ElemPrepared prepare_element_method(MergeJob& j) {
  ElemPrepared ep;
  ElemParams& p = ep.p;
  const size_t k = j.models.size();
  p.k = static_cast<int>(k);
  for (size_t q = 0; q < k; ++q) {
    p.w[q] = q < j.weights.size() ? j.weights[q] : 1.0f;
    p.rs[q] = 1.0f;
    p.thr_hi[q] = 0xffffffffu;
  }
  std::vector<TensorIn*> inputs;
  for (TensorIn& m : j.models) inputs.push_back(&m);
  if (j.base.data) inputs.push_back(&j.base);
  switch (j.method) {
    case MergeMethod::Lincomb:
      p.use_base = j.use_base ? 1 : 0;
      p.seg_mode = static_cast<int>(j.segments);
      p.seg_len = j.seg_len;
      p.coef = j.coef.data();
      break;
    case MergeMethod::Nearswap:
      p.t = j.nearswap_t;
      break;
    case MergeMethod::Gta: {
      p.sparsify = static_cast<int>(j.sparsify);
      p.consensus = j.consensus ? 1 : 0;
      p.normalize = j.normalize ? 1 : 0;
      p.lambda = j.lambda;
      const double ws = weight_sum(j.weights);
      p.div_const = std::fabs(ws) < 1e-8 ? 1.0f : static_cast<float>(ws);
      if (j.sparsify == Sparsify::Band && !j.keep_count.empty()) {
        std::vector<uint64_t> lo(k), hi(k);
        for (size_t q = 0; q < k; ++q) {
          const uint64_t drop = j.drop_count.empty() ? 0 : j.drop_count[q];
          lo[q] = j.keep_count[q] + drop;
          hi[q] = drop;
        }
        // Both cut-offs of every model in one selection (groups q and k + q read model q's keys).
        std::vector<uint64_t> kk(lo);
        std::vector<size_t> src(k);
        for (size_t q = 0; q < k; ++q) src[q] = q;
        const bool drops = std::any_of(hi.begin(), hi.end(), [](uint64_t h) { return h > 0; });
        if (drops) {
          kk.insert(kk.end(), hi.begin(), hi.end());
          src.insert(src.end(), src.begin(), src.end());
        }
        const std::vector<uint32_t> t =
            kth_largest_keys(j.n, kk, src, tau_keys(j.models, j.base), inputs, j.tensor, j.chunk, j.threads, j.release_inputs);
        for (size_t q = 0; q < k; ++q) {
          p.thr_lo[q] = t[q];
          p.thr_hi[q] = drops && hi[q] > 0 ? t[k + q] : 0xffffffffu;  // hi 0: nothing dropped from the top
        }
      }
      const std::vector<uint64_t> keys = model_keys(j);
      for (size_t q = 0; q < k; ++q) {
        p.key[q] = keys[q];
        if (j.sparsify == Sparsify::Random) p.keep_thr[q] = dare_keep_threshold(1.0 - j.densities[q]);
      }
      std::vector<double> mask_l1;
      if (j.sparsify == Sparsify::Mask) {
        if (j.rescale == 1) mask_l1.assign(2 * k, 0.0);
        ep.mask = della_mask(j, keys, &p.mask_stride, j.rescale == 1 ? &mask_l1 : nullptr, true);
        for (size_t q = 0; q < k; ++q) {
          if (j.densities[q] >= 1.0) {  // density 1 keeps everything (mergekit)
            std::fill(ep.mask.begin() + q * p.mask_stride, ep.mask.begin() + (q + 1) * p.mask_stride, uint8_t(0xff));
          }
        }
        p.mask = ep.mask.data();
      }
      if (j.rescale == 2) {
        for (size_t q = 0; q < k; ++q) p.rs[q] = static_cast<float>(1.0 / j.densities[q]);
      } else if (j.rescale == 1) {
        // L1 rescale (mergekit's rescale_norm l1): rs_k = Σ|τ_k| / Σ|kept τ_k| (1 when either is < 1e-7)
        const ElemParams pc = p;
        const std::vector<double> l1 = !mask_l1.empty() ? mask_l1 : block_reduce(
            j.n, 2 * k, (k + 1) * kTile,
            [&](size_t first, size_t m, double* acc, float* scratch) {
              for (size_t t0 = first; t0 < first + m; t0 += kTile) {
                const size_t mm = std::min(kTile, first + m - t0);
                load_vectors(j.models, j.base, t0, mm, scratch + kTile, scratch);
                for (size_t q = 0; q < k; ++q) {
                  const float* v = scratch + kTile * (1 + q);
                  double all = 0, kept = 0;
                  for (size_t i = 0; i < mm; ++i) {
                    const double a = std::fabs(static_cast<double>(v[i]));
                    all += a;
                    if (gta_keep(pc, static_cast<int>(q), v[i], t0 + i)) kept += a;
                  }
                  acc[2 * q] += all;
                  acc[2 * q + 1] += kept;
                }
              }
            },
            inputs, j.tensor, j.threads, j.release_inputs);
        for (size_t q = 0; q < k; ++q) p.rs[q] = l1_rescale(l1[2 * q], l1[2 * q + 1]);
      }
      break;
    }
    case MergeMethod::Sce: {
      // Per tile: τ_q of the tile (scratch tiles 1..k) and their variance (tile k + 2; mean in tile k + 1).
      const size_t vscratch = (k + 3) * kTile;
      const bool all_bf16 = j.base.dtype == Dtype::BF16 &&
                            std::all_of(j.models.begin(), j.models.end(), [](const TensorIn& t) { return t.dtype == Dtype::BF16; });
      const VarianceTileFn variance_tile = [&](float* scratch, size_t first, size_t m) -> const float* {
        float* var = scratch + kTile * (k + 2);
        float* dw[kMaxMergeModels] = {};
        for (size_t q = 0; q < k; ++q) dw[q] = scratch + kTile * (1 + q);
        if (all_bf16) {  // one loop, from the stored bf16 (sce_variance_k)
          BF16Src xs[kMaxMergeModels];
          for (size_t q = 0; q < k; ++q) xs[q] = BF16Src{j.models[q].data + 2 * first};
          if (sce_variance_fused(static_cast<int>(k), BF16Src{j.base.data + 2 * first}, xs, dw, var, m)) return var;
        }
        load_vectors(j.models, j.base, first, m, scratch + kTile, scratch);
        const float* d[kMaxMergeModels] = {};
        for (size_t q = 0; q < k; ++q) d[q] = dw[q];
        sce_variance_tile(d, static_cast<int>(k), scratch + kTile * (k + 1), var, m);
        return var;
      };
      std::vector<double> sq;  // per model Σ τ² of the selected entries
      if (j.select_topk < 1.0) {
        p.select = 1;
        // the kk-th largest variance, kk = floor(count_nonzero(var) · select_topk), counted in the same pass
        const KeyFn keys = [&](size_t, size_t first, size_t m, uint32_t* out, float*) {
          thread_local std::vector<float> s;
          s.resize(vscratch);
          const float* var = variance_tile(s.data(), first, m);
          for (size_t i = 0; i < m; ++i) out[i] = abs_bits(var[i]);
        };
        // usually one pass for the cut-off and the sums; else one for each
        const bool fused = j.n > (size_t(1) << 16) &&
                           sce_select_and_square_sums(j, j.select_topk, keys, variance_tile, vscratch, inputs, &p.var_thr, &sq);
        if (!fused) {
          p.var_thr = kth_largest_of_nonzero(j.n, j.select_topk, keys, inputs, j.tensor, j.chunk, j.threads, j.release_inputs);
        }
      }
      // w_k = mean(d_k²) / Σ_k mean(d_k²) (1/k each when that sum is < 1e-6)
      const ElemParams pc = p;
      if (sq.empty()) {
        sq = block_reduce(
            j.n, k, vscratch,
            [&](size_t first, size_t m, double* acc, float* scratch) {
              for (size_t t0 = first; t0 < first + m; t0 += kTile) {
                const size_t mm = std::min(kTile, first + m - t0);
                const float* var = variance_tile(scratch, t0, mm);
                for (size_t q = 0; q < k; ++q) {
                  // Σ τ² of the selected entries in f64, in a fixed order
                  acc[q] += selected_square_sum(scratch + kTile * (1 + q), var, pc.var_thr, !pc.select, mm);
                }
              }
            },
            inputs, j.tensor, j.threads, j.release_inputs);
      }
      double total = 0;
      for (size_t q = 0; q < k; ++q) total += sq[q] / static_cast<double>(j.n);
      for (size_t q = 0; q < k; ++q) {
        p.w[q] = std::fabs(total) < 1e-6 ? static_cast<float>(1.0 / static_cast<double>(k))
                                         : static_cast<float>(sq[q] / static_cast<double>(j.n) / total);
      }
      break;
    }
    default:
      break;
  }
  return ep;
}

std::vector<double> tensor_gram_cpu(const GramJob& job) {
  GramJob j = job;  // its inputs are re-pointed at staging buffers chunk by chunk
  const size_t k = j.models.size();
  if (k == 0 || k > static_cast<size_t>(kMaxMergeModels)) {
    throw DfError("InvalidArgument", "gram of " + j.tensor + ": 1 to 64 vectors are needed", j.tensor);
  }
  std::vector<TensorIn*> inputs;
  for (TensorIn& m : j.models) inputs.push_back(&m);
  if (j.base.data) inputs.push_back(&j.base);
  if (j.segments == Segments::Whole) {
    std::vector<double> g = block_reduce(
        j.n, k * k, (k + 1) * kTile,
        [&](size_t first, size_t m, double* acc, float* scratch) {
          for (size_t t0 = first; t0 < first + m; t0 += kTile) {
            const size_t mm = std::min(kTile, first + m - t0);
            load_vectors(j.models, j.base, t0, mm, scratch + kTile, scratch);
            add_gram(scratch + kTile, k, mm, acc);
          }
        },
        inputs, j.tensor, j.threads, j.release_inputs);
    symmetrize(g.data(), k);
    return g;
  }
  const size_t len = j.seg_len;
  if (len == 0 || j.n % len != 0) {
    throw DfError("InvalidArgument", "gram of " + j.tensor + ": segment length does not divide the element count", j.tensor);
  }
  const size_t rows = j.n / len;
  const size_t segs = j.segments == Segments::Rows ? rows : len;
  std::vector<double> g(segs * k * k, 0.0);
  Failure failure;
  const size_t rows_per_chunk = std::max<size_t>(1, (size_t(1) << 20) / len);
  InputStage stage(inputs, j.n, rows_per_chunk * len, j.tensor, false);
  PageReleaser releaser(j.release_inputs && !stage.active(), values_of(inputs));
  for (size_t r0 = 0; r0 < rows; r0 += rows_per_chunk) {
    const size_t r1 = std::min(rows, r0 + rows_per_chunk);
    stage.begin_chunk(r0 * len, r1 * len);
    stage.read(r0 * len, r1 * len);  // columns cross the threads' rows: the chunk is read whole first
    // Rows: one row per iteration; Cols: one block of kTile columns over this chunk's rows, in row order.
    const long units = static_cast<long>(j.segments == Segments::Rows ? r1 - r0 : (len + kTile - 1) / kTile);
#pragma omp parallel num_threads(std::max(1, j.threads))
    {
      std::vector<float> scratch;
      try {
        scratch.resize((k + 1) * kTile);
      } catch (...) {
        failure.capture();
      }
#pragma omp for schedule(static)
      for (long u = 0; u < units; ++u) {
        if (failure.failed()) continue;
        try {
          if (j.segments == Segments::Rows) {
            const size_t r = r0 + static_cast<size_t>(u);
            double* acc = g.data() + r * k * k;
            for (size_t t0 = r * len; t0 < (r + 1) * len; t0 += kTile) {
              const size_t mm = std::min(kTile, (r + 1) * len - t0);
              load_vectors(j.models, j.base, t0, mm, scratch.data() + kTile, scratch.data());
              add_gram(scratch.data() + kTile, k, mm, acc);
            }
          } else {
            const size_t c0 = static_cast<size_t>(u) * kTile;
            const size_t cm = std::min(kTile, len - c0);
            for (size_t r = r0; r < r1; ++r) {
              load_vectors(j.models, j.base, r * len + c0, cm, scratch.data() + kTile, scratch.data());
              const float* v = scratch.data() + kTile;
              for (size_t c = 0; c < cm; ++c) {
                double* acc = g.data() + (c0 + c) * k * k;
                for (size_t q = 0; q < k; ++q) {
                  for (size_t s = q; s < k; ++s) acc[q * k + s] += static_cast<double>(v[q * kTile + c]) * v[s * kTile + c];
                }
              }
            }
          }
        } catch (...) {
          failure.capture();
        }
      }
    }
    failure.rethrow();
    releaser.upto(r1 * len);
  }
  for (size_t s = 0; s < segs; ++s) symmetrize(g.data() + s * k * k, k);
  return g;
}

std::vector<TensorIn*> used_inputs(MergeJob& j) {
  std::vector<TensorIn*> v;
  for (TensorIn& m : j.models) v.push_back(&m);
  if (uses_base(j)) v.push_back(&j.base);
  for (TensorIn& f : j.fishers) v.push_back(&f);
  return v;
}

namespace {

// The merge pass of a prepared job: every chunk read (staged), merged tile by
// tile, and written to memory or to the file slot.
void merge_pass(MergeJob& j, const Prepared& p) {
  const int k = p.k;
  const size_t osz = dtype_size(j.out_dtype);
  const std::vector<TensorIn*> inputs = used_inputs(j);
  InputStage stage(inputs, j.n, std::max<size_t>(j.chunk, kAlign), j.tensor, true);
  PageReleaser releaser(j.release_inputs && !stage.active(), values_of(inputs));
  const MergeTileFn tile = merge_tile_for(j);
  const size_t scratch_floats = kTile * (1 + 2 * static_cast<size_t>(k) + 3);
  std::mutex file_lock;  // one writer at a time (DeferredWriter)
  run_chunked(
      j.n, j.chunk, j.threads, releaser, &stage,
      [&](size_t share_max) {
        Scratch s;
        s.buf.resize(scratch_floats);
        if (j.fd >= 0) s.writer = std::make_unique<DeferredWriter>(j.fd, file_lock, share_max * osz);
        return s;
      },
      [&](Scratch& s, size_t b0, size_t e0) {
        float* out = s.buf.data() + kTile * (1 + 2 * static_cast<size_t>(k) + 2);
        uint8_t* dst = s.writer ? s.writer->reserve((e0 - b0) * osz) : j.out + b0 * osz;
        for (size_t t0 = b0; t0 < e0; t0 += kTile) {
          const size_t m = std::min(kTile, e0 - t0);
          tile(j, p, s.buf.data(), t0, m, out);
          store_tile(out, j.out_dtype, dst + (t0 - b0) * osz, m);
        }
        if (s.writer) s.writer->commit(j.fd_offset + b0 * osz, (e0 - b0) * osz);
      },
      [&](Scratch& s) {
        if (s.writer) s.writer->flush();
      });
  stage.finish();
}

}  // namespace

bool della_in_blocks(const MergeJob& j) {
  if (j.method != MergeMethod::Gta || j.sparsify != Sparsify::Mask || j.row_len == 0) return false;
  const uint64_t rows = j.n / j.row_len;
  return static_cast<uint64_t>(j.models.size()) * ((j.n + 7) / 8) > j.mask_budget && rows > 8;
}

void for_della_blocks(MergeJob& j, const std::function<void(MergeJob&, const std::vector<float>*)>& merge_block) {
  const size_t k = j.models.size();
  const size_t row = j.row_len, rows = j.n / row;
  std::vector<float> rs(k, 1.0f);
  if (j.rescale == 1) {
    const std::vector<uint64_t> keys = model_keys(j);
    std::vector<double> l1(2 * k, 0.0);
    uint64_t stride = 0;
    della_mask(j, keys, &stride, &l1, false);
    for (size_t q = 0; q < k; ++q) rs[q] = l1_rescale(l1[2 * q], l1[2 * q + 1]);
  }
  const size_t row_mask_bytes = std::max<size_t>(1, k * row / 8);
  const size_t block_rows = std::max<size_t>(8, j.mask_budget / row_mask_bytes / 8 * 8);
  const size_t osz = dtype_size(j.out_dtype);
  auto shift = [](TensorIn& t, size_t e) {
    if (t.data) t.data += e * dtype_size(t.dtype);
  };
  for (size_t r0 = 0; r0 < rows; r0 += block_rows) {
    const size_t r1 = std::min(rows, r0 + block_rows);
    const size_t e0 = r0 * row;
    MergeJob sub = j;
    sub.n = (r1 - r0) * row;
    sub.first_element = j.first_element + e0;
    shift(sub.base, e0);
    for (TensorIn& m : sub.models) shift(m, e0);
    if (sub.out) sub.out += e0 * osz;
    else sub.fd_offset += e0 * osz;
    if (j.rescale == 1) sub.rescale = 0;  // the whole tensor's factors, passed along
    merge_block(sub, j.rescale == 1 ? &rs : nullptr);
  }
}

void merge_tensor_cpu(const MergeJob& job) {
  validate_merge_job(job);
  MergeJob j = job;  // its inputs are re-pointed at staging buffers chunk by chunk (merge_staging.h)
  if (della_in_blocks(j)) {
    for_della_blocks(j, [](MergeJob& sub, const std::vector<float>* rs) {
      Prepared p = prepare(sub);
      if (rs) {
        for (size_t q = 0; q < rs->size(); ++q) p.elem.p.rs[q] = (*rs)[q];
      }
      merge_pass(sub, p);
    });
    return;
  }
  const Prepared p = prepare(j);
  merge_pass(j, p);
}

void df_accumulate_cpu(const AccumulateJob& j) {
  if (j.n > 0 && (j.fisher.data == nullptr || j.model.data == nullptr || j.s == nullptr || j.w == nullptr)) {
    throw DfError("InvalidArgument", "accumulate: missing input");
  }
  if (!std::isfinite(j.lambda)) throw DfError("InvalidArgument", "accumulate: lambda must be finite");
  std::vector<TensorIn> inputs{j.fisher, j.model};
  if (j.base.data) inputs.push_back(j.base);
  PageReleaser releaser(j.release_inputs, inputs);
  run_chunked(
      j.n, j.chunk, j.threads, releaser, [&](size_t) { return std::vector<float>(3 * kTile); },
      [&](std::vector<float>& s, size_t b0, size_t e0) {
        float* f = s.data();
        float* d = f + kTile;
        float* b = d + kTile;
        for (size_t t0 = b0; t0 < e0; t0 += kTile) {
          const size_t m = std::min(kTile, e0 - t0);
          load_tile(j.fisher, t0, f, m);
          load_tile(j.model, t0, d, m);
          if (j.base.data) {  // τ = θ − θ_pre
            load_tile(j.base, t0, b, m);
#pragma omp simd
            for (size_t i = 0; i < m; ++i) d[i] -= b[i];
          }
          df_accumulate_tile(f, d, j.lambda, j.s + t0, j.w + t0, m);
        }
      });
}

double sum_of_squares_cpu(TensorIn x, size_t n, int threads, bool release_inputs) {
  std::mutex mu;
  double total = 0;
  PageReleaser releaser(release_inputs, {x});
  run_chunked(
      n, size_t(1) << 20, threads, releaser, [&](size_t) { return std::vector<float>(kTile); },
      [&](std::vector<float>& s, size_t b0, size_t e0) {
        double acc = 0;
        for (size_t t0 = b0; t0 < e0; t0 += kTile) {
          const size_t m = std::min(kTile, e0 - t0);
          load_tile(x, t0, s.data(), m);
          const float* v = s.data();
          float part = 0;
#pragma omp simd reduction(+ : part)
          for (size_t i = 0; i < m; ++i) part += v[i] * v[i];
          acc += part;
        }
        std::lock_guard<std::mutex> lock(mu);
        total += acc;
      });
  return total;
}

void stream_copy(const uint8_t* src, uint8_t* dst, size_t n, int threads) {
  // Copies in 16 KiB pieces (regular cached stores, like the merge's tile stores).
  PageReleaser none(false, {});
  run_chunked(
      n, size_t(8) << 20, threads, none, [](size_t) { return 0; },
      [&](int, size_t b0, size_t e0) {
        constexpr size_t kPiece = 16384;
        for (size_t p = b0; p < e0; p += kPiece) std::memcpy(dst + p, src + p, std::min(kPiece, e0 - p));
      });
}

void stream_file_copy(const std::vector<TensorIn>& inputs, size_t n, int fd, uint64_t off, int threads) {
  if (inputs.empty()) throw DfError("InvalidArgument", "file copy probe: at least one input is needed");
  std::vector<TensorIn> live = inputs;
  std::vector<TensorIn*> targets;
  for (TensorIn& t : live) targets.push_back(&t);
  const size_t es = dtype_size(live[0].dtype);
  const size_t chunk = size_t(1) << 20;
  InputStage stage(targets, n, chunk, "", false);
  PageReleaser releaser(!stage.active(), inputs);
  std::mutex file_lock;
  run_chunked(
      n, chunk, threads, releaser, &stage,
      [&](size_t share_max) { return std::make_unique<DeferredWriter>(fd, file_lock, share_max * es); },
      [&](std::unique_ptr<DeferredWriter>& w, size_t b0, size_t e0) {
        // What a merge does minus the arithmetic: every input read (staged), one
        // output written the way merge_pass writes it.
        std::memcpy(w->reserve((e0 - b0) * es), live[0].data + b0 * es, (e0 - b0) * es);
        w->commit(off + b0 * es, (e0 - b0) * es);
      },
      [&](std::unique_ptr<DeferredWriter>& w) { w->flush(); });
}

}  // namespace dfm
