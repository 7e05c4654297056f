#include "kernels/merge_staging.h"

#include <algorithm>
#include <utility>

#include "io/file_read.h"
#include "io/finite_scan.h"
#include "util/error.h"

namespace dfm {

namespace {
constexpr size_t kBufAlign = 4096;
std::atomic<bool> g_staging{true};

}  // namespace

void set_input_staging(bool on) { g_staging.store(on); }
bool input_staging() { return g_staging.load(); }

InputStage::InputStage(const std::vector<TensorIn*>& targets, size_t n, size_t chunk, std::string tensor,
                       bool check_finite)
    : n_(n), chunk_(std::min(chunk, n)), tensor_(std::move(tensor)), check_finite_(check_finite) {
  if (n == 0 || !input_staging()) return;
  for (TensorIn* t : targets) {
    if (t == nullptr || t->data == nullptr) continue;
    auto s = std::make_unique<Staged>();
    s->elem = dtype_size(t->dtype);
    if (!mapped_region(t->data, n * s->elem, &s->region)) continue;  // memory: read in place
    s->target = t;
    s->original = t->data;
    s->buf = PooledBuffer((chunk_ * s->elem + kBufAlign - 1) / kBufAlign * kBufAlign);
    sequential_hint(s->region.fd);
    staged_.push_back(std::move(s));
  }
}

InputStage::~InputStage() {
  for (auto& s : staged_) s->target->data = s->original;
}

void InputStage::begin_chunk(size_t c0, size_t c1) {
  c0_ = c0;
  for (auto& s : staged_) {
    // data + i·size is buf + (i − c0)·size for the chunk's elements i (integer
    // arithmetic: the pointer itself is never dereferenced outside the buffer).
    s->target->data = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(s->buf.data()) - c0 * s->elem);
    // 16 MiB ahead in the file, whatever tensor lies there (file_read.h)
    readahead_window(s->region.fd, s->region.offset + static_cast<uint64_t>(c1) * s->elem,
                     static_cast<uint64_t>(c1 - c0) * s->elem);
  }
}

void InputStage::read(size_t b, size_t e) {
  if (e <= b || staged_.empty()) return;
  if (b < c0_ || e - c0_ > chunk_) throw DfError("InternalError", "input stage: read outside the current chunk", tensor_);
  for (auto& s : staged_) {
    uint8_t* dst = s->buf.data() + (b - c0_) * s->elem;
    pread_all(s->region.fd, dst, (e - b) * s->elem, s->region.offset + b * s->elem, s->region.path, tensor_);
    if (check_finite_) {
      const NonFinite nf = scan_non_finite_span(dst, e - b, s->target->dtype);
      if (nf.count > 0) {
        s->nonfinite.fetch_add(nf.count, std::memory_order_relaxed);
        const uint64_t at = b + nf.first;
        uint64_t cur = s->first.load(std::memory_order_relaxed);
        while (at < cur && !s->first.compare_exchange_weak(cur, at, std::memory_order_relaxed)) {
        }
      }
    }
  }
}

void throw_non_finite(const std::string& path, const std::string& tensor, uint64_t count, uint64_t first) {
  throw DfError("NonFinite",
                path + ": tensor \"" + tensor + "\" holds " + std::to_string(count) +
                    " NaN or infinite value(s) (first at element " + std::to_string(first) +
                    "); a model with them cannot be merged meaningfully",
                tensor);
}

void InputStage::finish() const {
  for (const auto& s : staged_) {
    const uint64_t count = s->nonfinite.load();
    if (count > 0) throw_non_finite(s->region.path, tensor_, count, s->first.load());
  }
}


}  // namespace dfm
