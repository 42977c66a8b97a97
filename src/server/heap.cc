#include "server/heap.h"

#include <malloc.h>

namespace midge::server {

HeapTrimmer::HeapTrimmer() {
  // Fixed values also stop glibc's dynamic thresholds from moving them.
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(kBusyRetention));
  mallopt(M_TOP_PAD, 1 << 20);
  // Output buffers of a few hundred KiB come from the heap too, not from
  // an mmap and munmap (a TLB flush) each time a connection drains.
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(kBusyRetention));
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
