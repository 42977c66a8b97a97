// A summary of which topics one worker's subscriptions can match, readable
// by the other workers without locks: a publishing worker skips handing a
// message to a worker whose summary says no subscription there can match.
// False positives only cost a useless hand-off; there are no false negatives.
//
// Filters are summarised three ways: one starting with a wildcard may match
// anything; an exact filter sets a bit for its whole topic; a filter with a
// wildcard further down sets a bit for its first level.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>

#include "util/string_hash.h"

namespace midge::broker {

class Interest {
 public:
  Interest() = default;
  Interest(const Interest&) = delete;
  Interest& operator=(const Interest&) = delete;

  // Owner thread only.
  void add(std::string_view filter) { update(filter, +1); }
  void remove(std::string_view filter) { update(filter, -1); }

  // Any thread.
  bool may_match(std::string_view topic) const {
    if (wild_first_.load(std::memory_order_acquire) > 0) return true;
    if (test(exact_bits_, hash(topic))) return true;
    return test(prefix_bits_, hash(topic.substr(0, topic.find('/'))));
  }

 private:
  static constexpr size_t kBits = 4096;
  using Bits = std::array<std::atomic<uint64_t>, kBits / 64>;

  // Keyed: a client cannot choose topics that set every worker's bits.
  static size_t hash(std::string_view s) { return util::hash_bytes(s) % kBits; }
  static bool test(const Bits& bits, size_t i) {
    return (bits[i / 64].load(std::memory_order_acquire) >> (i % 64)) & 1u;
  }

  void update(std::string_view filter, int delta) {
    const size_t slash = filter.find('/');
    const std::string_view first = filter.substr(0, slash);
    if (first == "+" || first == "#") {
      wild_first_.fetch_add(static_cast<uint32_t>(delta), std::memory_order_acq_rel);
      return;
    }
    const bool exact = filter.find_first_of("+#") == std::string_view::npos;
    if (exact) {
      bump(exact_bits_, exact_count_, hash(filter), delta);
      // "a/#" also matches "a": covered by the prefix bit below for "a/#",
      // nothing to add for exact filters.
    } else {
      bump(prefix_bits_, prefix_count_, hash(first), delta);
    }
  }

  static void bump(Bits& bits, std::array<uint32_t, kBits>& counts, size_t i, int delta) {
    const uint32_t before = counts[i];
    counts[i] = before + static_cast<uint32_t>(delta);
    const uint64_t mask = uint64_t{1} << (i % 64);
    if (before == 0 && counts[i] > 0) bits[i / 64].fetch_or(mask, std::memory_order_seq_cst);
    if (before > 0 && counts[i] == 0) bits[i / 64].fetch_and(~mask, std::memory_order_seq_cst);
  }

  std::atomic<uint32_t> wild_first_{0};
  Bits exact_bits_{};
  Bits prefix_bits_{};
  std::array<uint32_t, kBits> exact_count_{};   // owner thread only
  std::array<uint32_t, kBits> prefix_count_{};  // owner thread only
};

}  // namespace midge::broker
