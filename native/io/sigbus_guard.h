// A SIGBUS guard for memory-mapped inputs. Reading a mapped page whose file was
// truncated (or rewritten shorter) by another program raises SIGBUS, which would
// kill the process by signal with no word of which file. While a MappedFile is
// live its address range is registered here; a SIGBUS inside a registered range
// prints the file's path and what happened, and exits with status 1. Partial
// outputs carry the PID in their names and are removed by the next run. A SIGBUS
// anywhere else gets the previous (default) disposition.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dfm {

// Registers [begin, begin+len) as a mapping of `path` (the string must outlive the
// registration); returns a slot id for unregister, or -1 when the table is full
// (the mapping then works, unguarded).
int sigbus_register(const uint8_t* begin, size_t len, const char* path);
void sigbus_unregister(int slot);

}  // namespace dfm
