// Whether one heap block was freed, seen from outside. Message has no public
// reference count, so net_test replaces the global allocation functions
// (free_watch.cc: they forward to malloc/free) and notes when the watched
// address is freed. Message blocks above 512 bytes go straight to
// ::operator delete (message.cc recycles smaller ones), so only those can be
// watched.
#pragma once

namespace midge::net {

// Watches one block at a time (single-threaded tests).
class FreeWatch {
 public:
  explicit FreeWatch(const void* block);
  ~FreeWatch();
  FreeWatch(const FreeWatch&) = delete;
  FreeWatch& operator=(const FreeWatch&) = delete;
  bool freed() const;
};

}  // namespace midge::net
