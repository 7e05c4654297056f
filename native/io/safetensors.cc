#include "io/safetensors.h"

#include <algorithm>
#include <cstring>

#include "io/json.h"
#include "util/error.h"

namespace dfm {

int dtype_bits(const std::string& d) {
  static const std::pair<const char*, int> kTable[] = {
      {"BOOL", 8},  {"U8", 8},   {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
      {"I16", 16},  {"U16", 16}, {"F16", 16}, {"BF16", 16},   {"I32", 32},    {"U32", 32},
      {"F32", 32},  {"F64", 64}, {"I64", 64}, {"U64", 64},    {"C64", 64},    {"F4", 4},
      {"F6_E2M3", 6}, {"F6_E3M2", 6}};
  for (const auto& e : kTable) {
    if (d == e.first) return e.second;
  }
  return 0;
}

namespace {

constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

[[noreturn]] void reject(const char* code, const std::string& msg, const std::string& tensor = "") {
  throw DfError(code, msg, tensor);
}

TensorEntry parse_entry(const std::string& name, const Json& v) {
  const std::string who = "tensor \"" + name + "\"";
  if (v.kind != Json::Kind::Object) reject("InvalidEntry", who + " is not a JSON object", name);
  const Json* dtype = v.find("dtype");
  const Json* shape = v.find("shape");
  const Json* offsets = v.find("data_offsets");
  if (!dtype || dtype->kind != Json::Kind::String) reject("InvalidEntry", who + " has no string \"dtype\"", name);
  if (!shape || shape->kind != Json::Kind::Array) reject("InvalidEntry", who + " has no array \"shape\"", name);
  if (!offsets || offsets->kind != Json::Kind::Array) {
    reject("InvalidEntry", who + " has no array \"data_offsets\"", name);
  }
  TensorEntry t;
  t.name = name;
  t.dtype = dtype->string;
  const int bits = dtype_bits(t.dtype);
  if (bits == 0) reject("UnknownDtype", who + " has unknown dtype \"" + t.dtype + "\"", name);
  uint64_t numel = 1;
  bool overflow = false, has_zero = false;
  for (const Json& d : shape->array) {
    if (d.kind != Json::Kind::Number || !d.is_uint) {
      reject("InvalidShape", who + " has a shape entry that is not a non-negative integer", name);
    }
    // Shapes reach JavaScript as doubles: a dimension above 2^53 - 1 would be shown rounded.
    if (d.uint > kMaxSafeInteger) {
      reject("InvalidShape", who + " has dimension " + std::to_string(d.uint) + ", above 2^53 - 1 (the largest size dfmerge handles exactly)", name);
    }
    t.shape.push_back(d.uint);
    if (d.uint == 0) has_zero = true;
    if (d.uint != 0 && numel > UINT64_MAX / d.uint) overflow = true;
    numel *= d.uint;
  }
  if (has_zero) numel = 0;
  if (overflow && !has_zero) reject("InvalidShape", who + " has a shape whose element count overflows", name);
  if (offsets->array.size() != 2) reject("InvalidOffsets", who + " needs data_offsets [begin, end]", name);
  for (const Json& o : offsets->array) {
    if (o.kind != Json::Kind::Number || !o.is_uint) {
      reject("InvalidOffsets", who + " has a data offset that is not a non-negative integer", name);
    }
  }
  t.begin = offsets->array[0].uint;
  t.end = offsets->array[1].uint;
  if (t.end < t.begin) {
    reject("InvalidOffsets", who + " has data_offsets end " + std::to_string(t.end) + " before begin " +
                                 std::to_string(t.begin), name);
  }
  if (numel > UINT64_MAX / static_cast<uint64_t>(bits)) {
    reject("InvalidShape", who + " has a shape whose byte size overflows", name);
  }
  const uint64_t total_bits = numel * static_cast<uint64_t>(bits);
  if (total_bits % 8 != 0) reject("InvalidShape", who + " does not fill a whole number of bytes", name);
  if (t.end - t.begin != total_bits / 8) {
    reject("SizeMismatch", who + " has " + std::to_string(t.end - t.begin) + " bytes but shape and dtype " +
                               t.dtype + " need " + std::to_string(total_bits / 8), name);
  }
  return t;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size) {
  if (size < 8) reject("TooSmall", "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  SafetensorsHeader h;
  h.header_len = read_u64_le(bytes);
  if (h.header_len > kMaxHeaderBytes) {
    reject("HeaderTooLarge", "header length " + std::to_string(h.header_len) + " exceeds the 100 MB limit");
  }
  if (h.header_len > size - 8) {
    reject("HeaderPastEnd", "header length " + std::to_string(h.header_len) + " runs past the end of the " +
                                std::to_string(size) + "-byte file");
  }
  h.data_start = 8 + h.header_len;
  h.data_size = size - h.data_start;
  Json root;
  try {
    root = parse_json(reinterpret_cast<const char*>(bytes + 8), h.header_len);
  } catch (const DfError& e) {
    if (e.code() != "DuplicateTopLevelKey") throw;
    reject("DuplicateTensor", "tensor \"" + e.tensor() + "\" is named twice in the header", e.tensor());
  }
  if (root.kind != Json::Kind::Object) reject("InvalidJson", "header is not a JSON object");

  for (const auto& kv : root.object) {
    if (kv.first == "__metadata__") {
      if (kv.second.kind != Json::Kind::Object) reject("InvalidMetadata", "__metadata__ is not a JSON object");
      for (const auto& m : kv.second.object) {
        if (m.second.kind != Json::Kind::String) {
          reject("InvalidMetadata", "__metadata__ value of \"" + m.first + "\" is not a string");
        }
        h.metadata.emplace_back(m.first, m.second.string);
      }
      continue;
    }
    h.tensors.push_back(parse_entry(kv.first, kv.second));
  }

  // Entries must tile the data section exactly: sorted by offset, no overlap, no gap.
  std::vector<const TensorEntry*> order;
  order.reserve(h.tensors.size());
  for (const auto& t : h.tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  // Range first, for every tensor: a tensor moved past the end must be named itself,
  // not the neighbour whose offsets now leave a gap.
  for (const TensorEntry& t : h.tensors) {
    if (t.end > h.data_size) {
      reject("OffsetsOutOfRange", "tensor \"" + t.name + "\" data_offsets [" + std::to_string(t.begin) + ", " +
                                      std::to_string(t.end) + ") run past the " + std::to_string(h.data_size) +
                                      "-byte data section", t.name);
    }
  }
  uint64_t cursor = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry* t : order) {
    if (t->begin < cursor) {
      reject("Overlap", "tensor \"" + t->name + "\" overlaps tensor \"" + prev->name + "\"", t->name);
    }
    if (t->begin > cursor) {
      reject("Gap", "unused bytes [" + std::to_string(cursor) + ", " + std::to_string(t->begin) +
                        ") before tensor \"" + t->name + "\"", t->name);
    }
    cursor = t->end;
    prev = t;
  }
  if (cursor != h.data_size) {
    reject("TrailingBytes", std::to_string(h.data_size - cursor) + " bytes after the last tensor are not described by the header");
  }
  return h;
}

}  // namespace dfm
