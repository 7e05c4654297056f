// Fuzz target for the native safetensors header parser and its JSON parser: any
// input must either parse into a header whose every tensor lies inside the data
// section, or be refused with a DfError; never crash, hang or read out of bounds
// (run under AddressSanitizer + UndefinedBehaviorSanitizer).
//
// Built two ways by scripts/fuzz/run.sh: with clang's libFuzzer (-fsanitize=fuzzer)
// when available, else with driver.cc, a small seeded mutator for any compiler.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "io/json.h"
#include "io/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    dfm::SafetensorsHeader h = dfm::parse_safetensors_header(data, size);
    for (const dfm::TensorEntry& t : h.tensors) {
      // the parser's promise: every accepted range is inside the file
      if (t.begin > t.end || t.end > h.data_size || h.data_start + h.data_size != size) std::abort();
    }
  } catch (const dfm::DfError&) {
    // refused with a code and message: fine
  }
  try {
    dfm::parse_json(reinterpret_cast<const char*>(data), size);
  } catch (const dfm::DfError&) {
  }
  return 0;
}
