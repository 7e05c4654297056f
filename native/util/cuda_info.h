// Whether this build has CUDA kernels, and which devices answer. The CPU build
// links cuda_info_cpu.cc; the CUDA build links cuda_info.cu instead.
#pragma once
#include <string>

namespace dfm {

bool cuda_compiled();
int cuda_device_count();  // 0 when no driver or device is present
std::string cuda_device_name(int i);

}  // namespace dfm
