// State shared by all workers: settings, retained messages, shared
// subscription groups and every worker's counters. Everything here is either
// immutable after start, atomic, or behind its own lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <string>
#include <vector>

#include "broker/authenticator.h"
#include "broker/message.h"
#include "broker/retained_store.h"
#include "broker/stats.h"
#include "protocol/packets.h"
#include "util/log_type.h"
#include "util/string_hash.h"
#include "util/time.h"

namespace midge::broker {

// Broker settings (filled from the configuration by the server).
struct Settings {
  bool allow_anonymous = true;
  uint32_t max_queued_messages = 1000;  // 0 = unlimited
  uint64_t max_queued_bytes = 0;        // 0 = unlimited
  bool queue_qos0_messages = false;
  bool upgrade_outgoing_qos = false;  // deliver at the granted QoS (Mosquitto option, non-standard)
  // Before a retained message goes out, its publisher's write access is
  // checked again (the ACL may have changed since).
  bool check_retain_source = false;
  uint16_t max_inflight_messages = 20;  // 0 = unlimited
  // Payload bytes of outgoing QoS 1/2 messages in flight per client; 0 =
  // unlimited. As Mosquitto: one more goes out while fewer are in flight.
  uint64_t max_inflight_bytes = 0;
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
  // The bound on one connection's pending output, in bytes: a QoS 0
  // delivery that would take it past this is dropped (and counted), a QoS
  // 1/2 one waits in the session queue. One packet larger than the bound
  // still goes out when nothing is pending.
  size_t max_pending_output = 1u << 20;
  uint32_t max_subscriptions_per_client = 10000;  // 0 = unlimited
  size_t max_shared_groups = 65536;               // $share groups in the whole broker
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
  std::string group_key;  // "group\0filter", set by SharedSubscriptions
};

// Every $share group of the broker, indexed by filter in a topic tree so a
// publish visits only the groups whose filter matches (review M4). Read by
// every publish under a shared lock; changed by SUBSCRIBE, UNSUBSCRIBE,
// connects and disconnects under the exclusive lock.
class SharedSubscriptions {
 public:
  SharedSubscriptions();
  ~SharedSubscriptions();
  // Adds or updates a member. Returns false, changing nothing, when the
  // group is new and `max_groups` groups exist already.
  bool add(const std::string& group, const std::string& filter, const SharedMember& member,
           size_t max_groups);
  bool remove(const std::string& group, const std::string& filter, const std::string& client_id);
  void set_online(const std::string& client_id, bool online);
  bool empty() const { return groups_count_.load(std::memory_order_relaxed) == 0; }
  size_t group_count() const { return groups_count_.load(std::memory_order_relaxed); }

  // For each group with a filter matching `topic`, picks one member (round
  // robin, preferring online members) [MQTT-4.8.2] and calls visit(member).
  template <typename Visit>
  void pick(std::string_view topic, Visit&& visit);
  // Another member of the group `gone` was picked from, when `gone` ended
  // before the message reached it (review L13).
  std::optional<SharedMember> pick_other(const SharedMember& gone);

 private:
  struct Group {
    std::string key;
    std::vector<SharedMember> members;
    std::atomic<size_t> next{0};  // round robin; advanced under the shared lock
  };
  struct Node {
    util::StringMap<std::unique_ptr<Node>> children;
    std::vector<Group*> groups;
    Node* parent = nullptr;
    std::string_view level;
  };
  static const SharedMember& choose(Group& group, const std::string* skip);
  template <typename Visit>
  void match(std::string_view topic, Visit&& visit) const;
  Node* node_for(std::string_view filter);
  void unlink(Group* group, std::string_view filter);

  mutable std::shared_mutex mutex_;
  util::StringMap<std::unique_ptr<Group>> groups_;       // guarded by mutex_
  std::unique_ptr<Node> root_;                           // guarded by mutex_
  util::StringMap<std::vector<Group*>> groups_of_client_;  // guarded by mutex_
  std::atomic<size_t> groups_count_{0};
};

struct SharedState {
  explicit SharedState(Settings s) : settings(std::move(s)) {}
  // The settings at start-up, which each worker's Broker copies; after a
  // reload (SIGHUP) the ones in force are Broker::settings().
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
  // Decides what each client may publish and read; null when there are no
  // rules (no acl_file): every topic is allowed. Set before the workers
  // start; thread-safe (a reload happens inside it).
  std::shared_ptr<Authorizer> authorizer;
  // The `log_type` set in force (util::LogType bits): a line of a type that is not logged is not
  // even built (subscribe lines are on the SUBSCRIBE path). Set by the server, also on reload.
  std::atomic<uint32_t> log_types{util::kDefaultLogTypes};
  // SIGHUPs the main thread has begun to handle (server.cc, before it
  // consumes the signal); each worker counts those it has applied
  // (net::Worker::reload_pending).
  std::atomic<uint64_t> reloads_begun{0};
  bool logs(util::LogType type) const { return (log_types.load(std::memory_order_relaxed) & util::log_bit(type)) != 0; }
};

}  // namespace midge::broker

#include "broker/shared_subscriptions_impl.h"
