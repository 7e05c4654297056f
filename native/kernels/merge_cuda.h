// The CUDA merge driver: the same MergeJob as merge_tensor_cpu(), run on the GPU
// (merge.cu). The CPU build links merge_cuda_cpu.cc instead, whose driver throws
// DfError("CudaUnavailable").
#pragma once
#include "kernels/merge.h"

namespace dfm {

// Runs a validated job on CUDA device 0: inputs are copied chunk by chunk in their
// storage dtype, converted and merged on the device, and the output comes back in
// its storage dtype (memory or pwrite into the file slot). TIES thresholds and DARE
// drops are bit-identical to the CPU driver's. Throws DfError("CudaUnavailable")
// without a device.
void merge_tensor_cuda(const MergeJob& job);

}  // namespace dfm
