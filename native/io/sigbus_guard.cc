#include "io/sigbus_guard.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace dfm {

namespace {

constexpr int kSlots = 4096;

// Lock-free for the handler: begin == 0 marks a free slot; writers publish
// path and end before begin (release), the handler reads begin first (acquire).
struct Slot {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<const char*> path{nullptr};
};
Slot g_slots[kSlots];
std::mutex g_install_mutex;
bool g_installed = false;
struct sigaction g_previous;

void write_all(const char* s, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void on_sigbus(int sig, siginfo_t* info, void* ctx) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(info ? info->si_addr : nullptr);
  for (int i = 0; i < kSlots; ++i) {
    const uintptr_t b = g_slots[i].begin.load(std::memory_order_acquire);
    if (b == 0 || a < b || a >= g_slots[i].end.load(std::memory_order_relaxed)) continue;
    const char* path = g_slots[i].path.load(std::memory_order_relaxed);
    static const char kPre[] = "dfmerge: ";
    static const char kMsg[] =
        ": the file was truncated or rewritten by another program while dfmerge was reading it "
        "(SIGBUS on its memory mapping); nothing was completed from it. Keep inputs unchanged while a command runs.\n";
    write_all(kPre, sizeof(kPre) - 1);
    if (path) write_all(path, strlen(path));
    write_all(kMsg, sizeof(kMsg) - 1);
    _exit(1);
  }
  // Not ours: restore what was there and return, so the fault repeats under it.
  sigaction(SIGBUS, &g_previous, nullptr);
  (void)sig;
  (void)ctx;
}

void install_once() {
  std::lock_guard<std::mutex> lock(g_install_mutex);
  if (g_installed) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &g_previous) == 0) g_installed = true;
}

}  // namespace

int sigbus_register(const uint8_t* begin, size_t len, const char* path) {
  if (begin == nullptr || len == 0) return -1;
  install_once();
  for (int i = 0; i < kSlots; ++i) {
    uintptr_t expected = 0;
    // Claim with a sentinel (1 never lies inside a mapping's range check: end is set after).
    if (g_slots[i].begin.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      g_slots[i].end.store(0, std::memory_order_relaxed);
      g_slots[i].path.store(path, std::memory_order_relaxed);
      g_slots[i].end.store(reinterpret_cast<uintptr_t>(begin) + len, std::memory_order_relaxed);
      g_slots[i].begin.store(reinterpret_cast<uintptr_t>(begin), std::memory_order_release);
      return i;
    }
  }
  return -1;
}

void sigbus_unregister(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  g_slots[slot].end.store(0, std::memory_order_relaxed);
  g_slots[slot].path.store(nullptr, std::memory_order_relaxed);
  g_slots[slot].begin.store(0, std::memory_order_release);
}

}  // namespace dfm
