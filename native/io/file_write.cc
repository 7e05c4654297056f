#include "io/file_write.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/error.h"

namespace dfm {

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

}  // namespace dfm
