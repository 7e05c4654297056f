// CUDA twins of kernels/fisher.cc (same formulas, device pointers).
#include <cuda_runtime.h>

#include "kernels/fisher.h"
#include "util/error.h"

namespace dfm {

namespace {

__global__ void fisher_accumulate_kernel(float* acc, const float* g, float w, size_t n) {
  for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < n; j += (size_t)gridDim.x * blockDim.x) {
    const float x = g[j];
    acc[j] += w * x * x;
  }
}

__global__ void fisher_finalize_kernel(float* acc, float scale, float eps, size_t n) {
  for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < n; j += (size_t)gridDim.x * blockDim.x) {
    acc[j] = acc[j] * scale + eps;
  }
}

unsigned grid_for(size_t n) {
  const size_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 65535 ? (blocks == 0 ? 1 : blocks) : 65535);
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw DfError("CudaError", std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace

void fisher_accumulate_cuda(float* acc, const float* g, float w, size_t n) {
  fisher_accumulate_kernel<<<grid_for(n), 256>>>(acc, g, w, n);
  check(cudaGetLastError(), "fisher_accumulate_cuda");
}

void fisher_finalize_cuda(float* acc, float scale, float eps, size_t n) {
  fisher_finalize_kernel<<<grid_for(n), 256>>>(acc, scale, eps, n);
  check(cudaGetLastError(), "fisher_finalize_cuda");
}

}  // namespace dfm
