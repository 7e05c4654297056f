#include "kernels/convert.h"

#include <algorithm>

namespace dfm {

namespace {
constexpr size_t kParallelMin = 1 << 16;
}

void to_f32(const void* src, Dtype d, float* dst, size_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  const long long nn = static_cast<long long>(n);
  if (d == Dtype::F32) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  if (d == Dtype::BF16) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (long long i = 0; i < nn; ++i) {
      uint16_t h;
      std::memcpy(&h, s + 2 * i, 2);
      dst[i] = bf16_to_f32(h);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (long long i = 0; i < nn; ++i) {
    uint16_t h;
    std::memcpy(&h, s + 2 * i, 2);
    dst[i] = f16_to_f32(h);
  }
}

void from_f32(const float* src, void* dst, Dtype d, size_t n) {
  uint8_t* o = static_cast<uint8_t*>(dst);
  const long long nn = static_cast<long long>(n);
  if (d == Dtype::F32) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  if (d == Dtype::BF16) {
    // in blocks of 4096 (a multiple of the vector step) so that threads share the work
    constexpr long long kBlock = 4096;
    const long long blocks = (nn + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (long long bi = 0; bi < blocks; ++bi) {
      const long long i = bi * kBlock;
      f32_to_bf16_span(src + i, o + 2 * i, static_cast<size_t>(std::min(kBlock, nn - i)));
    }
    return;
  }
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (long long i = 0; i < nn; ++i) {
    const uint16_t h = f32_to_f16(src[i]);
    std::memcpy(o + 2 * i, &h, 2);
  }
}

}  // namespace dfm
