// Positional writes into an output file (the merge drivers write finished chunks
// straight into their tensor's slot).
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "util/buffer_pool.h"

namespace dfm {

// Writes all len bytes at offset off of fd, retrying short writes and EINTR;
// throws DfError("WriteFailed") on failure.
void pwrite_all(int fd, const uint8_t* p, size_t len, uint64_t off);

// Asks the kernel to start writing bytes [off, off + len) of fd to the device
// now (Linux: sync_file_range(SYNC_FILE_RANGE_WRITE); elsewhere nothing): a
// hint, failures ignored. The merge calls it for each finished tensor while
// the next one is merged, so the output's final fsync finds little left to
// write (docs/design.md §11).
void start_writeback(int fd, uint64_t off, uint64_t len);

// One thread's writes into a file the other threads of its team write too.
// ext4 holds the inode lock through a buffered write, so two threads that
// pwrite() at once serialise and the second spins in the kernel
// (rwsem_spin_on_owner: 4–10% of a 2-thread merge's samples, time the
// spinning core could have spent merging). Here the team shares one mutex per
// file: a thread that finds it taken keeps its bytes and goes on with its next
// piece, writing everything pending once the file is free; it waits only when
// its buffer is full and at flush() (docs/design.md §11).
class DeferredWriter {
 public:
  DeferredWriter(int fd, std::mutex& file_lock, size_t capacity);
  // Room for `bytes` (≤ capacity) more; writes what is pending first, waiting
  // for the file, when they do not fit.
  uint8_t* reserve(size_t bytes);
  // The `bytes` just filled at reserve() belong at file offset off: written now,
  // with everything pending, when the file is free, else kept.
  void commit(uint64_t off, size_t bytes);
  // Waits for the file and writes everything pending.
  void flush();

 private:
  struct Run {
    uint64_t off;
    size_t pos, len;
  };
  void write_pending();  // the caller holds the file lock
  int fd_;
  std::mutex* lock_;
  PooledBuffer buf_;  // reused across tensors (util/buffer_pool.h)
  size_t used_ = 0;
  std::vector<Run> runs_;
};

}  // namespace dfm
