// CPU-build stand-in for merge.cu: this build has no CUDA kernels.
#include "kernels/merge_cuda.h"
#include "util/error.h"

namespace dfm {

void merge_tensor_cuda(const MergeJob&) {
  throw DfError("CudaUnavailable",
                "this dfmerge build has no CUDA kernels; build them with `npm run build:cuda` "
                "(needs nvcc) or merge with device 'cpu'");
}

}  // namespace dfm
