// The publish path: PUBLISH in, QoS 1/2 handshakes, routing to matching
// sessions, in-flight windows and offline queues (MQTT 3.3-3.7, 4.3, 4.6).
#include <algorithm>
#include <bitset>

#include "broker/broker.h"
#include "protocol/codec.h"
#include "protocol/publish_encoder.h"

namespace midge::broker {

using protocol::PacketType;
using protocol::ReasonCode;
using protocol::Version;


// Topic aliases from the client [MQTT-3.3.2-7..12]: a topic with an alias
// sets it; an empty topic with an alias uses it.
bool Broker::resolve_topic_alias(Session& session, protocol::PublishView& p, TimePoint now) {
  const uint16_t alias = *p.properties.topic_alias;
  if (alias == 0 || alias > settings_.max_topic_alias) {
    disconnect(session, ReasonCode::kTopicAliasInvalid, now);
    return false;
  }
  auto& aliases = session.alias_state().in;
  if (!p.topic.empty()) {
    if (aliases.size() < alias) aliases.resize(alias);
    aliases[alias - 1].assign(p.topic);
    return true;
  }
  if (aliases.size() < alias || aliases[alias - 1].empty()) {
    disconnect(session, ReasonCode::kProtocolError, now);  // an alias never set (MQTT 5.0 section 3.3.2.3.4)
    return false;
  }
  p.topic = aliases[alias - 1];  // stays put until the next PUBLISH of this session
  return true;
}

namespace {

// Topics a client may not publish to, as Mosquitto (4.7.2 leaves $ topics
// to the server): $SYS, written by the broker, except
// $SYS/broker/connection/NAME/state, where bridges report their state; and
// $share/..., which names shared subscriptions, not messages.
bool reserved_for_broker(std::string_view topic) {
  if (topic.starts_with("$share/")) return true;
  if (!topic.starts_with("$SYS")) return false;
  constexpr std::string_view kBridgeState = "$SYS/broker/connection/";
  if (!topic.starts_with(kBridgeState)) return true;
  const std::string_view rest = topic.substr(kBridgeState.size());
  const size_t slash = rest.find('/');
  return slash == std::string_view::npos || rest.substr(slash) != "/state";  // NAME matches as + would
}

}  // namespace

// A message published by a client (a PUBLISH or its will): v5 properties
// are kept for forwarding and the expiry interval becomes a deadline.
MessagePtr Broker::client_message(const Session& session, std::string_view topic,
                                  std::string_view payload, uint8_t qos, bool retain,
                                  const protocol::Properties& properties, TimePoint now) {
  MessageFields f;
  f.topic = topic;
  f.payload = payload;
  f.qos = qos;
  f.retain = retain;
  f.origin_client_id = session.client_id;
  std::string pass_through;
  if (session.version == Version::kV5) {
    pass_through = protocol::encode_pass_through_properties(properties);
    f.pass_through = pass_through;
    if (properties.message_expiry_interval) {
      f.expires_at = now + seconds(*properties.message_expiry_interval);
    }
  }
  // A large payload that arrived whole in one read is not copied: the
  // message borrows it from the read block. Not a retained one: the store
  // keeps it for long, and it should hold its own bytes only.
  const InputBlock* block = InputBlock::decoding();
  if (block && !retain && payload.size() >= InputBlock::kBorrowMin && block->contains(payload)) {
    return Message::create_borrowed(f, *block);
  }
  return Message::create(f);
}

void Broker::handle_publish(Session& session, protocol::PublishView& p, TimePoint now) {
  Link& link = *session.link;
  if (p.qos > max_qos(&link)) {
    disconnect(session, ReasonCode::kQosNotSupported, now);  // [MQTT-3.2.2-11]
    return;
  }
  if (p.retain && !settings_.retain_available) {
    disconnect(session, ReasonCode::kRetainNotSupported, now);  // [MQTT-3.2.2-14]
    return;
  }
  if (p.properties.topic_alias && !resolve_topic_alias(session, p, now)) return;
  Stats::add(stats_.publish_bytes_received, p.payload.size());
  Stats::add(stats_.of(link.traffic_slot).publish_received[p.qos]);

  const PacketType ack_type = p.qos == 2 ? PacketType::kPubrec : PacketType::kPuback;
  if (p.qos == 2) {
    auto& pending = session.incoming_qos2;
    if (pending.count(p.packet_id) != 0) {
      // A resent QoS 2 PUBLISH we already own: acknowledge, do not route
      // again [MQTT-4.3.3-9].
      if (debugging()) [[unlikely]] debug_received_publish(session, p, ReasonCode::kSuccess);
      send_ack(link, ack_type, p.packet_id, ReasonCode::kSuccess);
      return;
    }
    // The client may not have more unacknowledged QoS 2 messages than the
    // Receive Maximum we announced [MQTT-3.3.4-9].
    const size_t limit = settings_.max_inflight_messages == 0 ? 65535 : settings_.max_inflight_messages;
    if (session.version == Version::kV5 && pending.size() >= limit) {
      disconnect(session, ReasonCode::kReceiveMaximumExceeded, now);
      return;
    }
  }

  // The listener's mount point is part of the topic from here on (ACL
  // checks, retained store, routing); `mounted` holds it while p.topic is used.
  const bool reserved = reserved_for_broker(p.topic);
  std::string mounted;
  if (!link.mount_point().empty()) {
    mounted.reserve(link.mount_point().size() + p.topic.size());
    mounted.append(link.mount_point()).append(p.topic);
    p.topic = mounted;
  }
  ReasonCode outcome = ReasonCode::kSuccess;
  if (reserved) {
    outcome = ReasonCode::kNotAuthorized;
  } else if (session.access && !session.access->allows(p.topic, Access::kWrite)) {
    outcome = ReasonCode::kNotAuthorized;  // dropped: not routed, not retained
    Stats::add(stats_.publish_denied);
  } else if (settings_.message_size_limit != 0 && p.payload.size() > settings_.message_size_limit) {
    outcome = ReasonCode::kQuotaExceeded;  // 0x95 is not a PUBACK/PUBREC reason
  }
  if (debugging()) [[unlikely]] debug_received_publish(session, p, outcome);
  if (outcome == ReasonCode::kSuccess) {
    if (store_refuses(session, p.qos, p.packet_id, now)) return;
    MessagePtr shared = client_message(session, p.topic, p.payload, p.qos, p.retain, p.properties, now);
    if (shared->retain) {
      std::shared_ptr<const RetainSource> source = retain_source(session);
      store_retained(*shared, source.get());
      shared_.retained.put(shared, std::move(source));
    }
    if (p.qos == 2) {
      // PUBREC before the message goes anywhere, as Mosquitto does: a client
      // subscribed to its own topic reads the PUBREC first (issue 14).
      session.incoming_qos2.insert(p.packet_id);
      store_incoming(session, p.packet_id, true);
      send_ack(link, ack_type, p.packet_id, ReasonCode::kSuccess);
    }
    defer_ok_ = p.qos == 1 && journal_;
    deferred_now_ = false;
    const bool matched = route(shared, now, /*from_remote=*/false, /*durable=*/p.qos > 0);
    defer_ok_ = false;
    if (p.qos != 1) return;
    // "No matching subscribers" MAY be said (3.4.2.1); Mosquitto says it.
    outcome = matched || session.version != Version::kV5 ? ReasonCode::kSuccess : ReasonCode::kNoMatchingSubscribers;
    ack_publish(session, ack_type, p.packet_id, outcome, &shared);
    return;
  }
  if (p.qos == 0) return;
  // v3 has no way to say no: the message is dropped but acknowledged.
  ack_publish(session, ack_type, p.packet_id, session.version == Version::kV5 ? outcome : ReasonCode::kSuccess);
}

// A PUBACK waits while a delivery of its message is deferred, or behind
// an earlier one that waits (PUBACKs keep the order of their PUBLISHes,
// [MQTT-4.6.0-2]); see Broker::end_turn.
void Broker::ack_publish(Session& session, PacketType type, uint16_t packet_id, ReasonCode reason,
                         const MessagePtr* message) {
  if (type == PacketType::kPuback && (deferred_now_ || session.delayed_acks != 0)) {
    delay_ack(session, packet_id, reason, deferred_now_ ? message : nullptr);
  } else {
    send_ack(*session.link, type, packet_id, reason);
  }
  deferred_now_ = false;
}

void Broker::handle_ack(Session& session, const protocol::AckPacket& ack, TimePoint now) {
  Link& link = *session.link;
  if (ack.type == PacketType::kPubrel) {
    // An unknown id is most likely a PUBREL resent after a reconnection
    // whose PUBCOMP was lost: Success, as Mosquitto answers (0x92 is also
    // allowed, 3.7.2.1).
    if (session.incoming_qos2.erase(ack.packet_id) != 0) store_incoming(session, ack.packet_id, false);
    send_ack(link, PacketType::kPubcomp, ack.packet_id, ReasonCode::kSuccess);
    return;
  }
  auto it = std::find_if(session.inflight.begin(), session.inflight.end(),
                         [&](const InflightOut& f) { return f.packet_id == ack.packet_id; });
  if (it == session.inflight.end()) return;  // stale or unknown: ignore
  // The unsent in-flight messages are the last resend_count ones.
  const auto unsent_from = session.inflight.end() - static_cast<std::ptrdiff_t>(session.resend_count);
  const bool unsent = it >= unsent_from;
  const uint8_t qos = it->delivery.qos;
  if (ack.type == PacketType::kPubrec && qos == 2 && !it->released) {
    if (protocol::is_error(ack.reason)) {  // refused: the packet id is free again (MQTT 5.0 section 4.3.3)
      forget_stored(it->delivery);
      unstore_delivery(session, it->delivery);
      if (unsent) --session.resend_count;
      erase_inflight(session, it);
      pump(session, now);
      return;
    }
    it->released = true;
    forget_stored(it->delivery);
    it->delivery.message.reset();  // the payload is no longer needed
    if (durable(session) && it->delivery.store_seq != 0) {
      journal_->erase_delivery_message(session.client_id, it->delivery.store_seq);
      store_inflight(session, *it);
    }
    send_ack(link, PacketType::kPubrel, ack.packet_id, ReasonCode::kSuccess);
    return;
  }
  const bool done = (ack.type == PacketType::kPuback && qos == 1) ||
                    (ack.type == PacketType::kPubcomp && qos == 2 && it->released);
  if (!done) return;
  forget_stored(it->delivery);
  unstore_delivery(session, it->delivery);
  if (unsent) --session.resend_count;
  erase_inflight(session, it);
  pump(session, now);
}

void Broker::erase_inflight(Session& session, util::Fifo<InflightOut>::iterator it) {
  Stats::add(stats_.inflight_messages, -1);
  session.inflight_bytes -= it->payload_bytes;
  session.inflight.erase(it);
}

void Broker::on_remote_publish(const MessagePtr& message, TimePoint now) {
  route(message, now, /*from_remote=*/true);
}

void Broker::on_shared_delivery(const SharedMember& member, const MessagePtr& message, TimePoint now) {
  auto it = sessions_.find(member.client_id);
  if (it == sessions_.end()) {
    // The member ended after it was picked: another member of the group
    // gets the message (review L13). QoS 0 may simply be lost. Only reached
    // from another worker's hand-off, never inside pick(): a local member
    // leaves its groups when its session ends.
    if (message->qos == 0) return;
    std::optional<SharedMember> other = shared_.shared_subscriptions.pick_other(member);
    if (!other) return;
    if (other->worker == worker_) {
      if (sessions_.count(other->client_id) != 0) on_shared_delivery(*other, message, now);
    } else {
      router_.deliver_shared(*other, message, journal_ != nullptr);  // qos > 0: durable
    }
    return;
  }
  // As Mosquitto, a member that may not read the topic loses the message
  // (no other member is picked).
  if (!may_read(*it->second, message->topic)) return;
  std::vector<uint32_t> ids;
  if (member.subscription_id != 0) ids.push_back(member.subscription_id);
  deliver(*it->second, message, Grant{outgoing_qos(message->qos, member.qos), false, false},
          std::move(ids), now);
}

void Broker::publish_internal(std::string topic, std::string payload, bool retain, TimePoint now) {
  MessageFields f;
  f.topic = topic;
  f.payload = payload;
  f.retain = retain;
  MessagePtr shared = Message::create(f);
  if (retain) shared_.retained.put(shared);  // $SYS: never stored
  route(shared, now, /*from_remote=*/false);
}

// Matches the topic against this worker's subscriptions; overlapping
// subscriptions of one session give one delivery at the highest QoS with
// every subscription identifier [MQTT-3.3.4-2], [MQTT-3.3.4-3].
bool Broker::route(const MessagePtr& message, TimePoint now, bool from_remote, bool durable) {
  const uint64_t stamp = ++match_stamp_;
  matches_.clear();
  bool matched = false;
  tree_.match(message->topic, [&](const SubscriptionEntry& e) {
    matched = true;
    Session* s = e.session;
    if (e.options.no_local && s->client_id == message->origin_client_id) return;  // [MQTT-3.8.3-3]
    if (replay_only_ && !(*replay_only_)(*s)) [[unlikely]] return;
    // Sent already by this subscription's retained replay (another worker
    // stored it, then this one replayed it before its live copy came).
    if (message->retain_stamp != 0 && message->retain_stamp <= e.replayed_through) [[unlikely]] return;
    if (e.check_read && !may_read(*s, message->topic)) return;
    const uint8_t qos = outgoing_qos(message->qos, e.options.max_qos);
    if (s->match_stamp != stamp) {
      s->match_stamp = stamp;
      s->match_index = static_cast<uint32_t>(matches_.size());
      matches_.push_back(Match{s, qos, e.options.retain_as_published, {}});
    } else {
      Match& m = matches_[s->match_index];
      m.qos = std::max(m.qos, qos);
      m.retain_as_published = m.retain_as_published || e.options.retain_as_published;
    }
    if (e.subscription_id != 0) matches_[s->match_index].subscription_ids.push_back(e.subscription_id);
  });
  // Sessions that need nothing of their own share one encoding (see
  // PublishCache); the previous cache is restored in case of nesting.
  // (With one receiver the cache would only add a copy.)
  const Message* outer = publish_cache_.message;
  publish_cache_.message = matches_.size() > 1 ? message.get() : nullptr;
  publish_cache_.filled = 0;
  for (Match& m : matches_) {
    // The retain flag is kept only with Retain As Published [MQTT-3.3.1-12].
    const bool retain = message->retain && m.retain_as_published;
    deliver(*m.session, message, Grant{m.qos, retain, false}, std::move(m.subscription_ids), now);
  }
  publish_cache_.message = outer;
  publish_cache_.filled = 0;
  if (from_remote) return matched;
  if (!shared_.shared_subscriptions.empty()) {
    shared_.shared_subscriptions.pick(message->topic, [&](const SharedMember& member) {
      matched = true;
      if (member.worker == worker_) {
        on_shared_delivery(member, message, now);
      } else {
        router_.deliver_shared(member, message, durable && journal_);
      }
    });
  }
  return router_.broadcast(message, durable && journal_) || matched;
}

namespace {
// An upper bound on the PUBLISH a message becomes on the wire (fixed
// header, packet id and the properties the broker may add), known before
// it is encoded.
size_t wire_size(const Message& m, size_t subscription_ids) {
  return m.topic.size() + m.payload.size() + m.pass_through.size() + 5 * subscription_ids + 24;
}
// The largest packet MQTT can encode: 1 + 4 + 268435455 (2.1.4).
constexpr size_t kMaxPacketSize = 268435460;
// Payloads from this size on are not copied into each subscriber's output:
// the link sends them from the message block (Link::append_shared). Below
// it, copying into one contiguous buffer costs less than the slice (a
// reference count, an iovec); bench/compare.sh's sizes chose the value.
constexpr size_t kSharedPayloadMin = 1024;

// The id of the oldest message holding one (next_packet_id), 0 if none:
// queued messages with an id come before those without, so the first
// queued QoS 1/2 message tells.
uint16_t oldest_packet_id(const Session& session) {
  if (!session.inflight.empty()) return session.inflight.front().packet_id;
  for (const Delivery& d : session.queue) {
    if (d.qos > 0) return d.packet_id;
  }
  return 0;
}

// The first id after the last one given that no message holds.
uint16_t free_packet_id(const Session& session) {
  std::bitset<65536> busy;
  busy.set(0);
  for (const InflightOut& f : session.inflight) busy.set(f.packet_id);
  for (const Delivery& d : session.queue) busy.set(d.packet_id);
  uint16_t id = session.last_packet_id;
  for (uint32_t tries = 0; tries < 65535; ++tries) {
    id = id == 65535 ? 1 : id + 1;
    if (!busy.test(id)) break;
  }
  return id;
}
}  // namespace

void Broker::deliver(Session& session, const MessagePtr& message, const Grant& grant,
                     std::vector<uint32_t>&& ids, TimePoint now) {
  if (message->expired(now)) {
    Stats::add(stats_.publish_expired);
    return;
  }
  auto keep = [&] {
    return Delivery{message, grant.qos, grant.retain, std::move(ids), grant.from_retained};
  };
  if (!session.link) {
    if (grant.qos == 0 && !settings_.queue_qos0_messages) return;
    enqueue(session, keep());
    return;
  }
  const bool fits = fits_output(*session.link, wire_size(*message, ids.size()));
  if (grant.qos == 0) {
    // A retained replay waits its turn in the queue (after earlier ones);
    // live QoS 0 that does not fit the output bound is dropped (README).
    if (grant.from_retained && (!fits || session.queued_replays > 0)) {
      enqueue(session, keep());
      return;
    }
    if (!fits) {
      stats_.drop(DropReason::kOutputFull);
      return;
    }
    send_publish(session, *message, 0, grant.retain, ids, 0, false, now);
    return;
  }
  if (fits && session.inflight.size() < session.send_window && session.queue.empty() &&
      session.resend_count == 0) {
    send_qos(session, keep(), now);
  } else {
    enqueue(session, keep());  // sent by pump() as acks or on_link_writable make room
  }
}

// The one bound on a connection's pending output (Settings::max_pending_output):
// a packet fits when nothing is pending or when it stays within the bound,
// so the bound holds to within one packet.
// A packet that does not fit marks the link: its owner calls
// on_link_writable once the output has drained.
bool Broker::fits_output(Link& link, size_t packet_size) const {
  const size_t pending = link.pending_bytes();
  if (pending == 0 || pending + packet_size <= settings_.max_pending_output) return true;
  link.waiting_for_room = true;
  return false;
}

// True when the session queue cannot take `bytes` more
// (max_queued_messages, max_queued_bytes; 0 = no limit).
bool Broker::queue_full(const Session& session, size_t bytes) const {
  const size_t queued = session.queue.size() - session.queued_replays;
  const bool full_count = settings_.max_queued_messages != 0 && queued >= settings_.max_queued_messages;
  const bool full_bytes = settings_.max_queued_bytes != 0 && session.queued_bytes + bytes > settings_.max_queued_bytes;
  return full_count || full_bytes;
}

void Broker::enqueue(Session& session, Delivery&& delivery) {
  if (session.queue.empty()) session.queue_lacks_ids = false;
  // The id is taken even when the queue turns the message away, as Mosquitto.
  if (delivery.qos > 0 && delivery.packet_id == 0) delivery.packet_id = next_packet_id(session, /*for_queue=*/true);
  const size_t bytes = delivery.from_retained ? 0 : queued_size(delivery);
  const bool full = delivery.from_retained ? session.queued_replays >= kMaxQueuedReplays : queue_full(session, bytes);
  if (full) {
    stats_.drop(delivery.from_retained ? DropReason::kReplayLimit : DropReason::kQueueFull);
    return;
  }
  if (delivery.from_retained) ++session.queued_replays;
  if (delivery.qos > 0 && delivery.packet_id == 0) session.queue_lacks_ids = true;
  session.queued_bytes += bytes;
  Stats::add(stats_.queued_messages, 1);
  Stats::add(stats_.stored_messages, 1);
  Stats::add(stats_.stored_bytes, static_cast<int64_t>(delivery.message->payload.size()));
  session.queue.push_back(std::move(delivery));
  store_delivery(session, session.queue.back());
}

void Broker::forget_stored(const Delivery& delivery) {
  if (!delivery.message) return;
  Stats::add(stats_.stored_messages, -1);
  Stats::add(stats_.stored_bytes, -static_cast<int64_t>(delivery.message->payload.size()));
}

void Broker::send_qos(Session& session, Delivery&& delivery, TimePoint now) {
  // deliver() looks at the count window only (pump() at both): over the
  // byte window the message waits, first in the queue since deliver() found
  // it empty.
  if (inflight_bytes_full(session)) {
    enqueue(session, std::move(delivery));
    return;
  }
  if (delivery.packet_id == 0) delivery.packet_id = next_packet_id(session, /*for_queue=*/false);
  const uint16_t id = delivery.packet_id;
  if (!send_publish(session, delivery, id, false, now)) {
    unstore_delivery(session, delivery);  // too big for this client: discarded
    return;
  }
  const auto bytes = static_cast<uint32_t>(delivery.message->payload.size());
  Stats::add(stats_.stored_messages, 1);
  Stats::add(stats_.stored_bytes, static_cast<int64_t>(bytes));
  Stats::add(stats_.inflight_messages, 1);
  session.inflight_bytes += bytes;
  session.inflight.push_back(InflightOut{id, bytes, std::move(delivery), false});
  if (durable(session)) {
    InflightOut& f = session.inflight.back();
    if (f.delivery.store_seq == 0 && defer_ok_ && f.delivery.qos == 1) {
      defer_delivery(session, f.delivery);  // written only if not acknowledged in time
    } else if (f.delivery.store_seq == 0) {
      store_delivery(session, f.delivery, id);  // one record: message and packet id
    } else {
      store_inflight(session, f);  // it was queued: its message is stored already
    }
  }
}

// Outgoing packet ids (2.2.1). As Mosquitto, a QoS 1/2 message gets its id
// when it is queued for the session (offline, or over the in-flight window),
// not when it goes out: a queued message that expires or is dropped has used
// its id, and the next message goes out with the next one (issue 14, cause
// F). An id is busy while its message is queued or in flight.
//
// The holders (in-flight messages, then queued ones with an id) stay in the
// order their ids were given, and ids are given in sequence (1..65535, then 1
// again): while the holders span less than the whole cycle, the next id is
// free unless it is the oldest holder's. When the cycle is full (a queue
// longer than the id space, or a message unacknowledged while 65534 others
// got ids), a message to be queued waits without an id, and so does every
// message queued after it until the queue is empty; those get their id when
// they are sent. Then the first one to go out finds every queued message
// without an id, so only the in-flight window (at most 65535) holds ids and a
// free one exists. An id given by search (the cycle full at send time) breaks
// the order: until no id is held, ids are found by search and queued messages
// wait without one. (Mosquitto does not bound them: with a queue longer than
// the id space its ids collide.)
uint16_t Broker::next_packet_id(Session& session, bool for_queue) {
  const uint16_t oldest = oldest_packet_id(session);
  if (oldest == 0) session.ids_unordered = false;  // no id held
  if (for_queue && (session.ids_unordered || session.queue_lacks_ids)) return 0;
  const uint16_t next = session.last_packet_id == 65535 ? 1 : session.last_packet_id + 1;
  if (!session.ids_unordered && next != oldest) return session.last_packet_id = next;
  if (for_queue) return 0;  // the cycle is full
  session.ids_unordered = true;
  return session.last_packet_id = free_packet_id(session);
}

// A restored session: its holders are in the order their ids were given
// (the store keeps deliveries in that order) unless the broker stopped
// with the cycle full or its ids found by search. The stored last id may
// predate the newest holder (the session record is written less often).
void Broker::settle_packet_ids(Session& session) {
  std::vector<uint16_t> held;
  for (const InflightOut& f : session.inflight) held.push_back(f.packet_id);
  for (const Delivery& d : session.queue) {
    if (d.qos == 0) continue;
    if (d.packet_id == 0) session.queue_lacks_ids = true;
    if (d.packet_id != 0) held.push_back(d.packet_id);
  }
  if (held.empty()) return;
  // How far ids advanced from the oldest holder to `last`; 65535 or more:
  // not one ordered cycle.
  auto span_to = [&held](uint16_t last) {
    uint32_t span = 0;
    for (size_t i = 1; i <= held.size(); ++i) {
      const uint16_t id = i < held.size() ? held[i] : last;
      const uint32_t step = (id + 65535u - held[i - 1]) % 65535u;
      if (step == 0 && i < held.size()) return 65535u;  // an id held twice
      span += step;
    }
    return span;
  };
  if (session.last_packet_id != 0 && span_to(session.last_packet_id) < 65535) return;
  session.last_packet_id = held.back();
  session.ids_unordered = span_to(held.back()) >= 65535;
}

// Moves queued messages into the in-flight window while it has room and
// the output bound allows; in-flight messages still to be resent after a
// reconnect go first [MQTT-4.4.0-1].
void Broker::pump(Session& session, TimePoint now) {
  if (session.resend_count > 0) resend(session, now);
  while (session.link && session.resend_count == 0 && !session.queue.empty()) {
    Delivery& front = session.queue.front();
    if (front.qos > 0 && (session.inflight.size() >= session.send_window || inflight_bytes_full(session))) return;
    const bool fits = fits_output(*session.link, wire_size(*front.message, front.subscription_ids.size()));
    if ((front.qos > 0 || front.from_retained) && !fits) return;  // on_link_writable calls again
    Delivery d = std::move(front);
    session.queue.pop_front();
    Stats::add(stats_.queued_messages, -1);
    if (d.from_retained) {
      --session.queued_replays;
    } else {
      session.queued_bytes -= queued_size(d);
    }
    forget_stored(d);
    if (d.message->expired(now)) {  // [MQTT-3.3.2-5]
      Stats::add(stats_.publish_expired);
      unstore_delivery(session, d);
      continue;
    }
    if (d.qos > 0) {
      send_qos(session, std::move(d), now);
      continue;
    }
    unstore_delivery(session, d);
    if (fits) {
      send_publish(session, d, 0, false, now);
    } else {
      stats_.drop(DropReason::kOutputFull);
    }
  }
}

// Sends again, in order, the in-flight messages of a resumed session that
// have not gone out on this connection yet (the last resend_count ones).
void Broker::resend(Session& session, TimePoint now) {
  while (session.link && session.resend_count > 0) {
    InflightOut& f = *(session.inflight.end() - static_cast<std::ptrdiff_t>(session.resend_count));
    if (f.released) {
      send_ack(*session.link, PacketType::kPubrel, f.packet_id, ReasonCode::kSuccess);
    } else {
      const Delivery& d = f.delivery;
      if (!fits_output(*session.link, wire_size(*d.message, d.subscription_ids.size()))) return;
      send_publish(session, d, f.packet_id, /*dup=*/true, now);
    }
    --session.resend_count;
  }
}

// Encodes one PUBLISH into the session's link. Returns false when the
// message cannot be sent to this client (bigger than its Maximum Packet
// Size: discarded [MQTT-3.1.2-25]).
bool Broker::send_publish(Session& session, const Message& m, uint8_t qos, bool retain,
                          std::span<const uint32_t> ids, uint16_t packet_id, bool dup,
                          TimePoint now) {
  const bool v5 = session.version == Version::kV5;
  Link& link = *session.link;
  if (!dup && ids.empty() && publish_cache_.message == &m && link.mount_point().empty() &&
      !(v5 && (m.expires_at || session.client_alias_max > 0))) {
    const bool sent = append_cached_publish(session, m, qos, retain, packet_id);
    if (sent && debugging()) [[unlikely]] debug_sent_publish(session, m, qos, retain, packet_id, dup);
    return sent;
  }
  // What the client sees: the topic without its listener's mount point
  // (its filters carry it, so every topic it matches starts with it).
  std::string_view topic = m.topic;
  if (!link.mount_point().empty()) {
    if (!topic.starts_with(link.mount_point())) return false;
    topic.remove_prefix(link.mount_point().size());
  }
  protocol::OutgoingPublish out;
  out.topic = topic;
  out.payload = m.payload;
  out.qos = qos;
  out.retain = retain;
  out.dup = dup;
  out.packet_id = packet_id;
  if (v5) {
    out.pass_through = m.pass_through;
    if (m.expires_at) {
      // The remaining lifetime, rounded up [MQTT-3.3.2-6].
      const auto left = std::chrono::ceil<seconds>(*m.expires_at - now).count();
      out.message_expiry = static_cast<uint32_t>(std::max<int64_t>(left, 1));
    }
    out.subscription_ids = ids;
    if (session.client_alias_max > 0) {
      Session::Aliases& state = session.alias_state();
      auto& aliases = state.out;
      auto it = aliases.find(topic);
      if (it != aliases.end()) {
        out.topic = {};
        out.topic_alias = it->second;
      } else if (aliases.size() < session.client_alias_max &&
                 state.out_bytes + topic.size() <= Session::kMaxAliasBytes) {
        out.topic_alias = static_cast<uint16_t>(aliases.size() + 1);
        aliases.emplace(std::string(topic), out.topic_alias);
        state.out_bytes += topic.size();
      }
    }
  }
  const size_t size = protocol::publish_size(out, session.version);
  if (size > kMaxPacketSize || (session.client_max_packet != 0 && size > session.client_max_packet)) {
    if (!out.topic.empty() && out.topic_alias != 0) {
      session.aliases->out.erase(session.aliases->out.find(topic));
      session.aliases->out_bytes -= topic.size();
    }
    stats_.drop(DropReason::kTooLarge);
    return false;
  }
  out.omit_payload = m.payload.size() >= kSharedPayloadMin;
  if (debugging()) [[unlikely]] debug_sent_publish(session, m, qos, retain, packet_id, dup);
  protocol::encode_publish(out, session.version, link.out());
  if (out.omit_payload) link.append_shared(m, m.payload);
  link.commit();
  Stats::add(stats_.messages_sent);
  Stats::add(stats_.publish_bytes_sent, m.payload.size());
  Stats::add(stats_.of(link.traffic_slot).publish_sent[qos]);
  return true;
}

// send_publish for a session that needs no property of its own: the bytes
// come from publish_cache_, encoded on first use.
bool Broker::append_cached_publish(Session& session, const Message& m, uint8_t qos, bool retain,
                                   uint16_t packet_id) {
  const bool v5 = session.version == Version::kV5;
  const unsigned slot = (v5 ? 6u : 0u) + qos * 2u + (retain ? 1u : 0u);
  EncodedPublish& e = publish_cache_.slots[slot];
  if ((publish_cache_.filled & (1u << slot)) == 0) {
    protocol::OutgoingPublish out;
    out.topic = m.topic;
    out.payload = m.payload;
    out.qos = qos;
    out.retain = retain;
    if (v5) out.pass_through = m.pass_through;
    out.omit_payload = m.payload.size() >= kSharedPayloadMin;
    e.bytes.clear();
    protocol::encode_publish(out, session.version, e.bytes);
    e.id_offset = protocol::publish_packet_id_offset(out, session.version);
    e.packet_size = e.bytes.empty() ? 0 : protocol::publish_size(out, session.version);
    e.payload_shared = out.omit_payload;
    publish_cache_.filled = static_cast<uint16_t>(publish_cache_.filled | (1u << slot));
  }
  if (e.bytes.empty() || (session.client_max_packet != 0 && e.packet_size > session.client_max_packet)) {
    stats_.drop(DropReason::kTooLarge);
    return false;
  }
  Link& link = *session.link;
  std::string& out = link.out();
  const size_t start = out.size();
  out.append(e.bytes);
  if (qos > 0) {
    out[start + e.id_offset] = static_cast<char>(packet_id >> 8);
    out[start + e.id_offset + 1] = static_cast<char>(packet_id & 0xff);
  }
  if (e.payload_shared) link.append_shared(m, m.payload);
  link.commit();
  Stats::add(stats_.messages_sent);
  Stats::add(stats_.publish_bytes_sent, m.payload.size());
  Stats::add(stats_.of(link.traffic_slot).publish_sent[qos]);
  return true;
}

}  // namespace midge::broker
