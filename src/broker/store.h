// What the broker asks of durable storage (`persistence true`). The broker
// owns what is written and when; how it is kept belongs to an
// implementation wired by the server (today store::RocksStore, src/store).
//
// The promise (issue 12): an acknowledgement leaves only after what it
// acknowledges is written. Each worker records its changes in its own
// Journal while it handles a loop turn; the worker commits the journal
// before any byte of that turn reaches a socket (net::Worker::before_write),
// so acknowledgements wait for the write without being held anywhere.
//
// Deadlines (session expiry, will delay, message expiry) are TimePoints
// here; the store keeps them as wall-clock time and converts both ways, so
// the broker never reads a clock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/message.h"
#include "protocol/packets.h"
#include "util/time.h"

namespace midge::broker {

struct Delivery;
struct Session;
struct SessionSubscription;
struct RetainSource;

// --- What a worker writes -------------------------------------------------

// One worker's changes of one loop turn. Only that worker's thread calls it.
// Recording never fails; commit() writes everything recorded since the last
// commit as one atomic batch.
class Journal {
 public:
  virtual ~Journal() = default;

  // Retained messages, by topic. `source`: kept with check_retain_source
  // (its user name); null otherwise.
  virtual void put_retained(const Message& message, const RetainSource* source) = 0;
  virtual void erase_retained(std::string_view topic) = 0;

  // A persistent session's own fields (client id, protocol version, expiry
  // interval, user name, will, will delay, offline deadline, last packet
  // id), written by `worker`. Subscriptions and deliveries are separate
  // records.
  virtual void put_session(const Session& session, unsigned worker) = 0;
  // The session and every record of it (subscriptions, deliveries,
  // incoming QoS 2 ids).
  virtual void erase_session(std::string_view client_id) = 0;

  virtual void put_subscription(std::string_view client_id, std::string_view filter,
                                const SessionSubscription& subscription) = 0;
  virtual void erase_subscription(std::string_view client_id, std::string_view filter) = 0;

  // A message kept for a session (queued or in flight), under a sequence
  // number that grows in the order deliveries are made (Delivery::store_seq).
  // `packet_id`: the id it goes out with when it is sent at once (most
  // messages to a connected client: one record), 0 while it waits; a
  // waiting message may hold an id already (Delivery::packet_id), kept
  // with it (StoredDelivery::queued_packet_id).
  virtual void put_delivery(std::string_view client_id, uint64_t seq, const Delivery& delivery,
                            uint16_t packet_id) = 0;
  // Its in-flight state when that changes later: the packet id it went out
  // with, and for QoS 2 whether PUBREC came (PUBREL sent). A small record
  // of its own, so that sending or releasing does not write the payload
  // again; it overrides the packet id of put_delivery.
  virtual void put_inflight(std::string_view client_id, uint64_t seq, uint16_t packet_id,
                            bool released) = 0;
  // A QoS 2 message released: its message record goes, its in-flight state
  // stays until PUBCOMP.
  virtual void erase_delivery_message(std::string_view client_id, uint64_t seq) = 0;
  // Done (acknowledged, dropped or expired): its records go; `with_state`:
  // put_inflight wrote one for it (Delivery::state_stored).
  virtual void erase_delivery(std::string_view client_id, uint64_t seq, bool with_state) = 0;

  // Incoming QoS 2 packet ids awaiting PUBREL [MQTT-4.3.3-9].
  virtual void put_incoming(std::string_view client_id, uint16_t packet_id) = 0;
  virtual void erase_incoming(std::string_view client_id, uint16_t packet_id) = 0;

  // Messages handed to other workers (see Recovery::transits): `id` grows
  // per origin worker; `receivers` are the workers it went to, each with
  // the sequence number of that (origin, receiver) channel.
  struct Receiver {
    uint8_t worker = 0;
    uint64_t seq = 0;
  };
  virtual void put_transit(unsigned origin, uint64_t id, const Message& message,
                           const std::vector<Receiver>& receivers) = 0;
  // A $share delivery handed to the worker of the member it picked: one
  // receiver, and the member (client id, granted QoS, subscription id), so
  // that recovery delivers it to that member only.
  struct SharedTarget {
    std::string_view client_id;
    uint8_t qos = 0;
    uint32_t subscription_id = 0;
  };
  virtual void put_shared_transit(unsigned origin, uint64_t id, const Message& message, Receiver receiver,
                                  const SharedTarget& target) = 0;
  // Every transit record of `origin` with an id up to `id` included.
  virtual void erase_transits(unsigned origin, uint64_t up_to_id) = 0;
  // The last message of the (origin, receiver) channel whose effects are
  // in this batch (written by the receiver).
  virtual void put_marker(unsigned receiver, unsigned origin, uint64_t seq) = 0;

  // Records since the last commit.
  virtual size_t size() const = 0;
  bool empty() const { return size() == 0; }
  // Writes the batch. False when it could not be written: the batch is
  // dropped, error() says why and healthy() stays false until a later
  // commit succeeds.
  virtual bool commit() = 0;
  virtual bool healthy() const = 0;
  virtual std::string error() const = 0;
};

// --- What start-up reads back -----------------------------------------------

// A message as loaded; `message` is ready to be routed or queued.
struct StoredDelivery {
  uint64_t seq = 0;
  MessagePtr message;  // null: a released QoS 2 message (PUBREL sent)
  uint8_t qos = 0;
  bool retain = false;
  bool from_retained = false;
  std::vector<uint32_t> subscription_ids;
  uint16_t packet_id = 0;  // 0: queued, never sent
  uint16_t queued_packet_id = 0;  // queued: the id it was given (0: none yet)
  bool released = false;
};

struct StoredSubscription {
  std::string filter;
  protocol::SubscribeOptions options;
  uint32_t subscription_id = 0;
};

struct StoredSession {
  std::string client_id;
  protocol::Version version = protocol::Version::kV311;
  uint32_t expiry_interval = 0;
  std::optional<std::string> username;
  // Set while offline, unless the session never expires.
  std::optional<TimePoint> expires_at;
  // False: the session was online when it was last written (the broker
  // stopped or crashed under it).
  bool offline = false;
  std::optional<protocol::Will> will;
  std::optional<TimePoint> will_at;
  unsigned worker = 0;  // the worker that wrote it
  uint16_t last_packet_id = 0;
  std::vector<StoredSubscription> subscriptions;
  std::vector<StoredDelivery> deliveries;  // by seq
  std::vector<uint16_t> incoming_qos2;
};

struct StoredRetained {
  MessagePtr message;
  bool has_source = false;  // check_retain_source: `username` is its publisher's
  std::optional<std::string> username;
  uint16_t listener_port = 0;  // per_listener_settings: whose rules (RetainSource)
};

struct StoredTransit {
  unsigned origin = 0;
  uint64_t id = 0;
  MessagePtr message;
  std::vector<Journal::Receiver> receivers;
  // A $share delivery (Journal::put_shared_transit): the member it is for.
  struct Member {
    std::string client_id;
    uint8_t qos = 0;
    uint32_t subscription_id = 0;
  };
  std::optional<Member> member;
};

// Called in key order while the store is read; records that cannot be
// decoded are skipped and reported through `problem`.
struct RecoveryVisitor {
  std::function<void(StoredRetained&&)> retained;
  std::function<void(StoredSession&&)> session;
  std::function<void(StoredTransit&&)> transit;
  // marker(receiver, origin, seq)
  std::function<void(unsigned, unsigned, uint64_t)> marker;
  std::function<void(const std::string&)> problem;
};

class Store {
 public:
  virtual ~Store() = default;
  // Reads everything back (start-up, before listeners open). False when
  // the store could not be read at all (`error`).
  virtual bool load(const RecoveryVisitor& visitor, std::string& error) = 0;
  // The workers of the run that wrote the store (0: unknown), and this run's.
  virtual unsigned previous_workers() const = 0;
  virtual void set_workers(unsigned workers) = 0;
  // A journal for one worker; any number may be open at once.
  virtual std::unique_ptr<Journal> journal() = 0;
  // After a failed write: tries to make the store writable again (a full
  // disk that has room again). True when it is.
  virtual bool resume() = 0;
};

}  // namespace midge::broker
