// Counters of one worker. Written by the owning worker only (relaxed
// atomics so the $SYS publisher on another worker can read them), summed
// over all workers for $SYS.
#pragma once

#include <atomic>
#include <cstdint>

namespace midge::broker {

struct Stats {
  using Counter = std::atomic<uint64_t>;
  Counter messages_received{0};   // all packets received
  Counter messages_sent{0};       // all packets sent
  Counter publish_received{0};
  Counter publish_sent{0};
  Counter publish_dropped{0};
  Counter publish_denied{0};      // PUBLISH refused by the ACL (write)
  Counter subscribe_denied{0};    // filters refused by the ACL (read)
  Counter publish_bytes_received{0};
  Counter publish_bytes_sent{0};
  Counter bytes_received{0};
  Counter bytes_sent{0};
  Counter connections_total{0};   // CONNECTs accepted
  Counter sockets_total{0};       // sockets accepted
  std::atomic<int64_t> clients_connected{0};
  std::atomic<int64_t> clients_disconnected{0};  // persistent sessions without connection
  Counter clients_expired{0};
  std::atomic<int64_t> subscriptions{0};
  std::atomic<int64_t> shared_subscriptions{0};
  std::atomic<int64_t> stored_messages{0};       // queued + in flight
  std::atomic<int64_t> stored_bytes{0};
  // Connections the broker ended, by reason code (MQTT 5.0 section 2.4):
  // protocol errors, keep alive, takeover, refused CONNECTs...
  Counter disconnects[256]{};

  // Only the owning worker writes a counter, so a plain load + store (no
  // locked read-modify-write on the hot path) is enough; readers on other
  // threads see a value at most a moment old.
  static void add(Counter& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void add(std::atomic<int64_t>& c, int64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

}  // namespace midge::broker
