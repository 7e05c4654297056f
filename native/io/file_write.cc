#include "io/file_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/error.h"

namespace dfm {

void start_writeback(int fd, uint64_t off, uint64_t len) {
#if defined(__linux__)
  if (len > 0) (void)::sync_file_range(fd, static_cast<off64_t>(off), static_cast<off64_t>(len), SYNC_FILE_RANGE_WRITE);
#else
  (void)fd;
  (void)off;
  (void)len;
#endif
}

void pwrite_all(int fd, const uint8_t* p, size_t len, uint64_t off) {
  while (len > 0) {
    const ssize_t w = ::pwrite(fd, p, len, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw DfError("WriteFailed", std::string("pwrite of merged tensor failed: ") + std::strerror(errno));
    }
    if (w == 0) throw DfError("WriteFailed", "pwrite of merged tensor wrote nothing");
    p += w;
    len -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
}

DeferredWriter::DeferredWriter(int fd, std::mutex& file_lock, size_t capacity)
    : fd_(fd), lock_(&file_lock), buf_(capacity) {}

uint8_t* DeferredWriter::reserve(size_t bytes) {
  if (bytes > buf_.size()) throw DfError("InvalidArgument", "deferred write larger than its buffer");
  if (used_ + bytes > buf_.size()) flush();
  return buf_.data() + used_;
}

void DeferredWriter::commit(uint64_t off, size_t bytes) {
  if (bytes == 0) return;
  if (!runs_.empty() && runs_.back().off + runs_.back().len == off) {
    runs_.back().len += bytes;  // contiguous in the file and in the buffer
  } else {
    runs_.push_back(Run{off, used_, bytes});
  }
  used_ += bytes;
  std::unique_lock<std::mutex> held(*lock_, std::try_to_lock);
  if (held.owns_lock()) write_pending();
}

void DeferredWriter::flush() {
  if (used_ == 0) return;
  std::lock_guard<std::mutex> held(*lock_);
  write_pending();
}

void DeferredWriter::write_pending() {
  for (const Run& r : runs_) pwrite_all(fd_, buf_.data() + r.pos, r.len, r.off);
  runs_.clear();
  used_ = 0;
}

}  // namespace dfm
