// Memory mapping of a whole file for reading (RAII, private: the file is never modified). Pages are faulted in lazily,
// so a mapping costs address space, not memory; release() drops resident pages
// of a range from this process (they stay in the page cache) to keep RSS bounded
// while streaming through files larger than RAM.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dfm {

// Drops this process's resident pages of the whole pages inside [p, p+len) when
// they lie in a live MappedFile (file-backed and unmodified, so they fault back in
// from the page cache if read again). Does nothing for any other memory, where
// MADV_DONTNEED would discard data. Safe to call from any thread.
void release_if_mapped(const void* p, size_t len);

// Where [p, p+len) lies when it is inside a live MappedFile: the file's open
// descriptor (valid while the mapping lives), the byte offset of p in the file and
// the file's path. Readers use it to pread() a mapped tensor instead of faulting
// its pages (no SIGBUS on a truncated file, no page-table work, bounded RSS).
struct FileRegion {
  int fd = -1;
  uint64_t offset = 0;
  std::string path;
};
bool mapped_region(const void* p, size_t len, FileRegion* out);

// What a file is at a moment: which inode, how large, when last modified. Compared
// before and after a read to detect an input changed or replaced meanwhile.
struct FileIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
};

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  // Writable alias for zero-copy JS views: writes land in private copy-on-write
  // pages and never reach the file.
  uint8_t* mutable_data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Hints that [offset, offset+len) will be read soon / sequentially.
  void will_need(size_t offset, size_t len) const;
  // Drops this process's resident pages of [offset, offset+len).
  void release(size_t offset, size_t len) const;

  // The open file as it was when mapped, and as it is now (fstat of the kept descriptor).
  const FileIdentity& identity_at_open() const { return opened_; }
  FileIdentity identity_now() const;

 private:
  std::string path_;
  int fd_ = -1;
  int guard_slot_ = -1;
  FileIdentity opened_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dfm
