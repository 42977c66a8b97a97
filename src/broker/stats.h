// Counters of one worker. Written by the owning worker only (relaxed
// atomics so that the $SYS publisher on worker 0, and a metrics scrape on
// any worker, can read them), summed over all workers for $SYS and for
// /metrics (net/metrics.cc).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace midge::broker {

// Why an outgoing PUBLISH was dropped (counted in Stats::publish_dropped
// too, which $SYS publishes).
enum class DropReason : uint8_t {
  kOutputFull,        // QoS 0 beyond max_pending_output
  kQueueFull,         // max_queued_messages / max_queued_bytes
  kTooLarge,          // larger than the client's Maximum Packet Size
  kReplayLimit,       // retained replays beyond what a SUBSCRIBE may queue
  kStoreUnavailable,  // QoS 1/2 refused while the store cannot write
  kCount,
};
const char* drop_reason_name(DropReason reason);  // "output_full", ...

// What the clients of one listener exchanged on one worker (the worker
// owns it; Link::traffic_slot names it).
struct alignas(64) Traffic {
  using Counter = std::atomic<uint64_t>;
  Counter sockets{0};  // accepted
  Counter bytes_received{0};
  Counter bytes_sent{0};
  Counter publish_received[3]{};  // by QoS
  Counter publish_sent[3]{};
  void copy_from(const Traffic& o);
};

struct Stats {
  using Counter = std::atomic<uint64_t>;
  Counter messages_received{0};   // all packets received
  Counter messages_sent{0};       // all packets sent
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
  std::atomic<int64_t> queued_messages{0};    // in session queues
  std::atomic<int64_t> inflight_messages{0};  // sent, not yet acknowledged
  Counter publish_expired{0};                 // message expiry passed before delivery
  Counter dropped[static_cast<int>(DropReason::kCount)]{};
  // Connections the broker ended, by reason code (MQTT 5.0 section 2.4):
  // protocol errors, keep alive, takeover, refused CONNECTs...
  Counter disconnects[256]{};

  // Per listener: slot 0 for links of no listener (tests), then one per
  // listener. A plain array: the hot path indexes it (one load, no deque).
  Traffic& of(uint16_t slot) { return traffic_[slot]; }
  const Traffic& of(uint16_t slot) const { return traffic_[slot]; }
  size_t traffic_slots() const { return traffic_slots_; }
  // PUBLISH packets received and sent, over every slot and QoS: each is
  // counted once, in its listener's slot.
  uint64_t publish_received() const;
  uint64_t publish_sent() const;
  // Before the workers start (net::Worker::add_listener): one slot more;
  // returns its number.
  uint16_t add_traffic_slot();

  // Only the owning worker writes a counter, so a plain load + store (no
  // locked read-modify-write on the hot path) is enough; readers on other
  // threads see a value at most a moment old.
  static void add(Counter& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void add(std::atomic<int64_t>& c, int64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void drop(DropReason reason) {
    add(publish_dropped);
    add(dropped[static_cast<int>(reason)]);
  }

 private:
  std::unique_ptr<Traffic[]> traffic_ = std::make_unique<Traffic[]>(1);
  size_t traffic_slots_ = 1;
};

}  // namespace midge::broker
