#include "util/float_buffer.h"

#include <sys/mman.h>

#include <string>

#include "util/error.h"

namespace dfm {

FloatBuffer::FloatBuffer(size_t n) : n_(n) {
  if (n > (SIZE_MAX / sizeof(float)) - 4096) throw DfError("OutOfMemory", "buffer of " + std::to_string(n) + " floats is too large");
  bytes_ = n == 0 ? 4096 : n * sizeof(float);
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw DfError("OutOfMemory", "cannot allocate " + std::to_string(bytes_ >> 20) + " MiB for a buffer of " +
                                     std::to_string(n) + " floats");
  }
  p_ = static_cast<float*>(p);
}

FloatBuffer::~FloatBuffer() {
  if (p_) munmap(p_, bytes_);
}

void FloatBuffer::zero() {
  // Anonymous private pages read back as zero after MADV_DONTNEED.
  if (madvise(p_, bytes_, MADV_DONTNEED) != 0) {
    for (size_t i = 0; i < n_; ++i) p_[i] = 0.0f;
  }
}

}  // namespace dfm
