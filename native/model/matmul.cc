// matmul_forward / matmul_backward (nn.Linear) and the SGEMM they use.
//
// Built-in SGEMM, the packed-panel scheme of BLIS / llm.c's CPU matmul, one
// loop order per product a linear layer needs (row-major; T positions, few):
//   forward         out[T,OC]  = inp · W^T    sgemm_nt (sgemm_nt_small for T < 12)
//   input gradient  dinp[T,C] += dout · W     sgemm_nn
//   weight gradient dW[OC,C]   = dout^T · inp sgemm_tn (or fused into a Fisher)
// C is cut into tiles of MR rows × NR columns (two SIMD vectors); a
// register-blocked micro-kernel keeps the tile's 2·MR accumulators in
// registers over a block of the depth, reading op(B) from a packed, L1-sized
// panel. Threads (OpenMP) own disjoint tiles. The weight matrices, the large
// operand, are always read or written in address order. Vectors are GCC/Clang
// vector extensions: AVX-512 when compiled for it, else AVX2/SSE.
//
// The weight operand is a WeightView (model/weights.h): its values are formed
// (converted from bf16/f16, and θ_pre + λ·τ for a scaled model) while a panel
// is packed, so no f32 copy of a weight exists outside the L1-sized panel.
// The fused Fisher epilogue folds g² into a FisherSink (S, and W with λτ).
#include <algorithm>
#include <cstring>
#include <vector>

#include "model/layers.h"
#include "model/weights.h"

namespace dfm {

namespace {

#if defined(__AVX512F__)
constexpr int VL = 16;
#else
constexpr int VL = 8;
#endif
typedef float vf __attribute__((vector_size(VL * 4)));
constexpr int NR = 2 * VL;  // panel width: two vectors
constexpr int MR = 6;       // rows per micro-tile: 12 accumulators
constexpr int KC = 128;     // depth of a packed block: KC×NR floats stay in L1

inline vf loadu(const float* p) { vf v; std::memcpy(&v, p, sizeof(vf)); return v; }
inline void storeu(float* p, vf v) { std::memcpy(p, &v, sizeof(vf)); }

// Fused Fisher epilogue (see matmul_backward_fisher): instead of storing the
// tile c (rows i.., columns j.. of an [M, N] weight gradient), fold it into the
// sink: S += w·c² (and W += w·c²·λτ). Rows with skip[row] set are left out.
struct FisherOut {
  const FisherSink* sink = nullptr;
  const uint8_t* skip = nullptr;
  size_t row = 0, col = 0, ld = 0;  // tile origin and row length of the gradient
  const float* delta = nullptr;     // λτ of the tile's rows [R, ld] (for W), formed once per row block
};

// C[i..i+R, j..j+nc) (+)= Σ_{k<kb} a(r, k) · Bp[k, :], a(r,k) = TA ? A[k*lda + r] : A[r*lda + k]
// (A already offset to row i / depth k0). Bp is a packed KC×NR panel (row stride ldbp).
// With fo.acc set, the finished tile goes to fo.acc (+= w·c²) instead of C.
template <bool TA, int R>
inline void micro(const float* A, int lda, const float* Bp, int ldbp, int kb, float* C, int ldc, int nc, bool load_c,
                  FisherOut fo) {
  vf acc[R][2];
  for (int r = 0; r < R; ++r) { acc[r][0] = vf{}; acc[r][1] = vf{}; }
  if (load_c) {
    for (int r = 0; r < R; ++r) {
      if (nc == NR) {
        acc[r][0] = loadu(C + (size_t)r * ldc);
        acc[r][1] = loadu(C + (size_t)r * ldc + VL);
      } else {
        alignas(64) float tmp[NR] = {};
        std::memcpy(tmp, C + (size_t)r * ldc, nc * sizeof(float));
        acc[r][0] = loadu(tmp);
        acc[r][1] = loadu(tmp + VL);
      }
    }
  }
  for (int k = 0; k < kb; ++k) {
    const vf b0 = loadu(Bp + (size_t)k * ldbp), b1 = loadu(Bp + (size_t)k * ldbp + VL);
    for (int r = 0; r < R; ++r) {
      const float a = TA ? A[(size_t)k * lda + r] : A[(size_t)r * lda + k];
      acc[r][0] += a * b0;
      acc[r][1] += a * b1;
    }
  }
  for (int r = 0; r < R; ++r) {
    if (fo.sink) {
      if (fo.skip && fo.skip[fo.row + r]) continue;
      const size_t at = (fo.row + r) * fo.ld + fo.col;
      if (!fo.sink->d && nc == NR) {  // plain Fisher accumulator: in registers
        float* o = fo.sink->s + at;
        const float w = fo.sink->w;
        storeu(o, loadu(o) + w * acc[r][0] * acc[r][0]);
        storeu(o + VL, loadu(o + VL) + w * acc[r][1] * acc[r][1]);
      } else if (fo.delta) {  // S += w·c², W += w·c²·λτ
        alignas(64) float tmp[NR];
        storeu(tmp, acc[r][0]);
        storeu(tmp + VL, acc[r][1]);
        float* __restrict o = fo.sink->s + at;
        float* __restrict d = fo.sink->d + at;
        const float* __restrict lt = fo.delta + (size_t)r * fo.ld + fo.col;
        const float w = fo.sink->w;
        for (int x = 0; x < nc; ++x) {
          const float f = w * tmp[x] * tmp[x];
          o[x] += f;
          d[x] += f * lt[x];
        }
      } else {
        alignas(64) float tmp[NR];
        storeu(tmp, acc[r][0]);
        storeu(tmp + VL, acc[r][1]);
        fisher_fold(*fo.sink, at, tmp, nc);
      }
      continue;
    }
    if (nc == NR) {
      storeu(C + (size_t)r * ldc, acc[r][0]);
      storeu(C + (size_t)r * ldc + VL, acc[r][1]);
    } else {
      alignas(64) float tmp[NR];
      storeu(tmp, acc[r][0]);
      storeu(tmp + VL, acc[r][1]);
      std::memcpy(C + (size_t)r * ldc, tmp, nc * sizeof(float));
    }
  }
}

template <bool TA>
inline void micro_rows(int R, const float* A, int lda, const float* Bp, int ldbp, int kb, float* C, int ldc, int nc,
                       bool load_c, FisherOut fo) {
  switch (R) {
    case 6: micro<TA, 6>(A, lda, Bp, ldbp, kb, C, ldc, nc, load_c, fo); break;
    case 5: micro<TA, 5>(A, lda, Bp, ldbp, kb, C, ldc, nc, load_c, fo); break;
    case 4: micro<TA, 4>(A, lda, Bp, ldbp, kb, C, ldc, nc, load_c, fo); break;
    case 3: micro<TA, 3>(A, lda, Bp, ldbp, kb, C, ldc, nc, load_c, fo); break;
    case 2: micro<TA, 2>(A, lda, Bp, ldbp, kb, C, ldc, nc, load_c, fo); break;
    default: micro<TA, 1>(A, lda, Bp, ldbp, kb, C, ldc, nc, load_c, fo); break;
  }
}

// Packs op(B)[k0..k0+kb, j..j+nc) into Bp[kb][NR], zero-padded (TB: B is [N,K]).
template <bool TB>
inline void pack_panel(const float* B, int ldb, int k0, int kb, int j, int nc, float* Bp) {
  if (TB) {
    if (nc < NR) std::memset(Bp, 0, sizeof(float) * kb * NR);
    for (int jj = 0; jj < nc; ++jj) {
      const float* src = B + (size_t)(j + jj) * ldb + k0;
      for (int k = 0; k < kb; ++k) Bp[k * NR + jj] = src[k];
    }
  } else {
    for (int k = 0; k < kb; ++k) {
      std::memcpy(Bp + k * NR, B + (size_t)(k0 + k) * ldb + j, nc * sizeof(float));
      if (nc < NR) std::memset(Bp + k * NR + nc, 0, (NR - nc) * sizeof(float));
    }
  }
}

// The same transposed packing (B = weight [N, K]) with the weight's values
// formed from its view, a row segment at a time.
inline void pack_weight_panel(const WeightView& B, int K, int k0, int kb, int j, int nc, float* Bp) {
  if (B.plain_f32()) return pack_panel<true>(B.f32(), K, k0, kb, j, nc, Bp);
  alignas(64) float row[KC];
  if (nc < NR) std::memset(Bp, 0, sizeof(float) * kb * NR);
  for (int jj = 0; jj < nc; ++jj) {
    B.load((size_t)(j + jj) * K + k0, kb, row);
    for (int k = 0; k < kb; ++k) Bp[k * NR + jj] = row[k];
  }
}

// Forward, C[M,N] = A[M,K] · B[N,K]^T (B = weight): parallel over panels of NR
// weight rows, each packed KC at a time (NR contiguous row streams), then all
// row blocks of A against it.
void sgemm_nt(int M, int N, int K, const float* A, const WeightView& B, float* C) {
  const int panels = (N + NR - 1) / NR;
#pragma omp parallel
  {
    alignas(64) float Bp[KC * NR];
#pragma omp for schedule(dynamic, 1)
    for (int jp = 0; jp < panels; ++jp) {
      const int j = jp * NR, nc = std::min(NR, N - j);
      for (int k0 = 0; k0 < K; k0 += KC) {
        const int kb = std::min(KC, K - k0);
        pack_weight_panel(B, K, k0, kb, j, nc, Bp);
        for (int i = 0; i < M; i += MR) {
          micro_rows<false>(std::min(MR, M - i), A + (size_t)i * K + k0, K, Bp, NR, kb, C + (size_t)i * N + j, N, nc,
                            k0 > 0, FisherOut{});
        }
      }
    }
  }
}

// Input gradient, C[M,N] += A[M,K] · B[K,N] (B = weight, K its many rows):
// blocks of KN weight rows in order; each block is packed panel-major by all
// threads reading whole rows (sequential reads), then its panels are computed
// in parallel. C (M small) stays in cache throughout.
void sgemm_nn(int M, int N, int K, const float* A, const WeightView& B, float* C) {
  constexpr int KN = 128;
  const int panels = (N + NR - 1) / NR;
  std::vector<float> blk((size_t)KN * NR * panels);
#pragma omp parallel
  {
    std::vector<float> rowbuf(B.plain_f32() ? 0 : (size_t)N);  // one weight row formed at a time
    for (int k0 = 0; k0 < K; k0 += KN) {
      const int kb = std::min(KN, K - k0);
#pragma omp for schedule(static)
      for (int k = 0; k < kb; ++k) {
        const size_t row = (size_t)(k0 + k) * N;
        const float* src = B.plain_f32() ? B.f32() + row : rowbuf.data();
        if (!B.plain_f32()) B.load(row, (size_t)N, rowbuf.data());
        for (int jp = 0; jp < panels; ++jp) {
          const int j = jp * NR, nc = std::min(NR, N - j);
          float* dst = blk.data() + ((size_t)jp * KN + k) * NR;
          std::memcpy(dst, src + j, nc * sizeof(float));
          if (nc < NR) std::memset(dst + nc, 0, (NR - nc) * sizeof(float));
        }
      }
#pragma omp for schedule(static)
      for (int jp = 0; jp < panels; ++jp) {
        const int j = jp * NR, nc = std::min(NR, N - j);
        const float* Bp = blk.data() + (size_t)jp * KN * NR;
        for (int i = 0; i < M; i += MR) {
          micro_rows<false>(std::min(MR, M - i), A + (size_t)i * K + k0, K, Bp, NR, kb, C + (size_t)i * N + j, N, nc,
                            true, FisherOut{});
        }
      }  // implicit barriers: the block buffer and C are shared
    }
  }
}

// Weight gradient, C[M,N] (+)= A[K,M]^T · B[K,N] (A = dout, B = inp, K = positions,
// few): parallel over blocks of MR rows of C, each row streamed left to right
// (sequential writes of the large C); B's full panels are read in place (B is
// small and stays in cache), the ragged last panel is packed once per thread.
// With a sink, C is not written: the sink gets w·(A^T·B)² (see FisherOut).
void sgemm_tn(int M, int N, int K, const float* A, const float* B, float* C, bool accumulate, const FisherSink* sink,
              const uint8_t* skip) {
  const int panels = (N + NR - 1) / NR;
  const int last_nc = N - (panels - 1) * NR;
#pragma omp parallel
  {
    std::vector<float> edge(last_nc < NR ? (size_t)K * NR : 0);
    if (last_nc < NR) pack_panel<false>(B, N, 0, K, (panels - 1) * NR, last_nc, edge.data());
    const bool with_delta = sink && sink->d && sink->view && sink->view->b;
    std::vector<float> delta(with_delta ? (size_t)MR * N : 0);
#pragma omp for schedule(static)
    for (int i = 0; i < M; i += MR) {
      const int R = std::min(MR, M - i);
      if (with_delta) sink->view->load_delta((size_t)i * N, (size_t)R * N, delta.data());
      for (int jp = 0; jp < panels; ++jp) {
        const int j = jp * NR, nc = std::min(NR, N - j);
        const float* panel = nc == NR ? B + j : edge.data();
        const int ldbp = nc == NR ? N : NR;
        FisherOut fo;
        if (sink) {
          fo.sink = sink;
          fo.skip = skip;
          fo.row = (size_t)i;
          fo.col = (size_t)j;
          fo.ld = (size_t)N;
          fo.delta = with_delta ? delta.data() : nullptr;
        }
        micro_rows<true>(R, A + i, M, panel, ldbp, K, C ? C + (size_t)i * N + j : nullptr, N, nc, accumulate, fo);
      }
    }
  }
}

// C[M,N] = A[M,K] · B[N,K]^T for few rows of A (M < kSmallM): dot products
// straight from B's rows, no packing (B is read once; 4 rows × 2 columns share loads).
constexpr int kSmallM = 12;
// A weight that is not plain f32 is formed two rows at a time into a per-thread buffer.
void sgemm_nt_small(int M, int N, int K, const float* A, const WeightView& W, float* C) {
  const bool plain = W.plain_f32();
#pragma omp parallel
  {
  std::vector<float> rows(plain ? 0 : 2 * (size_t)K);
#pragma omp for schedule(static)
  for (int j = 0; j < N; j += 2) {
    const int nj = std::min(2, N - j);
    const float* Bj = plain ? W.f32() + (size_t)j * K : rows.data();  // rows j, j+1 of the weight
    if (!plain) W.load((size_t)j * K, (size_t)nj * K, rows.data());
    int i = 0;
    for (; i + 4 <= M; i += 4) {
      const float* a0 = A + (size_t)i * K;
      const float* a1 = a0 + K;
      const float* a2 = a1 + K;
      const float* a3 = a2 + K;
      const float* b0 = Bj;
      const float* b1 = nj == 2 ? b0 + K : b0;
      float s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
#pragma omp simd reduction(+ : s00, s01, s10, s11, s20, s21, s30, s31)
      for (int k = 0; k < K; ++k) {
        const float x0 = b0[k], x1 = b1[k];
        s00 += a0[k] * x0; s01 += a0[k] * x1;
        s10 += a1[k] * x0; s11 += a1[k] * x1;
        s20 += a2[k] * x0; s21 += a2[k] * x1;
        s30 += a3[k] * x0; s31 += a3[k] * x1;
      }
      C[(size_t)i * N + j] = s00; C[(size_t)(i + 1) * N + j] = s10;
      C[(size_t)(i + 2) * N + j] = s20; C[(size_t)(i + 3) * N + j] = s30;
      if (nj == 2) {
        C[(size_t)i * N + j + 1] = s01; C[(size_t)(i + 1) * N + j + 1] = s11;
        C[(size_t)(i + 2) * N + j + 1] = s21; C[(size_t)(i + 3) * N + j + 1] = s31;
      }
    }
    for (; i < M; ++i) {
      const float* a0 = A + (size_t)i * K;
      for (int jj = j; jj < j + nj; ++jj) {
        const float* b0 = Bj + (size_t)(jj - j) * K;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int k = 0; k < K; ++k) s += a0[k] * b0[k];
        C[(size_t)i * N + jj] = s;
      }
    }
  }
  }
}

}  // namespace

const char* matmul_backend() { return "builtin"; }

void matmul_forward(float* out, const float* inp, const WeightView& weight, const float* bias, int T, int C, int OC) {
  if (T < kSmallM) sgemm_nt_small(T, OC, C, inp, weight, out);
  else sgemm_nt(T, OC, C, inp, weight, out);
  if (bias) {
#pragma omp parallel for schedule(static) if ((long long)T * OC >= (1 << 16))
    for (int t = 0; t < T; ++t) {
      float* o = out + (size_t)t * OC;
      for (int j = 0; j < OC; ++j) o[j] += bias[j];
    }
  }
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const WeightView& weight, int T, int C, int OC, bool overwrite_dweight) {
  if (dinp) sgemm_nn(T, C, OC, dout, weight, dinp);
  if (dweight) {
    if (T > 0) sgemm_tn(OC, C, T, dout, inp, dweight, !overwrite_dweight, nullptr, nullptr);
    else if (overwrite_dweight) std::memset(dweight, 0, sizeof(float) * OC * C);
  }
  if (dbias) {
    for (int t = 0; t < T; ++t) {
      const float* d = dout + (size_t)t * OC;
      for (int j = 0; j < OC; ++j) dbias[j] += d[j];
    }
  }
}

void matmul_backward_fisher(float* dinp, const FisherSink& sink, const uint8_t* skip_rows, const float* dout,
                            const float* inp, const WeightView& weight, int T, int C, int OC) {
  if (dinp) sgemm_nn(T, C, OC, dout, weight, dinp);
  if (T > 0) sgemm_tn(OC, C, T, dout, inp, nullptr, false, &sink, skip_rows);
}

}  // namespace dfm
