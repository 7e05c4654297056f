// Element conversions between storage dtypes (F32, F16, BF16) and f32 compute.
// f32 -> bf16/f16 round to nearest, ties to even; NaN stays NaN (quiet, sign kept);
// values beyond the target's range become ±inf; f16 subnormals are exact.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

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
