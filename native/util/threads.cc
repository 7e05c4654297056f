#include "util/threads.h"

#include <omp.h>

#include <thread>

namespace dfm {

namespace {
int default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}
}  // namespace

int get_threads() { return omp_get_max_threads(); }

void set_threads(int n) { omp_set_num_threads(n > 0 ? n : default_threads()); }

}  // namespace dfm
