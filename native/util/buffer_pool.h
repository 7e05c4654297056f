// Reused, 4 KiB-aligned, uninitialised buffers for the merge's per-tensor
// scratch (input staging, each thread's pending output). A fresh buffer per
// tensor costs a page fault and a cleared page per 4 KiB: 66 tensors of a
// 256 MB merge faulted and zeroed ~130 MB of output buffers alone
// (docs/design.md §11). The pool keeps returned buffers for the next request of
// the same size, bounded in bytes (the oldest freed first).
#pragma once
#include <cstddef>
#include <cstdint>

namespace dfm {

// A buffer of `bytes` (its contents undefined), from the pool when one of that
// size is there. Throws std::bad_alloc.
void* pool_take(size_t bytes);
// Returns a buffer pool_take gave (nullptr is ignored).
void pool_give(size_t bytes, void* p);

// One pooled buffer, returned to the pool when it goes.
class PooledBuffer {
 public:
  PooledBuffer() = default;
  explicit PooledBuffer(size_t bytes) : bytes_(bytes), p_(static_cast<uint8_t*>(pool_take(bytes))) {}
  ~PooledBuffer() { pool_give(bytes_, p_); }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  PooledBuffer(PooledBuffer&& o) noexcept : bytes_(o.bytes_), p_(o.p_) { o.p_ = nullptr; o.bytes_ = 0; }
  PooledBuffer& operator=(PooledBuffer&& o) noexcept {
    if (this != &o) {
      pool_give(bytes_, p_);
      bytes_ = o.bytes_;
      p_ = o.p_;
      o.p_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  uint8_t* data() const { return p_; }
  size_t size() const { return bytes_; }

 private:
  size_t bytes_ = 0;
  uint8_t* p_ = nullptr;
};

}  // namespace dfm
