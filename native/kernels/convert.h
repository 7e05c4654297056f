// Element conversions between storage dtypes (F32, F16, BF16) and f32 compute.
// f32 -> bf16/f16 round to nearest, ties to even; NaN stays NaN (quiet, sign kept);
// values beyond the target's range become ±inf; f16 subnormals are exact.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace dfm {

enum class Dtype : int { F32 = 0, F16 = 1, BF16 = 2 };

inline size_t dtype_size(Dtype d) { return d == Dtype::F32 ? 4 : 2; }

inline float bits_to_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t f32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

// n values at src as bf16 at dst (unaligned is fine), each as f32_to_bf16 gives it.
// Where the CPU has AVX512-BF16, 32 at a time by VCVTNE2PS2BF16, which rounds to
// nearest even and quiets NaN as f32_to_bf16 does (compared over every f32 bit
// pattern) but flushes subnormal inputs to zero: a block holding one is converted
// by the scalar rule instead. Merge outputs: 0.21 -> 0.08 ns per element.
inline void f32_to_bf16_span(const float* src, uint8_t* dst, size_t n) {
  size_t i = 0;
#if defined(__AVX512BF16__)
  const __m512i exponent = _mm512_set1_epi32(0x7f800000), mantissa = _mm512_set1_epi32(0x007fffff);
  for (; i + 32 <= n; i += 32) {
    const __m512i a = _mm512_loadu_si512(src + i), b = _mm512_loadu_si512(src + i + 16);
    const __mmask16 sub_a = _mm512_testn_epi32_mask(a, exponent) & _mm512_test_epi32_mask(a, mantissa);
    const __mmask16 sub_b = _mm512_testn_epi32_mask(b, exponent) & _mm512_test_epi32_mask(b, mantissa);
    if ((sub_a | sub_b) != 0) {
      for (size_t t = i; t < i + 32; ++t) {
        const uint16_t h = f32_to_bf16(src[t]);
        std::memcpy(dst + 2 * t, &h, 2);
      }
      continue;
    }
    const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_castsi512_ps(b), _mm512_castsi512_ps(a));
    _mm512_storeu_si512(dst + 2 * i, (__m512i)h);
  }
#endif
#pragma omp simd
  for (size_t t = i; t < n; ++t) {
    const uint16_t h = f32_to_bf16(src[t]);
    std::memcpy(dst + 2 * t, &h, 2);
  }
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    // zero or subnormal: man * 2^-24, exact in f32
    const float mag = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -mag : mag;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (man << 13));  // inf / NaN
  return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (a < 0x38800000u) {
    // result is subnormal or zero: value / 2^-24, rounded to nearest even
    if (a < 0x33000000u) return sign;  // < 2^-25: rounds to zero
    const uint32_t e = a >> 23;
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24 for e in [102, 112]
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = a - 0x38000000u;  // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
}

// Loads element i of a storage buffer as f32.
inline float load_f32(const void* p, Dtype d, size_t i) {
  switch (d) {
    case Dtype::F32: { float f; std::memcpy(&f, static_cast<const uint8_t*>(p) + 4 * i, 4); return f; }
    case Dtype::F16: { uint16_t h; std::memcpy(&h, static_cast<const uint8_t*>(p) + 2 * i, 2); return f16_to_f32(h); }
    default: { uint16_t h; std::memcpy(&h, static_cast<const uint8_t*>(p) + 2 * i, 2); return bf16_to_f32(h); }
  }
}

// Bulk conversions over n elements (multithreaded for large n). Unaligned
// pointers are fine.
void to_f32(const void* src, Dtype src_dtype, float* dst, size_t n);
void from_f32(const float* src, void* dst, Dtype dst_dtype, size_t n);

}  // namespace dfm
