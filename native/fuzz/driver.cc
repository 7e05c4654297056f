// A stand-in for libFuzzer where clang is not installed: runs the fuzz target on
// every seed file, then on seeded random mutations of them (bit flips, byte
// overwrites with interesting values, truncation, duplication, header-length
// edits) until a time or iteration budget is spent. Deterministic for a seed.
//
//   fuzz_driver SECONDS SEED FILE...
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
uint64_t g_state = 0;
uint64_t next() {  // xorshift64*
  g_state ^= g_state >> 12;
  g_state ^= g_state << 25;
  g_state ^= g_state >> 27;
  return g_state * 2685821657736338717ULL;
}
const char* kTokens[] = {"{", "}", "[", "]", ",", ":", "\"", "\\u0000", "\\ud800", "1e999", "-1", "18446744073709551616",
                         "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"F32\"", "\"BF16\"", "null", "\xff"};

void mutate(std::vector<uint8_t>& b) {
  const int n = 1 + static_cast<int>(next() % 4);
  for (int k = 0; k < n; ++k) {
    switch (next() % 7) {
      case 0: if (!b.empty()) b[next() % b.size()] ^= static_cast<uint8_t>(1u << (next() % 8)); break;
      case 1: if (!b.empty()) b[next() % b.size()] = static_cast<uint8_t>(next()); break;
      case 2: if (!b.empty()) b.resize(next() % b.size()); break;
      case 3: {
        const char* t = kTokens[next() % (sizeof(kTokens) / sizeof(kTokens[0]))];
        const size_t at = b.empty() ? 0 : next() % b.size();
        b.insert(b.begin() + static_cast<long>(at), t, t + std::strlen(t));
        break;
      }
      case 4: if (b.size() >= 8) { uint64_t v = next() % (b.size() * 2 + 16); std::memcpy(b.data(), &v, 8); } break;
      case 5: if (!b.empty() && b.size() < (1u << 20)) { const size_t at = next() % b.size(); b.insert(b.end(), b.begin() + static_cast<long>(at), b.end()); } break;
      case 6: if (b.size() > 16) { const size_t at = 8 + next() % (b.size() - 8); b.erase(b.begin() + static_cast<long>(at)); } break;
    }
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s SECONDS SEED FILE...\n", argv[0]);
    return 2;
  }
  const double seconds = std::atof(argv[1]);
  g_state = std::strtoull(argv[2], nullptr, 10) | 1;
  std::vector<std::vector<uint8_t>> seeds;
  for (int i = 3; i < argc; ++i) {
    std::ifstream f(argv[i], std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(seeds.back().data(), seeds.back().size());
  }
  const auto start = std::chrono::steady_clock::now();
  uint64_t runs = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    for (int r = 0; r < 256; ++r, ++runs) {
      std::vector<uint8_t> b = seeds[next() % seeds.size()];
      mutate(b);
      LLVMFuzzerTestOneInput(b.data(), b.size());
    }
  }
  std::printf("fuzz driver: %llu mutated inputs in %.0f s, no crash\n", static_cast<unsigned long long>(runs), seconds);
  return 0;
}
