// matmul_forward / matmul_backward (nn.Linear) and the built-in SGEMM they use
// when OpenBLAS is not compiled in (binding.gyp defines DFMERGE_OPENBLAS when
// `pkg-config --exists openblas` succeeds at build time).
//
// Built-in SGEMM: the three row-major products a linear layer needs, each
// cache-blocked and OpenMP-parallel over independent output blocks:
//   nt: C[M,N]  = A[M,K] · B[N,K]^T   (forward; dot products, register-blocked 4x2)
//   nn: C[M,N] += A[M,K] · B[K,N]     (input gradient; B streamed once)
//   tn: C[M,N] += A[K,M]^T · B[K,N]   (weight gradient; C rows stay in L1)
#include <algorithm>
#include <cstring>

#include "model/layers.h"

#ifdef DFMERGE_OPENBLAS
#include <cblas.h>
#endif

namespace dfm {

namespace {

#ifndef DFMERGE_OPENBLAS
// C[M,N] = A[M,K] · B[N,K]^T. Parallel over blocks of B rows (columns of C);
// inside, 4 rows of A × 2 rows of B share loads (8 independent accumulators).
void sgemm_nt(int M, int N, int K, const float* A, const float* B, float* C) {
  constexpr int JB = 16;
  const int nblocks = (N + JB - 1) / JB;
#pragma omp parallel for schedule(static)
  for (int jb = 0; jb < nblocks; ++jb) {
    const int j0 = jb * JB, j1 = std::min(N, j0 + JB);
    int i = 0;
    for (; i + 4 <= M; i += 4) {
      const float* a0 = A + (size_t)i * K;
      const float* a1 = a0 + K;
      const float* a2 = a1 + K;
      const float* a3 = a2 + K;
      int j = j0;
      for (; j + 2 <= j1; j += 2) {
        const float* b0 = B + (size_t)j * K;
        const float* b1 = b0 + K;
        float s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
#pragma omp simd reduction(+ : s00, s01, s10, s11, s20, s21, s30, s31)
        for (int k = 0; k < K; ++k) {
          const float x0 = b0[k], x1 = b1[k];
          s00 += a0[k] * x0; s01 += a0[k] * x1;
          s10 += a1[k] * x0; s11 += a1[k] * x1;
          s20 += a2[k] * x0; s21 += a2[k] * x1;
          s30 += a3[k] * x0; s31 += a3[k] * x1;
        }
        C[(size_t)i * N + j] = s00; C[(size_t)i * N + j + 1] = s01;
        C[(size_t)(i + 1) * N + j] = s10; C[(size_t)(i + 1) * N + j + 1] = s11;
        C[(size_t)(i + 2) * N + j] = s20; C[(size_t)(i + 2) * N + j + 1] = s21;
        C[(size_t)(i + 3) * N + j] = s30; C[(size_t)(i + 3) * N + j + 1] = s31;
      }
      for (; j < j1; ++j) {
        const float* b0 = B + (size_t)j * K;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int k = 0; k < K; ++k) {
          s0 += a0[k] * b0[k]; s1 += a1[k] * b0[k]; s2 += a2[k] * b0[k]; s3 += a3[k] * b0[k];
        }
        C[(size_t)i * N + j] = s0; C[(size_t)(i + 1) * N + j] = s1;
        C[(size_t)(i + 2) * N + j] = s2; C[(size_t)(i + 3) * N + j] = s3;
      }
    }
    for (; i < M; ++i) {
      const float* a0 = A + (size_t)i * K;
      for (int j = j0; j < j1; ++j) {
        const float* b0 = B + (size_t)j * K;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int k = 0; k < K; ++k) s += a0[k] * b0[k];
        C[(size_t)i * N + j] = s;
      }
    }
  }
}

// C[M,N] += A[M,K] · B[K,N]. Parallel over column blocks of C; for each block
// every row of B is read once and folded into all M rows, 4 rows of B at a time.
void sgemm_nn(int M, int N, int K, const float* A, const float* B, float* C) {
  constexpr int NB = 256;
  const int nblocks = (N + NB - 1) / NB;
#pragma omp parallel for schedule(static)
  for (int cb = 0; cb < nblocks; ++cb) {
    const int c0 = cb * NB, w = std::min(N, c0 + NB) - c0;
    int k = 0;
    for (; k + 4 <= K; k += 4) {
      const float* b0 = B + (size_t)k * N + c0;
      const float* b1 = b0 + N;
      const float* b2 = b1 + N;
      const float* b3 = b2 + N;
      for (int i = 0; i < M; ++i) {
        const float* a = A + (size_t)i * K + k;
        const float d0 = a[0], d1 = a[1], d2 = a[2], d3 = a[3];
        float* c = C + (size_t)i * N + c0;
#pragma omp simd
        for (int x = 0; x < w; ++x) c[x] += d0 * b0[x] + d1 * b1[x] + d2 * b2[x] + d3 * b3[x];
      }
    }
    for (; k < K; ++k) {
      const float* b0 = B + (size_t)k * N + c0;
      for (int i = 0; i < M; ++i) {
        const float d0 = A[(size_t)i * K + k];
        float* c = C + (size_t)i * N + c0;
#pragma omp simd
        for (int x = 0; x < w; ++x) c[x] += d0 * b0[x];
      }
    }
  }
}

// C[M,N] += A[K,M]^T · B[K,N]. Parallel over blocks of 4 rows of C; each
// 4 × 512 block of C stays in L1 while all K rows of B stream past.
void sgemm_tn(int M, int N, int K, const float* A, const float* B, float* C) {
  constexpr int RB = 4, NB = 512;
  const int rblocks = (M + RB - 1) / RB;
#pragma omp parallel for schedule(static)
  for (int rb = 0; rb < rblocks; ++rb) {
    const int r0 = rb * RB, nr = std::min(M, r0 + RB) - r0;
    for (int c0 = 0; c0 < N; c0 += NB) {
      const int w = std::min(N, c0 + NB) - c0;
      if (nr == RB) {
        float* o0 = C + (size_t)r0 * N + c0;
        float* o1 = o0 + N;
        float* o2 = o1 + N;
        float* o3 = o2 + N;
        for (int k = 0; k < K; ++k) {
          const float* a = A + (size_t)k * M + r0;
          const float d0 = a[0], d1 = a[1], d2 = a[2], d3 = a[3];
          const float* b = B + (size_t)k * N + c0;
#pragma omp simd
          for (int x = 0; x < w; ++x) {
            const float bx = b[x];
            o0[x] += d0 * bx; o1[x] += d1 * bx; o2[x] += d2 * bx; o3[x] += d3 * bx;
          }
        }
      } else {
        for (int r = 0; r < nr; ++r) {
          float* o = C + (size_t)(r0 + r) * N + c0;
          for (int k = 0; k < K; ++k) {
            const float d = A[(size_t)k * M + r0 + r];
            const float* b = B + (size_t)k * N + c0;
#pragma omp simd
            for (int x = 0; x < w; ++x) o[x] += d * b[x];
          }
        }
      }
    }
  }
}
#endif  // !DFMERGE_OPENBLAS

}  // namespace

const char* matmul_backend() {
#ifdef DFMERGE_OPENBLAS
  return "openblas";
#else
  return "builtin";
#endif
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int T, int C, int OC) {
#ifdef DFMERGE_OPENBLAS
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
#else
  sgemm_nt(T, OC, C, inp, weight, out);
#endif
  if (bias) {
#pragma omp parallel for schedule(static) if ((long long)T * OC >= (1 << 16))
    for (int t = 0; t < T; ++t) {
      float* o = out + (size_t)t * OC;
      for (int j = 0; j < OC; ++j) o[j] += bias[j];
    }
  }
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int T, int C, int OC) {
#ifdef DFMERGE_OPENBLAS
  if (dinp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, T, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
#else
  if (dinp) sgemm_nn(T, C, OC, dout, weight, dinp);
  if (dweight) sgemm_tn(OC, C, T, dout, inp, dweight);
#endif
  if (dbias) {
    for (int t = 0; t < T; ++t) {
      const float* d = dout + (size_t)t * OC;
      for (int j = 0; j < OC; ++j) dbias[j] += d[j];
    }
  }
}

}  // namespace dfm
