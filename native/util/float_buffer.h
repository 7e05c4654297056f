// A large f32 buffer in native memory (RAII over an anonymous mapping): the
// DF-Merge accumulators S and W, which may hold more than 2^32 values and must
// not live in the V8 heap. Pages are zero until written and are only resident
// once touched; zero() returns them to the kernel (MADV_DONTNEED), so a
// cleared buffer costs no memory until it is written again.
#pragma once
#include <cstddef>

namespace dfm {

class FloatBuffer {
 public:
  explicit FloatBuffer(size_t n);  // n zeros; throws DfError("OutOfMemory") when it cannot be mapped
  ~FloatBuffer();
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;

  float* data() { return p_; }
  const float* data() const { return p_; }
  size_t size() const { return n_; }
  void zero();

 private:
  float* p_ = nullptr;
  size_t n_ = 0;
  size_t bytes_ = 0;
};

}  // namespace dfm
