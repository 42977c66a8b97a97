// How the broker's heap gives memory back to the system (glibc malloc).
//
// Every thread allocates from one arena (M_ARENA_MAX 1). glibc's default, an
// arena per thread, reserved 64 MiB of address space for each worker (the
// virtual size Mosquitto's tests bound at 25 MB), and malloc_trim cannot
// shrink the top of such an arena: each kept up to kBusyRetention after a
// burst. One arena costs nothing measurable (bench/README.md): the hot small
// blocks come from the per-thread tcache and the message-block free lists
// without the arena's lock.
//
// By default glibc returns the top of a heap to the system as soon as
// 128 KiB of it are free. Messages of tens of KiB, allocated and freed at
// every loop turn, then cost a page fault per 4 KiB each time they are made
// again: a third of the broker's time in a 16 KB fan-in. So the heap grows
// by kBusyRetention more than it needs (M_TOP_PAD), and gives its top back
// only once kBusyTrimThreshold of it is free (M_TRIM_THRESHOLD), keeping
// kBusyRetention; blocks of 128 KiB or more are mapped and unmapped as they
// come. Once the broker has been quiet for a second (less than kQuietBytes
// moved), every free page goes back (malloc_trim): RSS returns to where it
// was before a burst. With an arena per thread it could not: malloc_trim
// does not shrink a thread arena's top.
#pragma once

#include <cstddef>
#include <cstdint>

#include "broker/shared_state.h"

namespace midge::server {

class HeapTrimmer {
 public:
  static constexpr size_t kBusyRetention = 1u << 20;
  // 4 MiB: a slow consumer's flood may leave no more than that of free heap
  // resident until the quiet trim (test_limits.py bounds the growth to 16 MiB;
  // 16 MiB here made it fail under load).
  static constexpr size_t kBusyTrimThreshold = 4u << 20;
  static constexpr uint64_t kQuietBytes = 64u << 10;
  static constexpr int kTicksPerCheck = 10;  // ticks of the main loop (100 ms)

  // Sets the arena count and the retention; call before any thread starts.
  HeapTrimmer();
  // Called on every tick of the main loop.
  void tick(const broker::SharedState& shared);

 private:
  int ticks_ = 0;
  uint64_t last_bytes_ = 0;
  bool busy_since_trim_ = false;
};

}  // namespace midge::server
