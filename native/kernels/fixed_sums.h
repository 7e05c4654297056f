// f64 sums over a tile in one fixed order, so a statistic does not depend on the
// thread count or the build: sixteen lanes, lane t adding the elements
// i ≡ t (mod 16) of the longest prefix of whole groups of sixteen; then four sums
// l_t = (lane t + lane t+4) + (lane t+8 + lane t+12), the remaining elements
// (fewer than 16) added in order to l_0, and the result (l_0 + l_1) + (l_2 + l_3).
// Written with GCC/Clang vector types, the sixteen lanes four registers of four,
// so that four independent chains of adds are in flight (one register's chain waited on each add's latency: a quarter of
// DELLA's mask pass; the scalar form of one order did not vectorise at all).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace dfm {
namespace fixed_sums_detail {

using f32x4 = float __attribute__((vector_size(16)));
using u32x4 = uint32_t __attribute__((vector_size(16)));
using i32x4 = int32_t __attribute__((vector_size(16)));
using f64x4 = double __attribute__((vector_size(32)));
using i64x4 = int64_t __attribute__((vector_size(32)));

template <class V, class T>
inline V load4(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

// Four f32 to f64 and four u32 to i64, one instruction each where the build has
// AVX2 (GCC 12 splits __builtin_convertvector of a 128-bit vector into two
// halves and an insert: half of the instructions of DELLA's L1 sums).
inline f64x4 widen(f32x4 v) {
#if defined(__AVX2__)
  return (f64x4)_mm256_cvtps_pd((__m128)v);
#else
  return __builtin_convertvector(v, f64x4);
#endif
}
inline i64x4 widen(u32x4 v) {
#if defined(__AVX2__)
  return (i64x4)_mm256_cvtepu32_epi64((__m128i)v);
#else
  return __builtin_convertvector(v, i64x4);
#endif
}
inline i64x4 widen(i32x4 v) {
#if defined(__AVX2__)
  return (i64x4)_mm256_cvtepi32_epi64((__m128i)v);
#else
  return __builtin_convertvector(v, i64x4);
#endif
}

inline f64x4 masked(f64x4 v, i64x4 keep) { return reinterpret_cast<f64x4>(reinterpret_cast<i64x4>(v) & keep); }

inline double fold(const double* l) { return (l[0] + l[1]) + (l[2] + l[3]); }

// The sixteen lanes (four registers) to the four of the remainder loop.
inline void fold16(const f64x4* s, double* l) {
  const f64x4 v = (s[0] + s[1]) + (s[2] + s[3]);
  for (int t = 0; t < 4; ++t) l[t] = v[t];
}

}  // namespace fixed_sums_detail

// DELLA's L1 sums of a row: *all = Σ |τ_i|, *kept = Σ over keep_i ≠ 0 of the same,
// from the keys |τ_i| as f32 bit patterns (τ = x − b in f32, as the keys are
// formed; the magnitudes summed in f64). keep holds 0 or 1.
inline void abs_key_sums(const uint32_t* key, const uint32_t* keep, size_t n, double* all, double* kept) {
  using namespace fixed_sums_detail;
  f64x4 sa[4] = {}, sk[4] = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int r = 0; r < 4; ++r) {
      const size_t j = i + 4 * static_cast<size_t>(r);
      const f64x4 a = widen(reinterpret_cast<f32x4>(load4<u32x4>(key + j)));
      sa[r] += a;
      const i64x4 on = -widen(load4<u32x4>(keep + j));  // 1 → all bits set
      sk[r] += masked(a, on);
    }
  }
  double la[4], lk[4];
  fold16(sa, la);
  fold16(sk, lk);
  for (; i < n; ++i) {
    float f;
    std::memcpy(&f, key + i, 4);
    const double a = static_cast<double>(f);
    la[0] += a;
    lk[0] += keep[i] ? a : 0.0;
  }
  *all = fold(la);
  *kept = fold(lk);
}

// SCE's Σ v_i² (v_i squared in f64) over the elements whose key (the f32 bits of
// `key_of` without the sign) is ≥ thr; every element when `all` is set.
inline double selected_square_sum(const float* v, const float* key_of, uint32_t thr, bool all, size_t n) {
  using namespace fixed_sums_detail;
  f64x4 s[4] = {};
  const u32x4 vthr = {thr, thr, thr, thr};
  const u32x4 nosign = {0x7fffffffu, 0x7fffffffu, 0x7fffffffu, 0x7fffffffu};
  const i32x4 every = {-1, -1, -1, -1};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int r = 0; r < 4; ++r) {
      const size_t j = i + 4 * static_cast<size_t>(r);
      const f64x4 t = widen(load4<f32x4>(v + j));
      const i32x4 sel = all ? every : reinterpret_cast<i32x4>((load4<u32x4>(key_of + j) & nosign) >= vthr);
      s[r] += masked(t * t, widen(sel));  // −1 stays all bits set
    }
  }
  double l[4];
  fold16(s, l);
  for (; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, key_of + i, 4);
    if (all || (bits & 0x7fffffffu) >= thr) l[0] += static_cast<double>(v[i]) * v[i];
  }
  return fold(l);
}

// Σ a_i·c_i, each product taken in f64 (the Gram matrices of the SLERP family,
// Karcher and model stock).
inline double dot_sum(const float* a, const float* c, size_t n) {
  using namespace fixed_sums_detail;
  f64x4 s[4] = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int r = 0; r < 4; ++r) {
      const size_t j = i + 4 * static_cast<size_t>(r);
      s[r] += widen(load4<f32x4>(a + j)) * widen(load4<f32x4>(c + j));
    }
  }
  double l[4];
  fold16(s, l);
  for (; i < n; ++i) l[0] += static_cast<double>(a[i]) * static_cast<double>(c[i]);
  return fold(l);
}

}  // namespace dfm
