// safetensors header parsing and validation (docs/design.md §2). Every offset read
// from the file is checked before any tensor byte is touched.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dfm {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // 100 MB

// Size in bits of one element of a safetensors dtype; 0 if the dtype is unknown.
int dtype_bits(const std::string& dtype);

struct TensorEntry {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0;  // relative to the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t header_len = 0;
  uint64_t data_start = 0;  // 8 + header_len
  uint64_t data_size = 0;   // file size - data_start
  std::vector<TensorEntry> tensors;  // in header order
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Validates and parses the header of a safetensors file held in bytes[0, size).
// Throws DfError with one of: TooSmall, HeaderTooLarge, HeaderPastEnd, InvalidJson,
// InvalidUtf8, DuplicateTensor, InvalidEntry, InvalidMetadata, UnknownDtype,
// InvalidShape, InvalidOffsets, OffsetsOutOfRange, SizeMismatch, Overlap, Gap,
// TrailingBytes.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size);

}  // namespace dfm
