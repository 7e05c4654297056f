// Positional writes into an output file (the merge drivers write finished chunks
// straight into their tensor's slot).
#pragma once
#include <cstddef>
#include <cstdint>

namespace dfm {

// Writes all len bytes at offset off of fd, retrying short writes and EINTR;
// throws DfError("WriteFailed") on failure.
void pwrite_all(int fd, const uint8_t* p, size_t len, uint64_t off);

}  // namespace dfm
