// Positional reads of input files (the merge drivers pread() tensors of mapped
// checkpoints into reused buffers instead of faulting the mapping's pages:
// docs/design.md §11).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dfm {

// Reads exactly len bytes at offset off of fd into p, retrying short reads and
// EINTR. A read that ends early (the file was truncated or rewritten shorter
// meanwhile) throws DfError("InputTruncated"), an I/O error DfError("ReadFailed"),
// each naming `path` and `tensor`.
void pread_all(int fd, uint8_t* p, size_t len, uint64_t off, const std::string& path, const std::string& tensor);

// The streaming read-ahead of the merge drivers (a hint, failures ignored): a
// reader that has just taken the chunk_bytes ending at byte `end` of fd asks the
// kernel to start reading the window's newly uncovered end into the page cache,
// [end + 16 MiB − chunk_bytes, end + 16 MiB) (chunk_bytes capped at 16 MiB), so the
// kernel stays 16 MiB ahead across tensors (stored back to back) while a warm
// cache pays one chunk's page lookups per chunk (docs/design.md §11).
void readahead_window(int fd, uint64_t end, uint64_t chunk_bytes);

// Writes the len bytes at src (inside a live MappedFile: read with pread from its
// file, in pieces through one buffer; other memory: written as it is) to fd at
// byte off. Errors name the input's path and `tensor` (reads) or say "write" (writes).
void copy_to_file(const uint8_t* src, size_t len, int fd, uint64_t off, const std::string& tensor);

// Marks fd as read sequentially (larger kernel read-ahead); a hint.
void sequential_hint(int fd);

}  // namespace dfm
