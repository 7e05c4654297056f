// A small strict JSON parser (RFC 8259) for safetensors headers. Unlike
// JSON.parse it rejects duplicate object keys, keeps non-negative integers as
// exact uint64 (file offsets can exceed 2^53), validates UTF-8, and bounds nesting.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dfm {

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;          // every number
  bool is_uint = false;       // number is a non-negative integer that fits uint64 exactly
  uint64_t uint = 0;          // its exact value when is_uint
  std::string string;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;  // keys unique, in file order

  const Json* find(const std::string& key) const;
};

// Parses text[0, len); trailing whitespace is allowed, anything else is an error.
// Throws DfError("InvalidJson" | "DuplicateKey" | "DuplicateTopLevelKey" | "InvalidUtf8")
// with the byte offset; a duplicated key is also given as the error's tensor().
Json parse_json(const char* text, size_t len);

}  // namespace dfm
