#include "server/heap.h"

#include <malloc.h>

namespace midge::server {

HeapTrimmer::HeapTrimmer() {
  // Each time a heap grows or shrinks, it keeps this much more: the churn of
  // blocks of tens of KiB stays within it. A fixed value also keeps glibc's
  // mmap threshold at 128 KiB (a larger block is mapped and unmapped).
  mallopt(M_TOP_PAD, static_cast<int>(kBusyRetention));
  // One arena for all threads, so that malloc_trim reaches every free page.
  mallopt(M_ARENA_MAX, 1);
  // While busy, free memory at the top stays up to this much: a 16 KB
  // fan-in's messages in flight (8 publishers x 100) rise and fall by
  // ~13 MB, and each time they rose again their pages faulted back in.
  // The quiet-time malloc_trim returns it.
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(kBusyTrimThreshold));
}

void HeapTrimmer::tick(const broker::SharedState& shared) {
  if (++ticks_ < kTicksPerCheck) return;
  ticks_ = 0;
  uint64_t bytes = 0;
  for (const broker::Stats* s : shared.worker_stats) {
    bytes += s->bytes_sent.load(std::memory_order_relaxed) + s->bytes_received.load(std::memory_order_relaxed);
  }
  const uint64_t moved = bytes - last_bytes_;
  last_bytes_ = bytes;
  if (moved >= kQuietBytes) {
    busy_since_trim_ = true;
  } else if (busy_since_trim_) {
    busy_since_trim_ = false;
    malloc_trim(0);
  }
}

}  // namespace midge::server
