// Thread-count control for the OpenMP-parallel kernels.
#pragma once

namespace dfm {

// Number of threads kernels use (defaults to the hardware concurrency).
int get_threads();
// Sets the number of threads; n <= 0 restores the default.
void set_threads(int n);

}  // namespace dfm
