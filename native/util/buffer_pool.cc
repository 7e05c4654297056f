#include "util/buffer_pool.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace dfm {

namespace {
constexpr size_t kAlign = 4096;
constexpr size_t kPoolBytes = size_t(64) << 20;  // kept at most
std::mutex g_mutex;
std::vector<std::pair<size_t, void*>>& pool() {
  static std::vector<std::pair<size_t, void*>>* p = new std::vector<std::pair<size_t, void*>>();  // never destroyed
  return *p;
}
size_t g_bytes = 0;
}  // namespace

void* pool_take(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto& p = pool();
    for (size_t i = p.size(); i-- > 0;) {  // the most recently returned first: its pages are warmest
      if (p[i].first == bytes) {
        void* b = p[i].second;
        g_bytes -= bytes;
        p.erase(p.begin() + static_cast<std::ptrdiff_t>(i));
        return b;
      }
    }
  }
  void* b = nullptr;
  if (::posix_memalign(&b, kAlign, bytes == 0 ? kAlign : bytes) != 0) throw std::bad_alloc();
  return b;
}

void pool_give(size_t bytes, void* b) {
  if (b == nullptr) return;
  if (bytes > kPoolBytes) {
    std::free(b);
    return;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& p = pool();
  while (!p.empty() && g_bytes + bytes > kPoolBytes) {  // oldest out
    g_bytes -= p.front().first;
    std::free(p.front().second);
    p.erase(p.begin());
  }
  p.emplace_back(bytes, b);
  g_bytes += bytes;
}

}  // namespace dfm
