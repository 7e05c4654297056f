// Weight access for the runtime (docs/design.md §5). A weight is a
// view over one tensor in its stored dtype (usually a zero-copy mmap of a
// safetensors file), optionally with a second tensor and a coefficient:
//
//   θ[j] = a[j]                      (b == nullptr)
//   θ[j] = a[j] + λ·(b[j] − a[j])    (the scaled model θ_pre + λ·τ, DF-Merge's θ_i(λ_i))
//   θ[j] = a[j]  for j ≥ b_numel     (b holds fewer elements: a fine-tune whose vocabulary
//                                     has fewer rows than the base's; τ = 0 there, docs/design.md §10)
//
// The scaled model is never materialised: the GEMMs form θ while packing a
// weight panel (load()), and the Fisher epilogue reads λ·τ (load_delta()) to
// fold g² into W = Σ F ⊙ λτ. Pointers are borrowed: the owner (the bindings,
// which keep the JS buffers alive) guarantees they outlive the view.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/convert.h"

namespace dfm {

struct WeightView {
  const void* a = nullptr;
  Dtype ta = Dtype::F32;
  const void* b = nullptr;  // optional second tensor (θ_i); then θ = a + λ(b − a)
  Dtype tb = Dtype::F32;
  float lambda = 0.0f;
  size_t numel = 0;
  size_t b_numel = SIZE_MAX;  // elements b holds (≤ numel); beyond them θ = a and λτ = 0

  // f32 values readable in place (4-byte aligned; else they are copied through load()).
  bool plain_f32() const { return b == nullptr && ta == Dtype::F32 && (reinterpret_cast<uintptr_t>(a) & 3u) == 0; }
  const float* f32() const { return static_cast<const float*>(a); }  // only when plain_f32()
  // θ[i, i+n) as f32 into dst.
  void load(size_t i, size_t n, float* dst) const;
  // λ·τ[i, i+n) = λ·(b − a) into dst; zeros when there is no second tensor.
  void load_delta(size_t i, size_t n, float* dst) const;
};

// Where one example's squared gradients go (docs/design.md §1), for one
// tensor whose value is given by `view`:
//   s[j] += w·g[j]²            (S = Σ F_i, or a plain Fisher accumulator)
//   d[j] += w·g[j]²·λτ[j]      (W = Σ F_i ⊙ λ_i τ_i; only when d is set and the view has a second tensor)
struct FisherSink {
  float* s = nullptr;
  float* d = nullptr;
  float w = 0.0f;
  const WeightView* view = nullptr;
};

// Folds g[0, n) (elements [i, i+n) of the sink's tensor) into the sink.
void fisher_fold(const FisherSink& sink, size_t i, const float* g, size_t n);

}  // namespace dfm
