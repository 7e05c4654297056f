#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace dfm {

namespace {
// Rounds a byte range outward to whole pages inside [0, size).
bool page_range(size_t size, size_t offset, size_t len, size_t* begin, size_t* length) {
  if (offset >= size || len == 0) return false;
  if (len > size - offset) len = size - offset;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  *begin = offset / page * page;
  *length = offset + len - *begin;
  return true;
}
}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw DfError(errno == ENOENT ? "FileNotFound" : "OpenFailed",
                  std::string("cannot open: ") + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw DfError("OpenFailed", std::string("cannot stat: ") + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw DfError("NotAFile", "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    // Private writable mapping: pages are shared with the page cache until written;
    // a stray write through a JS view then copies the page instead of faulting.
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw DfError("MapFailed", std::string("cannot mmap: ") + std::strerror(e));
    }
    data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

void MappedFile::will_need(size_t offset, size_t len) const {
  size_t b, l;
  if (data_ && page_range(size_, offset, len, &b, &l)) {
    ::madvise(data_ + b, l, MADV_WILLNEED);
  }
}

void MappedFile::release(size_t offset, size_t len) const {
  size_t b, l;
  if (data_ && page_range(size_, offset, len, &b, &l)) {
    ::madvise(data_ + b, l, MADV_DONTNEED);
  }
}

}  // namespace dfm
