// Finds non-finite values (NaN, ±Inf) in stored float tensors without converting
// them: a value is non-finite when its exponent bits are all ones.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/convert.h"

namespace dfm {

struct NonFinite {
  uint64_t count = 0;
  // Element index of the first non-finite value (valid when count > 0).
  uint64_t first = 0;
};

// n elements of dtype d at p (no alignment required).
// (Drops the pages of file-mapped memory behind the scan.)
NonFinite scan_non_finite(const uint8_t* p, size_t n, Dtype d);
// The same over memory as it is (no page release), for staged buffers.
NonFinite scan_non_finite_span(const uint8_t* p, size_t n, Dtype d);

}  // namespace dfm
