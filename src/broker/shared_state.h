// State shared by all workers: settings, retained messages, shared
// subscription groups and every worker's counters. Everything here is either
// immutable after start, atomic, or behind its own lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "broker/authenticator.h"
#include "broker/message.h"
#include "broker/retained_store.h"
#include "broker/stats.h"
#include "protocol/packets.h"
#include "util/time.h"

namespace midge::broker {

// Broker settings (filled from the configuration by the server).
struct Settings {
  bool allow_anonymous = true;
  uint32_t max_queued_messages = 1000;  // 0 = unlimited
  uint64_t max_queued_bytes = 0;        // 0 = unlimited
  bool queue_qos0_messages = false;
  uint16_t max_inflight_messages = 20;  // 0 = unlimited
  uint32_t message_size_limit = 0;      // payload bytes, 0 = unlimited
  uint32_t max_packet_size = 0;         // 0 = unlimited
  uint16_t max_keepalive = 65535;
  std::optional<uint64_t> persistent_client_expiration;  // seconds
  uint32_t sys_interval = 10;           // seconds, 0 = no $SYS
  bool retain_available = true;
  uint8_t max_qos = 2;
  bool allow_zero_length_clientid = true;
  std::string auto_id_prefix = "auto-";
  uint16_t max_topic_alias = 10;        // aliases a client may use toward us
  // Output buffered for one connection beyond which QoS 0 messages to it are
  // dropped (the slow-consumer policy, see README).
  size_t max_pending_output = 1u << 20;
  bool connection_messages = true;  // log connects and disconnects
  // A CONNECT with a client id whose session belongs to another user name
  // is refused (not authorised) instead of taking that session over.
  bool refuse_cross_user_takeover = false;
  std::string version = "midge version 0.1.0";
};

// A member of a $share group, which may live on any worker.
struct SharedMember {
  unsigned worker = 0;
  std::string client_id;
  uint8_t qos = 0;
  uint32_t subscription_id = 0;
  bool online = true;
};

class SharedSubscriptions {
 public:
  // Returns true when the member is new to that group.
  bool add(const std::string& group, const std::string& filter, const SharedMember& member);
  bool remove(const std::string& group, const std::string& filter, const std::string& client_id);
  void set_online(const std::string& client_id, bool online);
  bool empty() const { return groups_count_.load(std::memory_order_relaxed) == 0; }

  // For each group with a filter matching `topic`, picks one member (round
  // robin, preferring online members) [MQTT-4.8.2] and calls visit(member).
  template <typename Visit>
  void pick(std::string_view topic, Visit&& visit);

 private:
  struct Group {
    std::string filter;
    std::vector<SharedMember> members;
    size_t next = 0;
  };
  std::mutex mutex_;
  std::map<std::string, Group> groups_;  // key "group\0filter"; guarded by mutex_
  std::atomic<size_t> groups_count_{0};
};

struct SharedState {
  explicit SharedState(Settings s) : settings(std::move(s)) {}
  const Settings settings;
  RetainedStore retained;
  SharedSubscriptions shared_subscriptions;
  std::vector<Stats*> worker_stats;  // filled before workers start
  TimePoint start_time{};
  std::atomic<int64_t> clients_maximum{0};
  // Checks the credentials of named clients; null when nothing can vouch
  // for a user name (no password_file). Set by the server before the
  // workers start; thread-safe (a reload happens inside it).
  std::shared_ptr<Authenticator> authenticator;
};

}  // namespace midge::broker

#include "broker/shared_subscriptions_impl.h"
