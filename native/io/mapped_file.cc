#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "io/sigbus_guard.h"
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
// Live mappings, begin -> {end, descriptor, path}, for release_if_mapped() and mapped_region().
struct Live {
  uintptr_t end;
  int fd;
  const std::string* path;
};
std::mutex g_registry_mutex;
std::map<uintptr_t, Live>& registry() {
  static std::map<uintptr_t, Live> r;
  return r;
}
}  // namespace

void release_if_mapped(const void* p, size_t len) {
  const uintptr_t b = reinterpret_cast<uintptr_t>(p);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (b + page - 1) / page * page;  // whole pages inside the range
  const uintptr_t last = (b + len) / page * page;
  if (len == 0 || first >= last) return;
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  auto it = registry().upper_bound(b);
  if (it == registry().begin()) return;
  --it;
  if (b < it->first || b + len > it->second.end) return;  // not (entirely) inside one mapping
  ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

bool mapped_region(const void* p, size_t len, FileRegion* out) {
  const uintptr_t b = reinterpret_cast<uintptr_t>(p);
  if (p == nullptr) return false;
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  auto it = registry().upper_bound(b);
  if (it == registry().begin()) return false;
  --it;
  if (b < it->first || b >= it->second.end || len > it->second.end - b) return false;
  // (A stray write through a JS view lands in a private page the file never sees;
  // inputs are read-only by contract, so the file's bytes are the tensor's.)
  out->fd = it->second.fd;
  out->offset = static_cast<uint64_t>(b - it->first);
  out->path = *it->second.path;
  return true;
}

namespace {
FileIdentity identity_of(const struct stat& st) {
  FileIdentity id;
  id.dev = static_cast<uint64_t>(st.st_dev);
  id.ino = static_cast<uint64_t>(st.st_ino);
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  id.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec;
  return id;
}
}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
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
    const char* kind = S_ISDIR(st.st_mode) ? "a folder" : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                     : S_ISCHR(st.st_mode) ? "a character device" : S_ISBLK(st.st_mode) ? "a block device"
                     : S_ISSOCK(st.st_mode) ? "a socket" : "not a regular file";
    throw DfError("NotAFile", std::string("is ") + kind + ", expected a regular .safetensors file");
  }
  opened_ = identity_of(st);
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
    guard_slot_ = sigbus_register(data_, size_, path_.c_str());
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    registry()[reinterpret_cast<uintptr_t>(data_)] = Live{reinterpret_cast<uintptr_t>(data_) + size_, fd, &path_};
  }
  fd_ = fd;  // kept open for identity_now() and for pread (mapped_region)
}

FileIdentity MappedFile::identity_now() const {
  struct stat st;
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) {
    throw DfError("StatFailed", std::string("cannot stat the open file: ") + std::strerror(errno));
  }
  return identity_of(st);
}

MappedFile::~MappedFile() {
  if (fd_ >= 0) ::close(fd_);
  if (data_ == nullptr) return;
  sigbus_unregister(guard_slot_);
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    registry().erase(reinterpret_cast<uintptr_t>(data_));
  }
  ::munmap(data_, size_);
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
