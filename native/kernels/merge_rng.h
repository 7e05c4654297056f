// The counter-based random numbers behind DARE's drops, shared by the CPU kernels
// (merge.cc), the CUDA kernels (merge.cu) and mirrored bit for bit by the
// TypeScript reference (test/merge/reference.ts). Whether element i of model k's
// task vector is kept depends only on (seed, tensor id, k, i): not on the thread
// count, the chunk size, or the device.
//
//   key   = splitmix64 chain over (seed, tensor id, k)        (64 bits, once per model)
//   h(i)  = mix32(mix32(lo32(i) ^ lo32(key)) ^ (hi32(i) + hi32(key)))
//   u(i)  = (h(i) >> 8) / 2^24                                 (uniform on [0, 1))
//   keep  ⇔ u(i) ≥ p  ⇔ (h(i) >> 8) ≥ ceil(p · 2^24)            (p = drop probability)
//
// mix32 is a bijective 32-bit finaliser (Wellons' "lowbias32"), so for a fixed key
// and i < 2^32 the h(i) are a permutation of the 32-bit integers; 32-bit products
// keep it cheap in SIMD lanes and on GPUs.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DFM_HD __host__ __device__ __forceinline__
#else
#define DFM_HD inline
#endif

namespace dfm {

DFM_HD uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

DFM_HD uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

constexpr uint64_t kGolden64 = 0x9e3779b97f4a7c15ull;

// The per-model key of DARE's drop pattern.
DFM_HD uint64_t dare_key(uint64_t seed, uint64_t tensor_id, uint32_t model) {
  uint64_t key = splitmix64_mix(seed + kGolden64);
  key = splitmix64_mix(key ^ tensor_id);
  return splitmix64_mix(key + (static_cast<uint64_t>(model) + 1) * kGolden64);
}

// 24-bit uniform integer for element i under `key`.
DFM_HD uint32_t dare_u24(uint64_t key, uint64_t i) {
  const uint32_t a = mix32(static_cast<uint32_t>(i) ^ static_cast<uint32_t>(key));
  return mix32(a ^ (static_cast<uint32_t>(i >> 32) + static_cast<uint32_t>(key >> 32))) >> 8;
}

// Elements with dare_u24 ≥ this are kept: ceil(p · 2^24) for drop probability p.
inline uint32_t dare_keep_threshold(double p) {
  return static_cast<uint32_t>(std::ceil(p * 16777216.0));
}

}  // namespace dfm
