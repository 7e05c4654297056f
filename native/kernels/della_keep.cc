// DELLA's per-row keep decision without sorting most rows (della_keep.h).
#include "kernels/della_keep.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace dfm {

namespace {

// Exact 0-based rank of element e: keys below its key, plus equal keys before it.
uint32_t exact_rank(const uint32_t* key, size_t n, size_t e) {
  const uint32_t ke = key[e];
  uint32_t below = 0, before = 0;
  size_t j = 0;
#if defined(__AVX512F__)
  {  // 16 keys per compare (the compiler's own loop below keeps to 8)
    const __m512i vk = _mm512_set1_epi32(static_cast<int>(ke));
    for (; j + 16 <= e; j += 16) {  // before e: keys below, or equal
      const __m512i v = _mm512_loadu_si512(key + j);
      below += static_cast<uint32_t>(__builtin_popcount(_mm512_cmplt_epu32_mask(v, vk)));
      before += static_cast<uint32_t>(__builtin_popcount(_mm512_cmpeq_epu32_mask(v, vk)));
    }
    for (; j < e; ++j) {
      below += key[j] < ke ? 1u : 0u;
      before += key[j] == ke ? 1u : 0u;
    }
    for (; j + 16 <= n; j += 16) {  // from e on: keys below
      below += static_cast<uint32_t>(__builtin_popcount(_mm512_cmplt_epu32_mask(_mm512_loadu_si512(key + j), vk)));
    }
  }
#else
#pragma omp simd reduction(+ : before)
  for (size_t i = 0; i < e; ++i) before += key[i] == ke ? 1u : 0u;
#endif
#pragma omp simd reduction(+ : below)
  for (size_t i = j; i < n; ++i) below += key[i] < ke ? 1u : 0u;
  return below + before;
}

// Rows with more exact ranks to count than this are sorted instead: counting one
// rank reads the row once (vectorised), a radix sort reads and writes it about
// eight times (scalar).
constexpr size_t kMaxExact = 24;

// Stable LSD radix sort of (key << 32 | position) pairs by key, ascending, so
// equal keys stay in position order: four passes of 8 bits, a pass skipped when
// every key has the same digit (the exponent byte of |τ| often is). `kv` and
// `tmp` hold n pairs; the sorted pairs end in `kv`.
// Each pass scatters four quarters of the input at once, each with its own
// offsets (quarter p's entries of a digit follow those of quarters < p, so the
// order stays stable): one running offset array made every element wait on the
// previous one's store whenever neighbours share a digit, as the high digits of
// |τ| mostly do (that wait was most of DELLA's ranking time).
void radix_sort_pairs(uint64_t* kv, uint64_t* tmp, size_t n) {
  constexpr size_t kParts = 4;  // the offsets and the scatter below are written out for four
  size_t cut[kParts + 1];
  for (size_t p = 0; p <= kParts; ++p) cut[p] = n * p / kParts;
  const size_t len = cut[1] - cut[0];  // the shortest quarter (the cuts round down)
  // Digits every key shares: those bits equal in the AND and the OR of all keys.
  uint64_t any = 0, every = ~uint64_t(0);
#pragma omp simd reduction(| : any) reduction(& : every)
  for (size_t i = 0; i < n; ++i) {
    any |= kv[i];
    every &= kv[i];
  }
  const uint64_t differ = any ^ every;
  uint64_t* src = kv;
  uint64_t* dst = tmp;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 32 + 8 * pass;
    if (((differ >> shift) & 0xff) == 0) continue;  // one digit for all: order unchanged
    const uint64_t* s0 = src + cut[0];  // the quarters of the current order
    const uint64_t* s1 = src + cut[1];
    const uint64_t* s2 = src + cut[2];
    const uint64_t* s3 = src + cut[3];
    // this pass's digit counts per quarter, then their offsets
    uint32_t h[kParts][256] = {};
    for (size_t i = 0; i < len; ++i) {
      ++h[0][(s0[i] >> shift) & 0xff];
      ++h[1][(s1[i] >> shift) & 0xff];
      ++h[2][(s2[i] >> shift) & 0xff];
      ++h[3][(s3[i] >> shift) & 0xff];
    }
    for (size_t p = 0; p < kParts; ++p) {
      for (size_t i = cut[p] + len; i < cut[p + 1]; ++i) ++h[p][(src[i] >> shift) & 0xff];
    }
    // offsets: digit d starts after every smaller digit (one running sum over the
    // 256 digit totals), quarter p's entries after those of quarters < p (per
    // digit, independent: vectorised)
    uint32_t start[256];
    {
      uint32_t tot[256];
#pragma omp simd
      for (int d = 0; d < 256; ++d) tot[d] = h[0][d] + h[1][d] + h[2][d] + h[3][d];
      uint32_t sum = 0;
      for (int d = 0; d < 256; ++d) {
        start[d] = sum;
        sum += tot[d];
      }
    }
#pragma omp simd
    for (int d = 0; d < 256; ++d) {
      const uint32_t c0 = h[0][d], c1 = h[1][d], c2 = h[2][d];
      h[0][d] = start[d];
      h[1][d] = start[d] + c0;
      h[2][d] = start[d] + c0 + c1;
      h[3][d] = start[d] + c0 + c1 + c2;
    }
    uint32_t* o0 = h[0];
    uint32_t* o1 = h[1];
    uint32_t* o2 = h[2];
    uint32_t* o3 = h[3];
    for (size_t i = 0; i < len; ++i) {
      const uint64_t a = s0[i], b = s1[i], c = s2[i], e = s3[i];
      dst[o0[(a >> shift) & 0xff]++] = a;
      dst[o1[(b >> shift) & 0xff]++] = b;
      dst[o2[(c >> shift) & 0xff]++] = c;
      dst[o3[(e >> shift) & 0xff]++] = e;
    }
    for (size_t p = 0; p < kParts; ++p) {
      for (size_t i = cut[p] + len; i < cut[p + 1]; ++i) dst[h[p][(src[i] >> shift) & 0xff]++] = src[i];
    }
    std::swap(src, dst);
  }
  if (src != kv) std::memcpy(kv, src, n * sizeof(uint64_t));
}

// The same decision by a full sort (rows with too many exact ranks to count, ε < 0).
void della_row_keep_sorted(const uint32_t* key, const uint32_t* u, const DellaTable& t, size_t n, uint32_t* keep,
                           DellaRowScratch& s) {
  const uint32_t* table = t.at.data();
  if (n <= 0xffffffffu) {
    s.kv.resize(n);
    s.tmp.resize(n);
    for (size_t i = 0; i < n; ++i) s.kv[i] = (static_cast<uint64_t>(key[i]) << 32) | i;
    radix_sort_pairs(s.kv.data(), s.tmp.data(), n);
    for (size_t pos = 0; pos < n; ++pos) {
      const uint32_t i = static_cast<uint32_t>(s.kv[pos]);
      keep[i] = u[i] < table[pos] ? 1u : 0u;
    }
  } else {
    s.order.resize(n);
    for (size_t i = 0; i < n; ++i) s.order[i] = static_cast<uint32_t>(i);
    std::stable_sort(s.order.begin(), s.order.end(), [&](uint32_t a, uint32_t c) { return key[a] < key[c]; });
    for (size_t pos = 0; pos < n; ++pos) keep[s.order[pos]] = u[s.order[pos]] < table[pos] ? 1u : 0u;
  }
}

}  // namespace

DellaTable della_table(size_t n, double density, double epsilon) {
  DellaTable t;
  t.at.resize(n + 1);
  t.before.resize(n + 1);
  for (size_t r = 0; r < n; ++r) {
    const double rank_norm = n > 1 ? static_cast<double>(r) / static_cast<double>(n - 1) : 0.0;
    const double prob = (density - epsilon) + rank_norm * 2.0 * epsilon;
    t.at[r] = static_cast<uint32_t>(std::ceil(prob * 16777216.0));  // u < x ⇔ u < ceil(x) for integer u
  }
  t.at[n] = t.at[n - 1];
  t.before[0] = t.at[0];
  for (size_t r = 1; r <= n; ++r) t.before[r] = t.at[r - 1];
  return t;
}

void della_row_keep(const uint32_t* key, const uint32_t* u, const DellaTable& t, size_t n, uint32_t* keep,
                    DellaRowScratch& s) {
  const uint32_t* table = t.at.data();
  const uint32_t* before = t.before.data();
  const uint32_t t_first = table[0], t_last = table[n - 1];
  if (t_first > t_last || n > 0xffffffffu) {  // not non-decreasing (ε < 0): no shortcut holds
    della_row_keep_sorted(key, u, t, n, keep, s);
    return;
  }
  uint32_t any = 0, every = ~0u;  // over the non-zero keys
#pragma omp simd reduction(| : any) reduction(& : every)
  for (size_t i = 0; i < n; ++i) {
    any |= key[i];
    every &= key[i] != 0 ? key[i] : ~0u;
  }
  // Buckets that keep the order: 0 for |τ| = 0, then the top `w` of the bits in
  // which the non-zero keys differ (the bits above those are common to all).
  const uint32_t differ = any == 0 ? 0 : any ^ every;
  const int bits = differ == 0 ? 0 : 32 - __builtin_clz(differ);
  int w = 1;
  while (w < 13 && (size_t(1) << w) < n / 2) ++w;  // about two elements per bucket
  const uint32_t shift = static_cast<uint32_t>(std::max(0, bits - w));
  const uint32_t mask = (uint32_t(1) << w) - 1;
  const size_t nb = (size_t(1) << w) + 1;
  s.bucket.resize(n);
  s.count.assign(nb, 0);
  s.t_lo.resize(nb);
  s.t_hi.resize(nb);
  uint32_t* __restrict bucket = s.bucket.data();
#pragma omp simd
  for (size_t i = 0; i < n; ++i) bucket[i] = (key[i] != 0 ? 1u : 0u) * (1u + ((key[i] >> shift) & mask));
  uint32_t* count = s.count.data();
  for (size_t i = 0; i < n; ++i) ++count[bucket[i]];
  // rank_i ∈ [lo, hi] = [start_b, start_b + count_b − 1]: u_i < table[lo] keeps,
  // u_i ≥ table[hi] drops (this also settles every element whose u_i is outside
  // [table[0], table[n − 1])); in between the exact rank decides.
  uint32_t* __restrict t_lo = s.t_lo.data();
  uint32_t* __restrict t_hi = s.t_hi.data();
  uint32_t sum = 0;  // ≤ n: the tables' pads make both reads valid (an empty bucket's are never used)
  for (size_t b = 0; b < nb; ++b) {
    t_lo[b] = table[sum];
    sum += count[b];
    t_hi[b] = before[sum];
  }
  // Branch-free (the open cases are random: branches on them mispredicted most of the time).
  uint32_t open = 0;
#pragma omp simd reduction(+ : open)
  for (size_t i = 0; i < n; ++i) {
    const uint32_t lo = t_lo[bucket[i]], hi = t_hi[bucket[i]];
    const uint32_t undecided = (u[i] >= lo && u[i] < hi) ? 1u : 0u;
    keep[i] = u[i] < lo ? 1u : undecided << 1;  // 2: the exact rank decides
    open += undecided;
  }
  if (open == 0) return;
  if (open > kMaxExact) {
    della_row_keep_sorted(key, u, t, n, keep, s);
    return;
  }
  // the few 2s, found 16 at a time
  for (size_t g = 0; g < n; g += 16) {
    const size_t g1 = std::min(n, g + 16);
    uint32_t hits = 0;
#pragma omp simd reduction(| : hits)
    for (size_t i = g; i < g1; ++i) hits |= keep[i] >> 1;
    if (hits == 0) continue;
    for (size_t i = g; i < g1; ++i) {
      if (keep[i] == 2) keep[i] = u[i] < table[exact_rank(key, n, i)] ? 1u : 0u;
    }
  }
}

}  // namespace dfm
