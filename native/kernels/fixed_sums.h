// f64 sums over a tile in one fixed order, so a statistic does not depend on the
// thread count or the build: four lanes, lane t adding the elements i ≡ t (mod 4)
// of the longest prefix of whole groups of four, lane 0 then the remaining
// elements, and the result (l0 + l1) + (l2 + l3). Written with GCC/Clang vector
// types so that the four lanes are one SIMD register (the scalar form of the same
// order did not vectorise and was half of DELLA's mask pass).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

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

inline f64x4 masked(f64x4 v, i64x4 keep) { return reinterpret_cast<f64x4>(reinterpret_cast<i64x4>(v) & keep); }

inline double fold(const double* l) { return (l[0] + l[1]) + (l[2] + l[3]); }

}  // namespace fixed_sums_detail

// DELLA's L1 sums of a row: *all = Σ |x_i − b_i|, *kept = Σ over keep_i ≠ 0 of the same
// (keep holds 0 or 1; the difference in f32, its magnitude summed in f64).
inline void abs_diff_sums(const float* x, const float* b, const uint32_t* keep, size_t n, double* all, double* kept) {
  using namespace fixed_sums_detail;
  f64x4 sa = {0, 0, 0, 0}, sk = {0, 0, 0, 0};
  const i64x4 magnitude = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const f32x4 d = load4<f32x4>(x + i) - load4<f32x4>(b + i);
    const f64x4 a = masked(__builtin_convertvector(d, f64x4), magnitude);
    sa += a;
    const i64x4 on = -__builtin_convertvector(load4<u32x4>(keep + i), i64x4);  // 1 → all bits set
    sk += masked(a, on);
  }
  double la[4] = {sa[0], sa[1], sa[2], sa[3]}, lk[4] = {sk[0], sk[1], sk[2], sk[3]};
  for (; i < n; ++i) {
    const double a = std::fabs(static_cast<double>(x[i] - b[i]));
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
  f64x4 s = {0, 0, 0, 0};
  const u32x4 vthr = {thr, thr, thr, thr};
  const u32x4 nosign = {0x7fffffffu, 0x7fffffffu, 0x7fffffffu, 0x7fffffffu};
  const i32x4 every = {-1, -1, -1, -1};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const f64x4 t = __builtin_convertvector(load4<f32x4>(v + i), f64x4);
    const i32x4 sel = all ? every : reinterpret_cast<i32x4>((load4<u32x4>(key_of + i) & nosign) >= vthr);
    s += masked(t * t, __builtin_convertvector(sel, i64x4));  // −1 stays all bits set
  }
  double l[4] = {s[0], s[1], s[2], s[3]};
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
  f64x4 s = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s += __builtin_convertvector(load4<f32x4>(a + i), f64x4) * __builtin_convertvector(load4<f32x4>(c + i), f64x4);
  }
  double l[4] = {s[0], s[1], s[2], s[3]};
  for (; i < n; ++i) l[0] += static_cast<double>(a[i]) * static_cast<double>(c[i]);
  return fold(l);
}

}  // namespace dfm
