#include "io/file_read.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <memory>
#include <vector>

#include "io/file_write.h"
#include "io/mapped_file.h"
#include "util/error.h"

namespace dfm {

void pread_all(int fd, uint8_t* p, size_t len, uint64_t off, const std::string& path, const std::string& tensor) {
  const size_t want = len;
  const uint64_t start = off;
  const std::string what = path + (tensor.empty() ? "" : ": tensor \"" + tensor + "\"");
  while (len > 0) {
    const ssize_t r = ::pread(fd, p, len, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw DfError("ReadFailed", what + ": read of " + std::to_string(want) + " bytes at offset " + std::to_string(start) +
                                      " failed (" + std::strerror(errno) + ")", tensor);
    }
    if (r == 0) {
      throw DfError("InputTruncated",
                    what + ": the file ends at byte " + std::to_string(off) + ", before the tensor's data (bytes " +
                        std::to_string(start) + " to " + std::to_string(start + want) +
                        "): it was truncated or rewritten by another program while dfmerge read it; nothing was saved. "
                        "Keep inputs unchanged while a command runs",
                    tensor);
    }
    p += r;
    len -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
}

void readahead_window(int fd, uint64_t end, uint64_t chunk_bytes) {
  constexpr uint64_t kWindow = uint64_t(16) << 20;  // 48 MiB measured no better (§11)
  const uint64_t len = std::min(chunk_bytes, kWindow);
  if (len > 0) {
    (void)::posix_fadvise(fd, static_cast<off_t>(end + kWindow - len), static_cast<off_t>(len), POSIX_FADV_WILLNEED);
  }
}

void copy_to_file(const uint8_t* src, size_t len, int fd, uint64_t off, const std::string& tensor) {
  FileRegion region;
  if (len == 0) return;
  if (!mapped_region(src, len, &region)) {
    pwrite_all(fd, src, len, off);
    return;
  }
  constexpr size_t kPiece = size_t(4) << 20;
  std::vector<uint8_t> buf(std::min(len, kPiece));
  for (size_t done = 0; done < len; done += kPiece) {
    const size_t m = std::min(kPiece, len - done);
    pread_all(region.fd, buf.data(), m, region.offset + done, region.path, tensor);
    pwrite_all(fd, buf.data(), m, off + done);
  }
}

void sequential_hint(int fd) { (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); }

}  // namespace dfm
