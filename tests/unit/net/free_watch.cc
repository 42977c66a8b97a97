#include "net/free_watch.h"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

// In a translation unit of their own: inlined next to a `new`, GCC takes the
// free() below for a mismatched deallocation.
namespace {
std::atomic<const void*> g_watched{nullptr};
std::atomic<bool> g_freed{false};

void note_free(void* p) {
  if (p != nullptr && p == g_watched.load(std::memory_order_relaxed)) g_freed = true;
}
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void operator delete(void* p) noexcept {
  note_free(p);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  note_free(p);
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  note_free(p);
  std::free(p);
}

namespace midge::net {

FreeWatch::FreeWatch(const void* block) {
  g_freed = false;
  g_watched = block;
}
FreeWatch::~FreeWatch() { g_watched = nullptr; }
bool FreeWatch::freed() const { return g_freed; }

}  // namespace midge::net
