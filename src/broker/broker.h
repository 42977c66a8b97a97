// MQTT semantics for the sessions of one worker, without I/O: events come in
// (a decoded packet, a lost link, a message from another worker, the time),
// actions go out (bytes appended to a Link, a Link closed, a message handed
// to the Router). One Broker per worker thread; it is only ever called from
// that thread. Sessions are placed on workers by client id (see
// `worker_for`), so a client's session, its takeover and its No Local checks
// are all local to one Broker.
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/authenticator.h"
#include "broker/interest.h"
#include "broker/link.h"
#include "util/log_type.h"
#include "broker/message.h"
#include "broker/session.h"
#include "broker/shared_state.h"
#include "broker/stats.h"
#include "broker/store.h"
#include "broker/topic_tree.h"
#include "protocol/codec.h"
#include "protocol/packets.h"
#include "util/string_hash.h"
#include "util/time.h"

namespace midge::broker {

class Router {
 public:
  virtual ~Router() = default;
  // Hands a message published on this worker to every other worker, which
  // matches it against its own subscriptions (`Broker::on_remote_publish`).
  // False when no other worker can have a matching subscription.
  // `durable`: a QoS 1/2 message acknowledged to its publisher; with
  // persistence the router journals it until every receiver has written
  // what it did with it (see net::Worker, Recovery in server/persistence).
  virtual bool broadcast(const MessagePtr& message, bool durable) = 0;
  // Delivers a message to a $share group member that lives on `member.worker`;
  // `durable` as for broadcast (journaled until that worker has written it).
  virtual void deliver_shared(const SharedMember& member, const MessagePtr& message, bool durable) = 0;
  // A log line of `type` (written only if `log_type` has it; see SharedState::logs).
  virtual void log(util::LogType type, const std::string& line) {
    (void)type;
    (void)line;
  }
};

class Broker {
 public:
  Broker(unsigned worker, SharedState& shared, Router& router);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Gives an empty client id a generated one when the spec allows it
  // [MQTT-3.1.3-6]; returns true if it did. Called before routing.
  static bool assign_client_id(protocol::ConnectPacket& connect, const Settings& settings);
  // The worker that owns sessions with this client id.
  static unsigned worker_for(const std::string& client_id, unsigned workers);

  // CONNECT, step 1: the credentials (3.1.4: the server authenticates the
  // client). Returns the verdict when it is known at once; otherwise
  // nullopt, and the Authenticator gives it to `reply` later, from another
  // thread: the caller then goes on with connect(). `policy`: the
  // listener's own (per_listener_settings); null for the broker's.
  std::optional<protocol::ReasonCode> check_credentials(const protocol::ConnectPacket& connect,
                                                        Authenticator::Reply reply,
                                                        const AccessPolicy* policy = nullptr) const;
  // CONNECT, step 2, with step 1's verdict: checks the rest, creates or
  // resumes the session, answers CONNACK. Returns kSuccess, or the reason
  // the refusing CONNACK carried (the link is then closing). `policy` as
  // for check_credentials: its Authorizer, or the broker's, gives the
  // session its access rules.
  protocol::ReasonCode connect(Link& link, protocol::ConnectPacket&& connect, bool id_assigned,
                               protocol::ReasonCode credentials, TimePoint now,
                               const AccessPolicy* policy = nullptr);
  // Both steps, for authenticators that answer at once (tests). Returns
  // false when the connection was refused.
  bool on_connect(Link& link, protocol::ConnectPacket&& connect, bool id_assigned, TimePoint now);
  // Any packet after CONNECT.
  void on_packet(Link& link, protocol::Packet&& packet, TimePoint now);
  // A PUBLISH after CONNECT, decoded in place (protocol::decode_borrowed).
  void on_publish(Link& link, protocol::PublishView& publish, TimePoint now);
  // A packet that could not be decoded, or broke the protocol: v5 clients
  // get DISCONNECT with `reason`; the will is published.
  void on_protocol_error(Link& link, protocol::ReasonCode reason, TimePoint now,
                         const char* why = nullptr);
  // No packet within 1.5 x keep alive [MQTT-3.1.2-22].
  void on_keepalive_expired(Link& link, TimePoint now);
  // The socket closed or failed without DISCONNECT.
  void on_link_lost(Link& link, TimePoint now);
  // The link's output drained after the broker held messages back
  // (Link::waiting_for_room): sends what waits in the session queue.
  void on_link_writable(Link& link, TimePoint now);

  void on_remote_publish(const MessagePtr& message, TimePoint now);
  void on_shared_delivery(const SharedMember& member, const MessagePtr& message, TimePoint now);
  // A message from the broker itself ($SYS); retained.
  void publish_internal(std::string topic, std::string payload, bool retain, TimePoint now);
  // `log_dest topic`: a log line on $SYS/broker/log/E, W, N, I, M/subscribe, M/unsubscribe or
  // WS, at QoS 2 with a 20 s message expiry, not retained (as Mosquitto 2.0).
  void publish_log(util::LogType type, std::string line, TimePoint now);

  // Runs due timers: delayed wills, session expiry, $SYS (on worker 0).
  void tick(TimePoint now);
  // The settings in force on this worker.
  const Settings& settings() const { return settings_; }
  // A reloaded configuration (SIGHUP): new connections, packets and
  // messages follow `s` from now on; what is already queued or in flight
  // stays as it is.
  void apply_settings(const Settings& s) { settings_ = s; }
  // After the ACL files were re-read (SIGHUP): every session gets the rules
  // in force now, and its subscriptions are classified again.
  void renew_access();
  // After a reload: as Mosquitto, a connected client that would now be
  // refused is disconnected (v5: DISCONNECT 0x87): an anonymous one when
  // anonymous clients are no longer allowed, a named one whose password
  // file entry changed or went away.
  void revalidate(TimePoint now);
  // Clean stop: v5 clients get DISCONNECT 0x8B (Server shutting down).
  void shutdown(TimePoint now);

  // Durable storage (persistence true): this worker's journal, which the
  // owner commits before any byte of a turn reaches a socket; null without.
  void set_journal(Journal* journal) { journal_ = journal; }
  // The worker's journal was written (clears what rewrite_store needs).
  void committed();
  // After a failed commit: records every durable session of this worker
  // again, whole (broker_store.cc).
  void rewrite_store();
  // Deferred deliveries (broker_store.cc): at the end of each loop turn,
  // before the commit, journals the deliveries deferred kDeferTurns turns
  // ago that are still unacknowledged. True while anything waits for a later
  // turn (the worker makes sure one comes).
  bool end_turn(TimePoint now);
  static constexpr Duration kDeferGrace = std::chrono::milliseconds(1);
  // After that commit: sends the PUBACKs it covered. (If it failed, their
  // connections were closed unanswered: end_turn held them; their
  // publishers send again.)
  void release_acks();
  Journal* journal() const { return journal_; }
  // Start-up, before any connection: a session read back from the store.
  // Its deliveries keep their sequence numbers; later ones follow the
  // highest restored (over all workers: `next_store_seq`).
  void restore(StoredSession&& stored, TimePoint now);
  void set_next_store_seq(uint64_t next) { store_seq_ = std::max(store_seq_, next); }
  uint64_t last_store_seq() const { return store_seq_; }
  // Start-up: a message whose effects on some worker of the previous run
  // were not written (it crashed first) is routed again, to the restored
  // sessions `only` accepts (those that lived on that worker).
  void replay(const MessagePtr& message, const std::function<bool(const Session&)>& only, TimePoint now);
  // The same for a $share delivery: to the member it was for only.
  void replay_shared(const std::string& client_id, uint8_t qos, uint32_t subscription_id, const MessagePtr& message,
                     const std::function<bool(const Session&)>& only, TimePoint now);

  Stats& stats() { return stats_; }
  const Stats& stats() const { return stats_; }
  // What this worker's subscriptions can match; read by other workers.
  const Interest& interest() const { return interest_; }
  size_t session_count() const { return sessions_.size(); }
  size_t timer_count() const { return timers_.size(); }
  const Session* find_session(const std::string& client_id) const;

 private:
  struct Match {
    Session* session;
    uint8_t qos;
    bool retain_as_published;
    std::vector<uint32_t> subscription_ids;
  };
  // How one session gets one message.
  // The QoS a message goes out with: the lower of the published and the
  // granted [MQTT-3.8.4-8], or the granted one with upgrade_outgoing_qos (a
  // Mosquitto option that breaks that rule on purpose).
  uint8_t outgoing_qos(uint8_t published, uint8_t granted) const {
    return settings_.upgrade_outgoing_qos ? granted : std::min(published, granted);
  }
  // The highest QoS a client may publish, subscribe and will with: its
  // listener's max_qos.
  uint8_t max_qos(const Link* link) const {
    return link ? std::min(settings_.max_qos, link->max_qos) : settings_.max_qos;
  }
  struct Grant {
    uint8_t qos = 0;
    bool retain = false;
    bool from_retained = false;  // sent because of a new subscription
  };
  // The PUBLISH bytes of the message route() is handing out, encoded once
  // per variant (v3/v5 x QoS x retain) and copied to every session that
  // needs nothing of its own (no subscription id, alias or expiry); QoS 1/2
  // copies get their packet id patched in.
  struct EncodedPublish {
    std::string bytes;  // without the payload when it is sent as a slice
    size_t id_offset = 0;
    size_t packet_size = 0;  // payload included
    bool payload_shared = false;
  };
  struct PublishCache {
    const Message* message = nullptr;
    uint16_t filled = 0;  // bit per slot
    EncodedPublish slots[12];
  };

  // connect / session lifetime (broker.cc)
  protocol::ReasonCode refuse(Link& link, const protocol::ConnectPacket& c, protocol::ReasonCode reason);
  protocol::ReasonCode check_connect(const Link& link, const protocol::ConnectPacket& c, bool id_assigned,
                                     protocol::ReasonCode credentials) const;
  void take_over(Session& session, bool session_ends, TimePoint now);
  void attach(Session& session, Link& link, const protocol::ConnectPacket& c);
  void send_connack(Session& session, const protocol::ConnectPacket& c, bool present,
                    bool id_assigned);
  void resume(Session& session, TimePoint now);
  void detach(Session& session, bool send_will, TimePoint now);
  void end_session(Session& session, TimePoint now);
  void give_access(Session& session, const AccessPolicy* policy);
  void classify_subscriptions(Session& session);
  void drop_unreadable(Session& session, bool inflight_too);
  std::shared_ptr<const RetainSource> retain_source(const Session& session) const;
  bool may_read(Session& session, std::string_view topic) {
    return !session.access || session.access->allows(topic, Access::kRead);
  }
  void handle_disconnect(Session& session, const protocol::DisconnectPacket& p, TimePoint now);
  void disconnect(Session& session, protocol::ReasonCode reason, TimePoint now,
                  const char* why = nullptr);
  void publish_will(Session& session, TimePoint now);
  void arm_timer(Session& session);
  void disarm_timer(Session& session);
  void send(Link& link, const protocol::Packet& packet);
  // `log_type debug`: Mosquitto's line for each packet (broker_debug.cc).
  bool debugging() const { return shared_.logs(util::LogType::kDebug); }  // on the delivery path: inline
  void debug(const std::string& line);
  void debug_received(const Session& session, const protocol::Packet& packet);
  // "Received", or what became of it: "Denied", "Dropped too large" (`outcome`).
  void debug_received_publish(const Session& session, const protocol::PublishView& p, protocol::ReasonCode outcome);
  void debug_sent(const Link& link, const protocol::Packet& packet);
  void debug_sent_ack(const Link& link, protocol::PacketType type, uint16_t id, protocol::ReasonCode reason);
  void debug_sent_publish(const Session& session, const Message& m, uint8_t qos, bool retain, uint16_t packet_id,
                          bool dup);
  void debug_will(const protocol::ConnectPacket& c);
  void send_ack(Link& link, protocol::PacketType type, uint16_t id, protocol::ReasonCode reason);
  void ack_publish(Session& session, protocol::PacketType type, uint16_t packet_id, protocol::ReasonCode reason,
                   const MessagePtr* message = nullptr);

  // publish path (broker_publish.cc)
  void handle_publish(Session& session, protocol::PublishView& p, TimePoint now);
  MessagePtr client_message(const Session& session, std::string_view topic,
                            std::string_view payload, uint8_t qos, bool retain,
                            const protocol::Properties& properties, TimePoint now);
  bool resolve_topic_alias(Session& session, protocol::PublishView& p, TimePoint now);
  void handle_ack(Session& session, const protocol::AckPacket& ack, TimePoint now);
  // False when the message certainly matched no subscription (v5 PUBACK
  // 0x10); a subscription skipped by No Local counts as a match, as in
  // Mosquitto.
  bool route(const MessagePtr& message, TimePoint now, bool from_remote, bool durable = false);
  // `message` and `ids` are borrowed: a Delivery owning a reference is
  // only made when the message is kept (queued or in flight).
  void deliver(Session& session, const MessagePtr& message, const Grant& grant,
               std::vector<uint32_t>&& ids, TimePoint now);
  void enqueue(Session& session, Delivery&& delivery);
  bool fits_output(Link& link, size_t packet_size) const;
  bool queue_full(const Session& session, size_t bytes = 0) const;
  void resend(Session& session, TimePoint now);
  bool send_publish(Session& session, const Delivery& delivery, uint16_t packet_id, bool dup,
                    TimePoint now) {
    return send_publish(session, *delivery.message, delivery.qos, delivery.retain,
                        delivery.subscription_ids, packet_id, dup, now);
  }
  bool send_publish(Session& session, const Message& m, uint8_t qos, bool retain,
                    std::span<const uint32_t> ids, uint16_t packet_id, bool dup, TimePoint now);
  bool append_cached_publish(Session& session, const Message& m, uint8_t qos, bool retain,
                             uint16_t packet_id);
  void send_qos(Session& session, Delivery&& delivery, TimePoint now);
  // max_inflight_bytes reached: QoS 1/2 messages wait in the queue.
  bool inflight_bytes_full(const Session& session) const {
    return settings_.max_inflight_bytes != 0 && session.inflight_bytes >= settings_.max_inflight_bytes;
  }
  void erase_inflight(Session& session, util::Fifo<InflightOut>::iterator it);
  void pump(Session& session, TimePoint now);
  // 0 when a message to be queued must wait without one.
  uint16_t next_packet_id(Session& session, bool for_queue);
  // After a restore: whether the ids held are in the order they were given.
  static void settle_packet_ids(Session& session);
  void forget_stored(const Delivery& delivery);

  // persistence (broker_store.cc)
  bool durable(const Session& session) const { return journal_ && session.expiry_interval != 0; }
  void store_session(Session& session);
  void unstore_session(Session& session);
  void store_delivery(Session& session, Delivery& delivery, uint16_t packet_id = 0);
  void store_inflight(Session& session, InflightOut& f);
  void unstore_delivery(Session& session, const Delivery& delivery);
  void store_retained(const Message& message, const RetainSource* source);
  void store_incoming(Session& session, uint16_t packet_id, bool add);
  bool store_refuses(Session& session, uint8_t qos, uint16_t packet_id, TimePoint now);

  // subscriptions (broker_subscribe.cc)
  void handle_subscribe(Session& session, const protocol::SubscribePacket& p, TimePoint now);
  void subscribe_all(Session& session, const protocol::SubscribePacket& p, TimePoint now);
  void handle_unsubscribe(Session& session, const protocol::UnsubscribePacket& p);
  protocol::ReasonCode subscribe_one(Session& session, const protocol::Subscription& sub,
                                     uint32_t subscription_id, TimePoint now);
  bool unsubscribe_one(Session& session, const std::string& filter);
  void send_retained(Session& session, const std::string& filter,
                     const protocol::SubscribeOptions& options, uint32_t subscription_id,
                     TimePoint now);

  // $SYS (broker_sys.cc)
  void publish_sys(TimePoint now);

  // Retained messages one session may have waiting to be replayed (review C1:
  // references into the retained store, about 64 bytes each).
  static constexpr uint32_t kMaxQueuedReplays = 100000;

  const unsigned worker_;
  SharedState& shared_;
  Settings settings_;  // this worker's copy: apply_settings replaces it
  Router& router_;
  Stats stats_;
  TopicTree tree_;
  Interest interest_;
  // Keyed by a view of the session's own client_id (no second copy of it).
  std::unordered_map<std::string_view, std::unique_ptr<Session>, util::StringHash> sessions_;
  SessionTimers timers_;
  uint64_t match_stamp_ = 0;
  std::vector<Match> matches_;
  PublishCache publish_cache_;
  Journal* journal_ = nullptr;
  uint64_t store_seq_ = 0;  // the last Delivery::store_seq handed out
  std::vector<std::string> erased_since_commit_;  // sessions erased from the store since its last commit
  // Deferral of QoS 1 deliveries to connected durable sessions: their records
  // are written only if no PUBACK came within kDeferTurns turns, and the
  // publisher's PUBACK waits as long (broker_store.cc, end_turn).
  struct DelayedAck {
    Link* link;
    MessagePtr message;  // null: held only to keep the order
    uint64_t turn;
    uint16_t packet_id;
    protocol::ReasonCode reason;
    bool ready(uint64_t due) const { return turn <= due || !message || message->deferred_copies == 0; }
  };
  uint64_t turn_ = 1;
  bool defer_ok_ = false;       // routing a local QoS 1 publish: deliveries may be deferred
  bool deferred_now_ = false;   // ... and one was
  std::deque<std::pair<uint64_t, std::string>> deferred_;  // (turn, client id) of deferred deliveries
  struct TurnEnd {
    uint64_t turn;
    TimePoint at;
    uint64_t seq;  // store_seq_ then
  };
  std::deque<TurnEnd> turn_ends_;  // turns still in their grace
  std::deque<DelayedAck> delayed_acks_;
  uint64_t acks_due_ = 0;  // PUBACKs held in turns up to this one go at this turn's end
  void defer_delivery(Session& session, Delivery& delivery);
  void journal_deferred(const std::string& client_id, uint64_t bound);
  void journal_all_deferred();
  void delay_ack(Session& session, uint16_t packet_id, protocol::ReasonCode reason, const MessagePtr* message);
  void settle_deferred(Session& session, const Delivery& delivery);
  void forget_delayed_acks(Session& session);
  const std::function<bool(const Session&)>* replay_only_ = nullptr;  // see replay()

  // $SYS state (worker 0 only)
  TimePoint next_sys_{};
  TimePoint last_sys_{};
  struct Load {
    uint64_t last = 0;
    double avg[3] = {0, 0, 0};
  };
  std::map<std::string, Load> loads_;
};

}  // namespace midge::broker
