// A histogram of durations with fixed bucket bounds, written by one thread
// and read by others (for metrics). The counters are relaxed atomics updated
// with a plain load and store: the writer pays no locked instruction, a
// reader sees values at most a moment old.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace midge::util {

class Histogram {
 public:
  // Upper bounds (inclusive) of the buckets, in nanoseconds: 5 us to 1 s.
  // A last bucket counts everything above (+Inf).
  static constexpr std::array<uint64_t, 16> kBoundsNs = {
      5'000,      10'000,     25'000,     50'000,      100'000,     250'000,     500'000,     1'000'000,
      2'500'000,  5'000'000,  10'000'000, 25'000'000,  50'000'000,  100'000'000, 250'000'000, 1'000'000'000};
  static constexpr size_t kBuckets = kBoundsNs.size() + 1;

  // Owner thread only.
  void record(uint64_t ns) {
    size_t i = 0;
    while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
    bump(counts_[i], 1);
    bump(sum_ns_, ns);
  }

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};  // per bucket, not cumulative
    uint64_t sum_ns = 0;
  };
  // Any thread.
  Snapshot snapshot() const {
    Snapshot s;
    for (size_t i = 0; i < kBuckets; ++i) s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  static void bump(std::atomic<uint64_t>& c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace midge::util
