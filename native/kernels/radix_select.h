// Selection of the r-th largest of a list of 32-bit keys held in memory (the
// candidates and samples of the merge's top-k selections, docs/design.md §11
// "Selections in one pass"), and the vectorised range filter it is built on.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dfm {

// Appends the u[i] with lo ≤ u[i] ≤ hi to dst from position c and returns the new
// count. dst must have room for c + m (groups of 16 store 16 lanes at c ≤ c0 + i,
// c0 the c passed in); dst == u with c = 0 filters in place.
// AVX-512: a compress in registers and a full store (vpcompressd straight to
// memory is slow on some cores); else branchless.
size_t collect_in_range(const uint32_t* u, size_t m, uint32_t lo, uint32_t hi, uint32_t* dst, size_t c);
// The same, also adding to *above the number of keys greater than hi (one read
// of u for both: the selection pass of kth_largest_keys).
size_t collect_in_range_count_above(const uint32_t* u, size_t m, uint32_t lo, uint32_t hi, uint32_t* dst, size_t c,
                                    uint64_t* above);

// The bits in which the keys v[0, n) differ (their OR xor their AND); *common
// gets their AND, which holds every key's value of each bit outside the
// returned mask. Radix passes skip the digits no key differs in.
template <class T>
inline T differing_bits(const T* v, size_t n, T* common) {
  T any = 0, every = static_cast<T>(~T(0));
#pragma omp simd reduction(| : any) reduction(& : every)
  for (size_t i = 0; i < n; ++i) {
    any |= v[i];
    every &= v[i];
  }
  *common = every;
  return any ^ every;
}

// The r-th largest (0-based, r < n) of v[0, n): the value std::nth_element with
// std::greater would put at v[r], found by a most-significant-digit radix
// selection (a histogram of the 11 key bits below those every key shares, the
// keys of the bucket holding rank r moved to the front of v, repeated on the
// bits below). v's contents are overwritten, as nth_element reorders them.
// `hist` is working memory: nothing is allocated once it holds kSelectHistogram
// entries (so the selection can run where nothing may throw). Lists of a few
// thousand keys or fewer go to std::nth_element.
constexpr size_t kSelectHistogram = size_t(4) << 11;
uint32_t kth_largest_u32(uint32_t* v, size_t n, size_t r, std::vector<uint32_t>& hist);

}  // namespace dfm
