#include <cuda_runtime.h>

#include "util/cuda_info.h"

namespace dfm {

bool cuda_compiled() { return true; }

int cuda_device_count() {
  int n = 0;
  // Fails cleanly (no driver, no device) on machines without CUDA: static cudart
  // loads the driver lazily.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string cuda_device_name(int i) {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, i) != cudaSuccess) return "";
  return p.name;
}

}  // namespace dfm
