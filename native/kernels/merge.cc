// CPU merge kernels and the chunked streaming driver (see merge.h).
#include "kernels/merge.h"
#include "io/file_write.h"

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
#include <mutex>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "io/mapped_file.h"
#include "kernels/merge_rng.h"
#include "kernels/merge_tiles.h"
#include "util/error.h"

namespace dfm {

// ===========================================================================
// Conversion of one tile between storage dtypes and f32 (one dtype switch per tile).

namespace {

constexpr size_t kTile = 1024;   // elements per tile: a kernel's buffers stay in L1
constexpr size_t kAlign = 256;   // threads' shares of a chunk start at multiples of this

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
    case Dtype::BF16: {
      uint8_t* __restrict o = dst;
#pragma omp simd
      for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, src + i, 4);
        const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // nearest, ties to even
        const uint32_t nan = (u >> 16) | 0x0040u;                          // quiet NaN, sign kept
        const uint16_t h = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
        std::memcpy(o + 2 * i, &h, 2);
      }
      return;
    }
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

// Streams [0, n) in chunks. In each chunk every thread gets one contiguous share
// [b, e) and calls work(state, b, e) on it; after the chunk, the finished input
// pages are released. `make_state(max_share)` builds each thread's scratch;
// finish(state) runs once per thread at the end (e.g. to fold partial results).
template <class MakeState, class Work, class Finish>
void run_chunked(size_t n, size_t chunk, int threads, PageReleaser& releaser, MakeState&& make_state, Work&& work,
                 Finish&& finish) {
  if (n == 0) return;
  chunk = std::max<size_t>(chunk, kAlign);
  threads = std::max(1, threads);
  if (n < 2 * kAlign * static_cast<size_t>(threads)) threads = 1;  // tiny tensors: no team
  Failure failure;
#pragma omp parallel num_threads(threads)
  {
    const size_t nt = static_cast<size_t>(omp_get_num_threads());
    const size_t tid = static_cast<size_t>(omp_get_thread_num());
    const size_t share_max = ((std::min(chunk, n) + nt - 1) / nt + kAlign - 1) / kAlign * kAlign;
    bool have_state = false;
    try {
      auto state = make_state(share_max);
      have_state = true;
      for (size_t c0 = 0; c0 < n; c0 += chunk) {
        const size_t c1 = std::min(n, c0 + chunk);
        const size_t share = ((c1 - c0 + nt - 1) / nt + kAlign - 1) / kAlign * kAlign;
        const size_t b = std::min(c1, c0 + tid * share);
        const size_t e = std::min(c1, b + share);
        if (b < e && !failure.failed()) {
          try {
            releaser.populate(b, e);
            work(state, b, e);
          } catch (...) {
            failure.capture();
          }
        }
#pragma omp barrier
        if (tid == 0 && !failure.failed()) releaser.upto(c1);
      }
      if (!failure.failed()) finish(state);
    } catch (...) {
      failure.capture();
      if (!have_state) {
        // make_state failed (out of memory): this thread takes no share, but still
        // meets the others at every barrier, so nobody deadlocks.
        for (size_t c0 = 0; c0 < n; c0 += chunk) {
#pragma omp barrier
        }
      }
    }
  }
  failure.rethrow();
}

template <class MakeState, class Work>
void run_chunked(size_t n, size_t chunk, int threads, PageReleaser& releaser, MakeState&& make_state, Work&& work) {
  run_chunked(n, chunk, threads, releaser, make_state, work, [](auto&) {});
}

// Per-thread f32 scratch.
struct Scratch {
  std::vector<float> buf;
  std::vector<uint8_t> stage;  // output bytes of this thread's share (file output)
};

struct Prepared : MergeConstants {
  std::vector<uint32_t> thresholds;  // ties
};

double weight_sum(const std::vector<float>& w) {
  double s = 0;
  for (float x : w) s += x;
  return s;
}

bool uses_base(MergeMethod m) { return m != MergeMethod::Linear && m != MergeMethod::Fisher; }

Prepared prepare(const MergeJob& j) {
  Prepared p;
  static_cast<MergeConstants&>(p) = merge_constants(j);
  if (j.method == MergeMethod::Ties) p.thresholds = ties_thresholds(j);
  return p;
}

constexpr int kMaxModels = 64;

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

// Computes output elements [i0, i0 + m) of a merge into `out` (f32). Scratch `s`
// holds kTile floats each for: base | x_0..x_{k-1} | f_0..f_{k-1} or d_0..d_{k-1} | tmp (2).
template <class S>
void merge_tile(const MergeJob& j, const Prepared& p, float* s, size_t i0, size_t m, float* out) {
  const int k = p.k;
  const float* w = j.weights.data();
  S b{};
  if (uses_base(j.method)) b = source<S>(j.base, i0, m, s);
  S xs[kMaxModels];
  float* ds[kMaxModels];
  for (int q = 0; q < k; ++q) {
    xs[q] = source<S>(j.models[q], i0, m, s + kTile * (1 + q));
    ds[q] = s + kTile * (1 + k + q);
  }
  float* tmp = s + kTile * (1 + 2 * k);
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
  }
}

using MergeTileFn = void (*)(const MergeJob&, const Prepared&, float*, size_t, size_t, float*);

// Inputs all BF16 or all F32 are read in place; any other mix is converted tile by tile.
MergeTileFn merge_tile_for(const MergeJob& j) {
  std::vector<TensorIn> used = j.models;
  if (uses_base(j.method)) used.push_back(j.base);
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

bool merge_uses_base(MergeMethod m) { return uses_base(m); }

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
    for (int m = 0; m < p.k; ++m) p.keys.push_back(dare_key(j.seed, j.tensor_id, static_cast<uint32_t>(m)));
    p.keep_thr = dare_keep_threshold(1.0 - j.density);
    p.keep_prob = static_cast<float>(j.density);
  }
  return p;
}

MergeMethod parse_merge_method(const std::string& name) {
  if (name == "linear") return MergeMethod::Linear;
  if (name == "task_arithmetic") return MergeMethod::TaskArithmetic;
  if (name == "ties") return MergeMethod::Ties;
  if (name == "dare_linear") return MergeMethod::DareLinear;
  if (name == "dare_ties") return MergeMethod::DareTies;
  if (name == "fisher") return MergeMethod::Fisher;
  if (name == "dfmerge") return MergeMethod::DfCombine;
  throw DfError("UnknownMethod", "unknown merge method \"" + name +
                                     "\" (expected linear, task_arithmetic, ties, dare_linear, dare_ties, fisher or dfmerge)");
}

const char* merge_method_name(MergeMethod m) {
  switch (m) {
    case MergeMethod::Linear: return "linear";
    case MergeMethod::TaskArithmetic: return "task_arithmetic";
    case MergeMethod::Ties: return "ties";
    case MergeMethod::DareLinear: return "dare_linear";
    case MergeMethod::DareTies: return "dare_ties";
    case MergeMethod::Fisher: return "fisher";
    case MergeMethod::DfCombine: return "dfmerge";
  }
  return "?";
}

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
  if (uses_base(j.method) && j.base.data == nullptr && j.n > 0) bad("a base model is needed");
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

std::vector<uint32_t> ties_thresholds(const MergeJob& j) {
  const size_t k = j.models.size();
  const uint64_t kk = static_cast<uint64_t>(std::llround(j.density * static_cast<double>(j.n)));
  std::vector<uint32_t> thr(k, 0);
  if (kk == 0) return std::vector<uint32_t>(k, 0xffffffffu);
  if (kk >= j.n) return thr;  // everything kept
  if (j.n <= (size_t(1) << 16)) {
    // Small tensors: select directly (std::nth_element) instead of clearing histograms.
    std::vector<float> b(j.n), x(j.n);
    std::vector<uint32_t> u(j.n);
    load_tile(j.base, 0, b.data(), j.n);
    for (size_t q = 0; q < k; ++q) {
      load_tile(j.models[q], 0, x.data(), j.n);
      for (size_t i = 0; i < j.n; ++i) {
        const float t = x[i] - b[i];
        std::memcpy(&u[i], &t, 4);
        u[i] &= 0x7fffffffu;
      }
      std::nth_element(u.begin(), u.begin() + static_cast<std::ptrdiff_t>(kk - 1), u.end(), std::greater<uint32_t>());
      thr[q] = u[kk - 1];
    }
    return thr;
  }
  std::vector<TensorIn> inputs = j.models;
  inputs.push_back(j.base);
  std::vector<uint64_t> total(k * 65536, 0);
  std::mutex fold_mutex;
  // Per thread and model, four interleaved 32-bit sub-histograms (counter
  // [bin][i mod 4], so runs of equal bins do not serialise on one counter and the
  // four share a cache line), folded into `total` at the end
  // (and after every share when a thread could see 2^32 elements).
  constexpr size_t kSub = 4;
  const bool fold_often = j.n >= (uint64_t(1) << 32);
  auto fold = [&](std::vector<uint32_t>& h) {
    std::lock_guard<std::mutex> lock(fold_mutex);
    for (size_t q = 0; q < k; ++q) {
      const uint32_t* src = h.data() + q * kSub * 65536;
      uint64_t* dst = total.data() + q * 65536;
      for (size_t v = 0; v < 65536; ++v) {
        for (size_t sub = 0; sub < kSub; ++sub) dst[v] += src[v * kSub + sub];
      }
    }
    std::fill(h.begin(), h.end(), 0u);
  };
  struct HistState {
    std::vector<float> b, x;
    std::vector<uint32_t> bits, hist;
  };

  // pass 0: histogram of the high 16 bits of |τ|; pass 1: of the low 16 bits
  // inside each model's chosen bin.
  std::vector<uint32_t> high(k, 0);
  std::vector<uint64_t> remaining(k, 0);
  for (int pass = 0; pass < 2; ++pass) {
    std::fill(total.begin(), total.end(), 0);
    PageReleaser releaser(j.release_inputs, inputs);
    run_chunked(
        j.n, j.chunk, j.threads, releaser,
        [&](size_t) {
          return HistState{std::vector<float>(kTile), std::vector<float>(kTile), std::vector<uint32_t>(kTile),
                           std::vector<uint32_t>(k * kSub * 65536, 0u)};
        },
        [&](HistState& st, size_t b0, size_t e0) {
          for (size_t t0 = b0; t0 < e0; t0 += kTile) {
            const size_t m = std::min(kTile, e0 - t0);
            load_tile(j.base, t0, st.b.data(), m);
            for (size_t q = 0; q < k; ++q) {
              load_tile(j.models[q], t0, st.x.data(), m);
              const float* __restrict bb = st.b.data();
              const float* __restrict xx = st.x.data();
              uint32_t* __restrict u = st.bits.data();
#pragma omp simd
              for (size_t i = 0; i < m; ++i) {
                const float t = xx[i] - bb[i];
                uint32_t v;
                std::memcpy(&v, &t, 4);
                u[i] = v & 0x7fffffffu;  // bits of |τ| in f32
              }
              uint32_t* h = st.hist.data() + q * kSub * 65536;
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
                const uint32_t hb = high[q];
                for (size_t i = 0; i < m; ++i) {
                  if ((u[i] >> 16) == hb) ++h[(u[i] & 0xffffu) * kSub + (i & (kSub - 1))];
                }
              }
            }
          }
          if (fold_often) fold(st.hist);
        },
        [&](HistState& st) { fold(st.hist); });
    for (size_t q = 0; q < k; ++q) {
      if (pass == 0) {
        high[q] = ties_select_high(total.data() + q * 65536, kk, &remaining[q]);
      } else {
        thr[q] = (high[q] << 16) | ties_select_low(total.data() + q * 65536, remaining[q]);
      }
    }
  }
  return thr;
}

void merge_tensor_cpu(const MergeJob& j) {
  validate_merge_job(j);
  const Prepared p = prepare(j);
  const int k = p.k;
  const size_t osz = dtype_size(j.out_dtype);
  std::vector<TensorIn> inputs = j.models;
  if (uses_base(j.method)) inputs.push_back(j.base);
  for (const TensorIn& f : j.fishers) inputs.push_back(f);
  PageReleaser releaser(j.release_inputs, inputs);
  const MergeTileFn tile = merge_tile_for(j);
  const size_t scratch_floats = kTile * (1 + 2 * static_cast<size_t>(k) + 3);
  run_chunked(
      j.n, j.chunk, j.threads, releaser,
      [&](size_t share_max) {
        Scratch s;
        s.buf.resize(scratch_floats);
        if (j.fd >= 0) s.stage.resize(share_max * osz);
        return s;
      },
      [&](Scratch& s, size_t b0, size_t e0) {
        float* out = s.buf.data() + kTile * (1 + 2 * static_cast<size_t>(k) + 2);
        uint8_t* dst = j.fd >= 0 ? s.stage.data() : j.out + b0 * osz;
        for (size_t t0 = b0; t0 < e0; t0 += kTile) {
          const size_t m = std::min(kTile, e0 - t0);
          tile(j, p, s.buf.data(), t0, m, out);
          store_tile(out, j.out_dtype, dst + (t0 - b0) * osz, m);
        }
        if (j.fd >= 0) pwrite_all(j.fd, s.stage.data(), (e0 - b0) * osz, j.fd_offset + b0 * osz);
      });
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

}  // namespace dfm
