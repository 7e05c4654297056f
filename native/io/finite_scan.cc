#include "io/finite_scan.h"

#include <algorithm>
#include <cstring>

#include "io/mapped_file.h"

namespace dfm {

namespace {
template <typename Word>
NonFinite scan(const uint8_t* p, size_t n, Word exponent_mask) {
  // Whether there is one at all first: the largest (w & mask) is the mask only
  // then (a max reduction in the word's own width, half the work of the count:
  // merges scan every input they read, 0.22 -> 0.12 ns per bf16 element);
  // then a branch-free count (vectorised: 32-bit counts per block of 2^16) and
  // the position.
  NonFinite r;
  Word largest = 0;
#pragma omp simd reduction(max : largest)
  for (size_t i = 0; i < n; ++i) {
    Word w;
    std::memcpy(&w, p + i * sizeof(Word), sizeof(Word));
    const Word v = static_cast<Word>(w & exponent_mask);
    largest = v > largest ? v : largest;
  }
  if (largest != exponent_mask) return r;
  uint64_t count = 0;
  for (size_t b0 = 0; b0 < n; b0 += 65536) {
    const size_t b1 = std::min(n, b0 + 65536);
    uint32_t c = 0;
#pragma omp simd reduction(+ : c)
    for (size_t i = b0; i < b1; ++i) {
      Word w;
      std::memcpy(&w, p + i * sizeof(Word), sizeof(Word));
      c += static_cast<uint32_t>((w & exponent_mask) == exponent_mask);
    }
    count += c;
  }
  r.count = count;
  if (count == 0) return r;
  for (size_t i = 0; i < n; ++i) {
    Word w;
    std::memcpy(&w, p + i * sizeof(Word), sizeof(Word));
    if ((w & exponent_mask) == exponent_mask) {
      r.first = i;
      break;
    }
  }
  return r;
}
}  // namespace

namespace {
NonFinite scan_chunk(const uint8_t* p, size_t n, Dtype d) {
  switch (d) {
    case Dtype::F32: return scan<uint32_t>(p, n, 0x7f800000u);
    case Dtype::BF16: return scan<uint16_t>(p, n, static_cast<uint16_t>(0x7f80u));
    case Dtype::F16: return scan<uint16_t>(p, n, static_cast<uint16_t>(0x7c00u));
  }
  return {};
}
}  // namespace

NonFinite scan_non_finite_span(const uint8_t* p, size_t n, Dtype d) { return scan_chunk(p, n, d); }

NonFinite scan_non_finite(const uint8_t* p, size_t n, Dtype d) {
  // In chunks, dropping each chunk's mapped pages afterwards, so that scanning a
  // tensor of a model larger than RAM keeps resident memory at one chunk.
  const size_t width = dtype_size(d);
  const size_t chunk = (size_t{16} << 20) / width;
  NonFinite r;
  for (size_t i = 0; i < n; i += chunk) {
    const size_t m = std::min(chunk, n - i);
    const NonFinite c = scan_chunk(p + i * width, m, d);
    if (c.count > 0 && r.count == 0) r.first = i + c.first;
    r.count += c.count;
    release_if_mapped(p + i * width, m * width);
  }
  return r;
}

}  // namespace dfm
