// Input staging for the chunked merge drivers (docs/design.md §11). The kernels
// address every input by absolute element index through TensorIn::data. For an
// input that lies in a live MappedFile, an InputStage instead pread()s each chunk
// of it into a reused aligned buffer and points the TensorIn at that buffer for
// the chunk (data = buffer − c0·size, so the kernels need no change): no page
// faults, no page-table work, resident memory bounded by the buffers, and a file
// truncated while it is read gives a clear error (naming file and tensor) instead
// of SIGBUS. Other inputs (memory) are read in place.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "kernels/merge.h"
#include "util/buffer_pool.h"

namespace dfm {

class InputStage {
 public:
  // targets: the TensorIn fields the kernels read (rebased chunk by chunk and
  // restored by the destructor); n elements each; chunk elements per chunk.
  // check_finite: count NaN/±Inf of every staged input (finish() reports them).
  InputStage(const std::vector<TensorIn*>& targets, size_t n, size_t chunk, std::string tensor, bool check_finite);
  ~InputStage();
  InputStage(const InputStage&) = delete;
  InputStage& operator=(const InputStage&) = delete;

  // Any input staged (else every call below is a no-op).
  bool active() const { return !staged_.empty(); }
  // One thread, while no other reads the targets: points them at chunk [c0, c1)'s
  // buffers and asks the kernel to read ahead 16 MiB past the chunk in the file.
  void begin_chunk(size_t c0, size_t c1);
  // Any thread, for disjoint [b, e) inside the current chunk: reads those elements
  // of every staged input into its buffer.
  void read(size_t b, size_t e);
  // Throws DfError("NonFinite") naming the file and tensor when a staged input held NaN or ±Inf.
  void finish() const;

 private:
  struct Staged {
    TensorIn* target = nullptr;
    const uint8_t* original = nullptr;
    size_t elem = 0;
    FileRegion region;
    PooledBuffer buf;  // this input's chunk (util/buffer_pool.h: back to the pool with the stage)
    std::atomic<uint64_t> nonfinite{0};
    std::atomic<uint64_t> first{UINT64_MAX};
  };
  std::vector<std::unique_ptr<Staged>> staged_;
  size_t n_, chunk_, c0_ = 0;
  std::string tensor_;
  bool check_finite_;
};

// Throws DfError("NonFinite") for a tensor of `path` holding `count` NaN/±Inf values, the first at element `first`.
[[noreturn]] void throw_non_finite(const std::string& path, const std::string& tensor, uint64_t count, uint64_t first);

// Staging on (default) or off (inputs read through their mappings, pages faulted
// and released: the path before staging, kept for the benchmark's breakdown).
void set_input_staging(bool on);
bool input_staging();

}  // namespace dfm
