// DELLA's per-row keep decision without sorting most rows (della_keep.h).
#include "kernels/della_keep.h"
#include "kernels/radix_select.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <cstdlib>
#include <utility>

#if defined(__AVX512F__)
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
// GCC 12's AVX-512 intrinsics fill the unused source of their unmasked forms from
// a self-initialised variable, which -Wmaybe-uninitialized reports at each use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace dfm {

namespace {

// Exact 0-based rank of element e: keys below its key, plus equal keys before it,
// i.e. #{j < e : key_j ≤ key_e} + #{j > e : key_j < key_e}.
uint32_t exact_rank(const uint32_t* key, size_t n, size_t e) {
  const uint32_t ke = key[e];
#if defined(__AVX512F__)
  // 16 keys per compare, counted by a masked add into 16 lane counters (one
  // instruction per 16 keys besides the compare, where kmov + popcnt + add took three)
  const __m512i vk = _mm512_set1_epi32(static_cast<int>(ke));
  const __m512i one = _mm512_set1_epi32(1);
  __m512i acc = _mm512_setzero_si512();
  size_t j = 0;
  for (; j + 16 <= e; j += 16) {  // wholly before e: ≤
    acc = _mm512_mask_add_epi32(acc, _mm512_cmple_epu32_mask(_mm512_loadu_si512(key + j), vk), acc, one);
  }
  if (j < n) {  // the group holding e: ≤ before it, < from it on
    const __mmask16 valid = n - j >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m512i v = _mm512_maskz_loadu_epi32(valid, key + j);
    const __mmask16 before = static_cast<__mmask16>((1u << (e - j)) - 1);
    const __mmask16 hit = (before & _mm512_cmple_epu32_mask(v, vk)) | (~before & _mm512_cmplt_epu32_mask(v, vk));
    acc = _mm512_mask_add_epi32(acc, hit & valid, acc, one);
    j += 16;
  }
  for (; j + 16 <= n; j += 16) {  // after it: <
    acc = _mm512_mask_add_epi32(acc, _mm512_cmplt_epu32_mask(_mm512_loadu_si512(key + j), vk), acc, one);
  }
  if (j < n) {  // the last, partial group
    const __mmask16 valid = static_cast<__mmask16>((1u << (n - j)) - 1);
    acc = _mm512_mask_add_epi32(acc, _mm512_mask_cmplt_epu32_mask(valid, _mm512_maskz_loadu_epi32(valid, key + j), vk),
                                acc, one);
  }
  alignas(64) uint32_t lanes[16];  // (not _mm512_reduce_add_epi32: GCC 12's warns of an undefined source)
  _mm512_store_si512(lanes, acc);
  uint32_t rank = 0;
  for (uint32_t c : lanes) rank += c;
  return rank;
#else
  uint32_t below = 0, before = 0;
#pragma omp simd reduction(+ : before)
  for (size_t i = 0; i < e; ++i) before += key[i] == ke ? 1u : 0u;
#pragma omp simd reduction(+ : below)
  for (size_t i = 0; i < n; ++i) below += key[i] < ke ? 1u : 0u;
  return below + before;
#endif
}

// The bucketing's exponent levels, sample size and elements aimed at per bucket.
constexpr int kLevels = 32;
constexpr size_t kSample = 64;
constexpr uint64_t kPerBucket = 8;

// A non-zero key's level: its exponent's place among the 31 below the row's
// largest (31 for the largest), 0 for every exponent lower still.
inline uint32_t level_of(uint32_t key, int emax) {
  return static_cast<uint32_t>(std::max(0, static_cast<int>(key >> 23) - (emax - (kLevels - 1))));
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
  uint64_t every = 0;
  const uint64_t differ = differing_bits(kv, n, &every);
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
  t.at.resize(n);
  for (size_t r = 0; r < n; ++r) {
    const double rank_norm = n > 1 ? static_cast<double>(r) / static_cast<double>(n - 1) : 0.0;
    const double prob = (density - epsilon) + rank_norm * 2.0 * epsilon;
    t.at[r] = static_cast<uint32_t>(std::ceil(prob * 16777216.0));  // u < x ⇔ u < ceil(x) for integer u
  }
  return t;
}

void della_row_keep(const uint32_t* key, const uint32_t* u, const DellaTable& t, size_t n, uint32_t* keep,
                    DellaRowScratch& s) {
  const uint32_t* table = t.at.data();
  const uint32_t t_first = table[0], t_last = table[n - 1];
  if (t_first > t_last || n > 0xffffffffu) {  // not non-decreasing (ε < 0): no shortcut holds
    della_row_keep_sorted(key, u, t, n, keep, s);
    return;
  }
  // Buckets that keep the order, filled about evenly (docs/design.md §11): 0 for
  // |τ| = 0; then per binary exponent of |τ| (the 31 below the row's largest, the
  // rest together in one), its share of the row split by the top mantissa bits
  // into about count / kPerBucket buckets, the counts estimated from a sample.
  // (Splitting the top bits of the keys evenly put most of a row into a few
  // buckets: |τ| spans many octaves, and most of a row lies in a few of them.)
  uint32_t top = 0;
#pragma omp simd reduction(max : top)
  for (size_t i = 0; i < n; ++i) top = key[i] > top ? key[i] : top;
  const int emax = static_cast<int>(top >> 23);
  uint32_t level_count[kLevels] = {};
  const size_t stride = std::max<size_t>(1, n / kSample);
  for (size_t i = 0; i < n; i += stride) {
    const uint32_t kk = key[i];
    if (kk != 0) ++level_count[level_of(kk, emax)];
  }
  uint32_t off[kLevels], sh[kLevels];
  uint32_t nb = 1;  // bucket 0: the zeros
  for (int l = 0; l < kLevels; ++l) {
    // 2^bits buckets, the fewest with kPerBucket · 2^bits ≥ the level's estimated
    // count; level 0 holds several exponents: one bucket (a mantissa split would
    // break the order)
    const uint64_t est = static_cast<uint64_t>(level_count[l]) * stride;
    const uint64_t want = (est + kPerBucket - 1) / kPerBucket;  // buckets wanted
    const uint32_t bits = l == 0 || want <= 1 ? 0u : std::min(23u, static_cast<uint32_t>(64 - __builtin_clzll(want - 1)));
    off[l] = nb;
    sh[l] = 23 - bits;
    nb += uint32_t(1) << bits;
  }
  s.bucket.resize(n);
  s.count.assign(4 * size_t(nb), 0);
  s.start.resize(size_t(nb) + 1);
  s.cand.resize(n + 16);  // the AVX-512 listing writes up to 16 past the count
  s.open.resize(n);
  uint32_t* __restrict bucket = s.bucket.data();
  size_t i0 = 0;
#if defined(__AVX512F__)
  {  // the level's offset and shift looked up by a permute of the 32-entry tables
    const __m512i off_lo = _mm512_loadu_si512(off), off_hi = _mm512_loadu_si512(off + 16);
    const __m512i sh_lo = _mm512_loadu_si512(sh), sh_hi = _mm512_loadu_si512(sh + 16);
    const __m512i base = _mm512_set1_epi32(emax - (kLevels - 1));
    const __m512i zero = _mm512_setzero_si512();
    const __m512i mant = _mm512_set1_epi32(0x7fffff);
    for (; i0 + 16 <= n; i0 += 16) {
      const __m512i kv = _mm512_loadu_si512(key + i0);
      const __m512i l = _mm512_max_epi32(_mm512_sub_epi32(_mm512_srli_epi32(kv, 23), base), zero);
      const __m512i o = _mm512_permutex2var_epi32(off_lo, l, off_hi);
      const __m512i h = _mm512_permutex2var_epi32(sh_lo, l, sh_hi);
      const __m512i bk = _mm512_add_epi32(o, _mm512_srlv_epi32(_mm512_and_si512(kv, mant), h));
      _mm512_storeu_si512(bucket + i0, _mm512_maskz_mov_epi32(_mm512_test_epi32_mask(kv, kv), bk));
    }
  }
#endif
  for (size_t i = i0; i < n; ++i) {
    const uint32_t l = level_of(key[i], emax);
    bucket[i] = key[i] == 0 ? 0u : off[l] + ((key[i] & 0x7fffffu) >> sh[l]);
  }
  // Counted in four interleaved histograms: with one, neighbours in the same
  // bucket (most are, the keys' high bits being shared) made each increment wait
  // on the previous one's store.
  uint32_t* c0 = s.count.data();
  uint32_t* c1 = c0 + nb;
  uint32_t* c2 = c1 + nb;
  uint32_t* c3 = c2 + nb;
  size_t i4 = 0;
  for (; i4 + 4 <= n; i4 += 4) {
    ++c0[bucket[i4]];
    ++c1[bucket[i4 + 1]];
    ++c2[bucket[i4 + 2]];
    ++c3[bucket[i4 + 3]];
  }
  for (; i4 < n; ++i4) ++c0[bucket[i4]];
  // Each bucket's first rank: start[b] = Σ_{b' < b} count_b' (start[nb] = n).
  uint32_t* __restrict first_rank = s.start.data();
  {
    uint32_t sum = 0;
    for (size_t b = 0; b < nb; ++b) {
      first_rank[b] = sum;
      sum += c0[b] + c1[b] + c2[b] + c3[b];
    }
    first_rank[nb] = sum;
  }
  // u_i < table[0] keeps and u_i ≥ table[n − 1] drops whatever the rank (the table
  // is non-decreasing): one compare each, no table read. Only the others (a
  // fraction 2ε) are listed, in a vectorised, branch-free pass.
  uint32_t* __restrict cand = s.cand.data();
  size_t ncand = 0;
  size_t i = 0;
#if defined(__AVX512F__)
  {
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i step = _mm512_set1_epi32(16);
    const __m512i first = _mm512_set1_epi32(static_cast<int>(t_first));
    const __m512i span = _mm512_set1_epi32(static_cast<int>(t_last - t_first));
    __m512i pos = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; i + 16 <= n; i += 16) {
      const __m512i uv = _mm512_loadu_si512(u + i);
      const __m512i rel = _mm512_sub_epi32(uv, first);  // u − table[0], wrapping below it
      const __mmask16 kept = _mm512_cmplt_epu32_mask(uv, first);
      const __mmask16 mid = _mm512_cmplt_epu32_mask(rel, span);  // table[0] ≤ u < table[n − 1]
      _mm512_storeu_si512(keep + i, _mm512_maskz_mov_epi32(kept, one));
      // compressed in a register, then one full store (a compress straight to memory is microcoded on Zen 4)
      _mm512_storeu_si512(cand + ncand, _mm512_maskz_compress_epi32(mid, pos));
      ncand += static_cast<size_t>(__builtin_popcount(mid));
      pos = _mm512_add_epi32(pos, step);
    }
  }
#endif
  for (; i < n; ++i) {
    keep[i] = u[i] < t_first ? 1u : 0u;
    cand[ncand] = static_cast<uint32_t>(i);
    ncand += u[i] - t_first < t_last - t_first ? 1 : 0;
  }
  // The listed ones by their bucket: rank_i ∈ [lo, hi] = [start_b, start_{b+1} − 1],
  // so u_i < table[lo] keeps, u_i ≥ table[hi] drops, and in between the exact rank
  // decides (branch-free: the cases are random, branches on them mispredicted most
  // of the time); those positions listed as they are found. (b holds element e, so
  // start_b < start_{b+1} ≤ n: both reads lie in the table.)
  uint32_t* __restrict open_at = s.open.data();
  size_t open = 0;
  for (size_t c = 0; c < ncand; ++c) {
    const uint32_t e = cand[c];
    const uint32_t b = bucket[e];
    const uint32_t lo = table[first_rank[b]], hi = table[first_rank[b + 1] - 1];
    const uint32_t ue = u[e];
    keep[e] = ue < lo ? 1u : 0u;
    open_at[open] = e;
    open += (ue >= lo && ue < hi) ? 1 : 0;
  }
  if (open == 0) return;
  if (open > kMaxExact) {
    della_row_keep_sorted(key, u, t, n, keep, s);
    return;
  }
  for (size_t o = 0; o < open; ++o) {
    const size_t e = open_at[o];
    keep[e] = u[e] < table[exact_rank(key, n, e)] ? 1u : 0u;
  }
}

}  // namespace dfm
