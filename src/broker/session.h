// A client session (MQTT 4.1): lives on the worker that owns its client id,
// outlives network connections when it is persistent. Owned by one worker
// thread; never touched by another.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/authenticator.h"
#include "broker/authorizer.h"
#include "broker/link.h"
#include "broker/message.h"
#include "protocol/packets.h"
#include "util/fifo.h"
#include "util/string_hash.h"
#include "util/time.h"

namespace midge::broker {

inline constexpr uint32_t kSessionNeverExpires = 0xFFFFFFFF;

// One message on its way to this session's client.
struct Delivery {
  MessagePtr message;
  uint8_t qos = 0;
  bool retain = false;
  std::vector<uint32_t> subscription_ids;
  bool from_retained = false;  // sent because of a new subscription
  // Its records in the store (Journal::put_delivery); 0: not stored.
  uint64_t store_seq = 0;
  bool state_stored = false;  // a Journal::put_inflight record exists too
  // QoS 1/2: its packet id, given when it was queued or sent (0: not yet;
  // see Broker::next_packet_id).
  uint16_t packet_id = 0;
  // Sent at once at QoS 1 to a connected durable session and not journaled
  // yet: if its PUBACK comes within the grace it never is (Broker::end_turn).
  bool deferred = false;
};

// What a queued Delivery costs against max_queued_bytes: the payload and
// its subscription identifiers, both chosen by clients (review M4).
inline size_t queued_size(const Delivery& d) {
  return d.message->payload.size() + d.subscription_ids.size() * sizeof(uint32_t);
}

struct InflightOut {
  uint16_t packet_id = 0;
  uint32_t payload_bytes = 0;  // counted in Session::inflight_bytes until acknowledged
  Delivery delivery;
  bool released = false;  // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
};

struct SessionSubscription {
  protocol::SubscribeOptions options;
  uint32_t subscription_id = 0;
};

struct Session;
// The broker's timers (delayed wills, session expiry): one entry at most per
// session, re-armed in place (review M5).
using SessionTimers = std::multimap<TimePoint, Session*>;

// Packet ids of incoming QoS 2 messages awaiting PUBREL: a hash set (no
// linear search), allocated only once a client uses QoS 2 (most never do:
// an idle session pays one pointer).
class PacketIdSet {
 public:
  bool insert(uint16_t id) { return set().insert(id).second; }
  size_t erase(uint16_t id) { return ids_ ? ids_->erase(id) : 0; }
  size_t count(uint16_t id) const { return ids_ ? ids_->count(id) : 0; }
  size_t size() const { return ids_ ? ids_->size() : 0; }
  bool empty() const { return size() == 0; }
  template <typename F>
  void for_each(F&& f) const {
    if (ids_) for (uint16_t id : *ids_) f(id);
  }

 private:
  std::unordered_set<uint16_t>& set() {
    if (!ids_) ids_ = std::make_unique<std::unordered_set<uint16_t>>();
    return *ids_;
  }
  std::unique_ptr<std::unordered_set<uint16_t>> ids_;
};

// Idle connections cost what their Session and Connection hold: fields are
// grouped by size so that padding does not add to it.
struct Session {
  std::string client_id;
  // Of the last CONNECT; null for anonymous clients.
  std::unique_ptr<const std::string> username;
  // What the client may publish and read, from its last CONNECT; null when
  // no ACL applies (everything allowed).
  std::unique_ptr<ClientAccess> access;
  Link* link = nullptr;  // null while offline

  // Seconds the session survives its connection; 0 = ends with it,
  // kSessionNeverExpires = never (v3 persistent sessions, subject to
  // persistent_client_expiration).
  uint32_t expiry_interval = 0;
  protocol::Version version = protocol::Version::kV311;
  bool timer_armed : 1 = false;
  bool request_problem_information : 1 = true;  // of the current connection
  bool stored : 1 = false;  // has records in the store (Journal::put_session)
  // Packet ids (Broker::next_packet_id): some queued QoS 1/2 message waits
  // without an id; the ids held are not in the order they were given.
  bool queue_lacks_ids : 1 = false;
  bool ids_unordered : 1 = false;
  uint16_t last_packet_id = 0;
  // PUBACKs of this connection held until the deliveries they cover are
  // written or acknowledged (Broker::delayed_acks_); while any is held, later
  // ones wait behind it, in order [MQTT-4.6.0-2].
  uint32_t delayed_acks = 0;
  MaybeTime expires_at;  // set while offline
  SessionTimers::iterator timer;        // valid while timer_armed

  std::map<std::string, SessionSubscription, std::less<>> subscriptions;

  // Outgoing QoS 1/2 in flight, in send order (redelivered in this order).
  util::Fifo<InflightOut> inflight;
  size_t inflight_bytes = 0;  // payload bytes in `inflight` (max_inflight_bytes)
  util::Fifo<Delivery> queue;  // waiting for the in-flight window or a connection
  size_t queued_bytes = 0;
  // Retained messages waiting in `queue` to be replayed for a new
  // subscription (they go out as the output drains); they are references
  // to messages of the retained store, bounded by kMaxQueuedReplays and not
  // counted in max_queued_messages/bytes.
  uint32_t queued_replays = 0;
  // After a reconnect, the last `resend_count` in-flight messages still wait
  // to be sent again: they go out as the output bound allows (at most the
  // window).
  uint16_t resend_count = 0;

  // Per network connection (reset by every CONNECT).
  uint16_t send_window = 65535;        // min(client Receive Maximum, max_inflight_messages)
  uint32_t client_max_packet = 0;      // 0 = no limit
  uint16_t client_alias_max = 0;       // aliases we may use toward the client
  uint16_t keep_alive = 0;
  // The stamp of the client's password file entry at its last CONNECT
  // (Authenticator::credential_stamp, cut to 32 bits; 0 without one): a
  // reload compares it again (Broker::revalidate).
  uint32_t credential_stamp = 0;
  // Scratch for de-duplicating overlapping subscriptions in one publish.
  uint32_t match_index = 0;
  uint64_t match_stamp = 0;

  // Incoming QoS 2 packet ids awaiting PUBREL [MQTT-4.3.3]; at most 65535.
  PacketIdSet incoming_qos2;

  std::unique_ptr<protocol::Will> will;  // on the heap: most sessions have none
  MaybeTime will_at;  // delayed will pending (v5 will delay)

  // Topic aliases of the current connection; allocated on first use. The
  // names kept for outgoing aliases are bounded in bytes (review L5).
  static constexpr size_t kMaxAliasBytes = 256 * 1024;
  struct Aliases {
    util::StringMap<uint16_t> out;
    size_t out_bytes = 0;  // topic bytes held by `out` (bounded, review L5)
    std::vector<std::string> in;  // index = alias - 1
  };
  std::unique_ptr<Aliases> aliases;
  Aliases& alias_state() {
    if (!aliases) aliases = std::make_unique<Aliases>();
    return *aliases;
  }
};

}  // namespace midge::broker
