// Radix selection of the r-th largest key (radix_select.h).
#include "kernels/radix_select.h"

#include <algorithm>
#include <functional>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace dfm {

size_t collect_in_range(const uint32_t* u, size_t m, uint32_t lo, uint32_t hi, uint32_t* dst, size_t c) {
  size_t i = 0;
#if defined(__AVX512F__)
  const __m512i vlo = _mm512_set1_epi32(static_cast<int>(lo)), vhi = _mm512_set1_epi32(static_cast<int>(hi));
  for (; i + 16 <= m; i += 16) {
    const __m512i v = _mm512_loadu_si512(u + i);
    const __mmask16 in = _mm512_cmpge_epu32_mask(v, vlo) & _mm512_cmple_epu32_mask(v, vhi);
    // no branch on `in`: bf16 ties put a key of the bracket in about half of the
    // groups, so a skip on empty groups mispredicted that often
    _mm512_storeu_si512(dst + c, _mm512_maskz_compress_epi32(in, v));
    c += static_cast<size_t>(__builtin_popcount(in));
  }
#endif
  for (; i < m; ++i) {
    dst[c] = u[i];
    c += (u[i] >= lo && u[i] <= hi) ? 1u : 0u;
  }
  return c;
}

size_t collect_in_range_count_above(const uint32_t* u, size_t m, uint32_t lo, uint32_t hi, uint32_t* dst, size_t c,
                                    uint64_t* above) {
  size_t i = 0;
  uint64_t up = 0;
#if defined(__AVX512F__)
  const __m512i vlo = _mm512_set1_epi32(static_cast<int>(lo)), vhi = _mm512_set1_epi32(static_cast<int>(hi));
  for (; i + 16 <= m; i += 16) {
    const __m512i v = _mm512_loadu_si512(u + i);
    const __mmask16 over = _mm512_cmpgt_epu32_mask(v, vhi);
    const __mmask16 in = _mm512_cmpge_epu32_mask(v, vlo) & static_cast<__mmask16>(~over);
    _mm512_storeu_si512(dst + c, _mm512_maskz_compress_epi32(in, v));  // (no branch: see collect_in_range)
    c += static_cast<size_t>(__builtin_popcount(in));
    up += static_cast<uint64_t>(__builtin_popcount(over));
  }
#endif
  for (; i < m; ++i) {
    dst[c] = u[i];
    c += (u[i] >= lo && u[i] <= hi) ? 1u : 0u;
    up += u[i] > hi ? 1u : 0u;
  }
  *above += up;
  return c;
}

namespace {

constexpr int kDigitBits = 11;     // 2048 buckets per round: four interleaved histograms fit L1
constexpr size_t kSmall = 4096;    // lists this short are left to std::nth_element
static_assert(kSelectHistogram == (size_t(4) << kDigitBits), "radix_select.h's histogram size");

}  // namespace

uint32_t kth_largest_u32(uint32_t* v, size_t n, size_t r, std::vector<uint32_t>& hist) {
  for (;;) {
    if (n <= kSmall) {
      std::nth_element(v, v + r, v + n, std::greater<uint32_t>());
      return v[r];
    }
    // The bits every key shares need no round: the digit is taken just below them.
    uint32_t every = 0;
    const uint32_t differ = differing_bits(v, n, &every);
    if (differ == 0) return v[0];  // every key equal
    const int top = 31 - __builtin_clz(differ);
    const int width = std::min(kDigitBits, top + 1);
    const int shift = top + 1 - width;
    const size_t nd = size_t(1) << width;
    const uint32_t dmask = static_cast<uint32_t>(nd - 1);
    // Four interleaved histograms: neighbours sharing a digit (most do, in a
    // bracket of close keys) would otherwise wait on each other's increments.
    hist.assign(4 * nd, 0);
    uint32_t* h0 = hist.data();
    uint32_t* h1 = h0 + nd;
    uint32_t* h2 = h1 + nd;
    uint32_t* h3 = h2 + nd;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      ++h0[(v[i] >> shift) & dmask];
      ++h1[(v[i + 1] >> shift) & dmask];
      ++h2[(v[i + 2] >> shift) & dmask];
      ++h3[(v[i + 3] >> shift) & dmask];
    }
    for (; i < n; ++i) ++h0[(v[i] >> shift) & dmask];
    // the digit holding rank r, counting from the largest
    size_t above = 0, d = nd;
    while (d > 0) {
      --d;
      const size_t count = static_cast<size_t>(h0[d]) + h1[d] + h2[d] + h3[d];
      if (above + count > r) break;
      above += count;
    }
    const uint64_t high = top == 31 ? 0 : (every & ~((uint64_t(2) << top) - 1));  // the shared bits above the digit
    const uint32_t lo = static_cast<uint32_t>(high | (uint64_t(d) << shift));
    if (shift == 0) return lo;  // the bucket is one value
    const uint32_t hi = static_cast<uint32_t>(lo | ((uint64_t(1) << shift) - 1));
    r -= above;
    // The bucket's keys to the front, in place: the filter writes at or before
    // where it has read (16 lanes at c ≤ i, inside [0, n)).
    n = collect_in_range(v, n, lo, hi, v, 0);
  }
}

}  // namespace dfm
