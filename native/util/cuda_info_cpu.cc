#include "util/cuda_info.h"

namespace dfm {

bool cuda_compiled() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_name(int) { return ""; }

}  // namespace dfm
