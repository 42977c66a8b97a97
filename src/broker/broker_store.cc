// Persistence: what the broker records in its worker's Journal, and the
// sessions it gets back at start-up (issue 12; the promise is in store.h).
// Only sessions that outlive their connection (expiry interval > 0) and
// retained messages are stored; a clean session writes nothing.
#include <algorithm>

#include "broker/broker.h"

namespace midge::broker {

using protocol::PacketType;
using protocol::ReasonCode;
using protocol::Version;

// After a CONNECT, a DISCONNECT or a timer: the session's own fields.
void Broker::store_session(Session& session) {
  if (durable(session)) {
    journal_->put_session(session, worker_);
    session.stored = true;
  } else if (session.stored) {
    unstore_session(session);  // its expiry became 0: it ends with its connection
  }
}

void Broker::unstore_session(Session& session) {
  if (!journal_ || !session.stored) return;
  journal_->erase_session(session.client_id);
  session.stored = false;
  erased_since_commit_.push_back(session.client_id);  // for rewrite_store
}

void Broker::committed() { erased_since_commit_.clear(); }

// After a failed commit the store lacks that batch, whatever it held (a
// queued message, an acknowledgement's erasure, the effects of messages
// handed over by other workers): what is in memory is the truth. Every
// durable session is written again whole, one range deletion then each
// record, and the sessions ended since the last good commit are erased
// again. The worker commits this with its markers in one batch.
void Broker::rewrite_store() {
  if (!journal_) return;
  for (const std::string& id : erased_since_commit_) journal_->erase_session(id);
  for (auto& [key, owned] : sessions_) {
    Session& s = *owned;
    if (!durable(s) || !s.stored) continue;
    journal_->erase_session(s.client_id);
    journal_->put_session(s, worker_);
    for (const auto& [filter, sub] : s.subscriptions) journal_->put_subscription(s.client_id, filter, sub);
    for (InflightOut& f : s.inflight) {
      Delivery& d = f.delivery;
      if (d.store_seq == 0) continue;
      d.state_stored = false;
      if (d.deferred && d.message) --d.message->deferred_copies;
      d.deferred = false;
      if (d.message) journal_->put_delivery(s.client_id, d.store_seq, d, f.packet_id);
      if (f.released || !d.message) store_inflight(s, f);  // a released QoS 2: its state alone
    }
    for (const Delivery& d : s.queue) {
      if (d.store_seq != 0 && d.message) journal_->put_delivery(s.client_id, d.store_seq, d, 0);
    }
    s.incoming_qos2.for_each([&](uint16_t id) { journal_->put_incoming(s.client_id, id); });
  }
}

// A delivery kept for a durable session (queued or in flight) is written
// once, with its message (and its packet id when it goes out at once);
// later changes write only its small in-flight record.
void Broker::store_delivery(Session& session, Delivery& delivery, uint16_t packet_id) {
  if (!durable(session) || delivery.store_seq != 0) return;
  delivery.store_seq = ++store_seq_;
  journal_->put_delivery(session.client_id, delivery.store_seq, delivery, packet_id);
}

void Broker::store_inflight(Session& session, InflightOut& f) {
  if (!durable(session) || f.delivery.store_seq == 0 || f.delivery.deferred) return;
  journal_->put_inflight(session.client_id, f.delivery.store_seq, f.packet_id, f.released);
  f.delivery.state_stored = true;
}

void Broker::unstore_delivery(Session& session, const Delivery& delivery) {
  if (delivery.deferred) {
    settle_deferred(session, delivery);  // never written
    return;
  }
  if (!journal_ || !session.stored || delivery.store_seq == 0) return;
  journal_->erase_delivery(session.client_id, delivery.store_seq, delivery.state_stored);
}

// $SYS messages are the broker's own, made again at every start.
void Broker::store_retained(const Message& message, const RetainSource* source) {
  if (!journal_ || message.topic.starts_with("$SYS")) return;
  if (message.payload.empty()) {
    journal_->erase_retained(message.topic);  // [MQTT-3.3.1-6]
  } else {
    journal_->put_retained(message, source);
  }
}

void Broker::store_incoming(Session& session, uint16_t packet_id, bool add) {
  if (!durable(session)) return;
  if (add) {
    journal_->put_incoming(session.client_id, packet_id);
  } else {
    journal_->erase_incoming(session.client_id, packet_id);
  }
}

// While the store cannot write, a QoS 1/2 PUBLISH cannot be promised
// anything: v5 clients get PUBACK/PUBREC 0x97 (Quota exceeded, the
// broker's resources), 3.1.1 clients, who have no way to hear a refusal,
// are disconnected and will send it again. True when refused.
bool Broker::store_refuses(Session& session, uint8_t qos, uint16_t packet_id, TimePoint now) {
  if (!journal_ || qos == 0 || journal_->healthy()) return false;
  stats_.drop(DropReason::kStoreUnavailable);
  if (session.version == Version::kV5) {
    ack_publish(session, qos == 2 ? PacketType::kPubrec : PacketType::kPuback, packet_id,
             ReasonCode::kQuotaExceeded);
  } else {
    disconnect(session, ReasonCode::kQuotaExceeded, now, "the store cannot write");
  }
  return true;
}

// --- Deferred deliveries ---------------------------------------------------
// A QoS 1 message sent at once to a connected durable session is usually
// acknowledged within a millisecond; writing it (a put, then a delete at
// PUBACK) is most of what persistence costs. So its record waits and the
// publisher's PUBACK, which promises the message is kept, waits with it:
// the PUBACK goes once every deferred copy of the message is acknowledged
// by its subscriber (nothing to write), or once kDeferGrace has passed, when
// what is still unacknowledged is journaled and committed first. The
// subscriber may get the message before it is written: after a crash its
// publisher, never acknowledged, sends it again, a duplicate that QoS 1
// allows (4.3.2). QoS 2 is never deferred: a second copy would break
// exactly once. Only a worker's own publishes defer: a message from another
// worker is covered by that worker's transit record and this one's marker.
void Broker::defer_delivery(Session& session, Delivery& delivery) {
  delivery.store_seq = ++store_seq_;
  delivery.deferred = true;
  ++delivery.message->deferred_copies;
  deferred_now_ = true;
  if (deferred_.empty() || deferred_.back().first != turn_ || deferred_.back().second != session.client_id) {
    deferred_.emplace_back(turn_, session.client_id);
  }
}

// A deferred delivery is done with (acknowledged, dropped) or written.
void Broker::settle_deferred(Session& session, const Delivery& delivery) {
  if (delivery.message && --delivery.message->deferred_copies == 0 && session.link) {
    session.link->commit();  // a turn end comes, where the held PUBACK goes
  }
}

void Broker::delay_ack(Session& session, uint16_t packet_id, ReasonCode reason, const MessagePtr* message) {
  delayed_acks_.push_back(DelayedAck{session.link, message ? *message : MessagePtr(), turn_, packet_id, reason});
  ++session.delayed_acks;
}

// The connection ends: the PUBACKs held for it go with it (its client will
// send those messages again).
void Broker::forget_delayed_acks(Session& session) {
  if (session.delayed_acks == 0) return;
  const Link* link = session.link;
  std::erase_if(delayed_acks_, [link](const DelayedAck& a) { return a.link == link; });
  session.delayed_acks = 0;
}

// Journals the deliveries of `client_id` deferred up to `bound` (their
// store_seq) that are still in flight.
void Broker::journal_deferred(const std::string& client_id, uint64_t bound) {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  for (InflightOut& f : s.inflight) {
    Delivery& d = f.delivery;
    if (!d.deferred || d.store_seq > bound) continue;
    d.deferred = false;
    if (d.message) --d.message->deferred_copies;
    if (durable(s) && d.message) journal_->put_delivery(s.client_id, d.store_seq, d, f.packet_id);
  }
}

bool Broker::end_turn(TimePoint now) {
  turn_ends_.push_back(TurnEnd{turn_, now, store_seq_});
  acks_due_ = 0;
  uint64_t bound = 0;
  while (!turn_ends_.empty() && turn_ends_.front().at + kDeferGrace <= now) {
    acks_due_ = turn_ends_.front().turn;
    bound = turn_ends_.front().seq;
    turn_ends_.pop_front();
  }
  while (!deferred_.empty() && deferred_.front().first <= acks_due_) {
    journal_deferred(deferred_.front().second, bound);
    deferred_.pop_front();
  }
  // The PUBACKs that go at this turn's end wait for its commit: if it fails,
  // their connections are closed unanswered (Worker::commit_journal).
  if (!journal_->empty()) {
    for (const DelayedAck& a : delayed_acks_) {
      if (!a.ready(acks_due_)) break;
      a.link->awaits_commit();
    }
  }
  ++turn_;
  return !deferred_.empty() || !delayed_acks_.empty();
}

void Broker::release_acks() {
  while (!delayed_acks_.empty() && delayed_acks_.front().ready(acks_due_)) {
    const DelayedAck a = delayed_acks_.front();
    delayed_acks_.pop_front();
    if (a.link->session) --a.link->session->delayed_acks;
    send_ack(*a.link, PacketType::kPuback, a.packet_id, a.reason);
  }
}

// Stopping: whatever is deferred is written now, the held PUBACKs go after
// the last commit (or never: their publishers send again).
void Broker::journal_all_deferred() {
  for (const auto& [turn, client_id] : deferred_) journal_deferred(client_id, store_seq_);
  deferred_.clear();
}

// A session read back at start-up. One that was online when the broker
// stopped lost its connection without DISCONNECT: its will goes out (after
// its delay) and its expiry runs from now, as if the connection had just
// dropped.
void Broker::restore(StoredSession&& stored, TimePoint now) {
  if (stored.offline && stored.expires_at && *stored.expires_at <= now) {
    // It expired while the broker was down; its delayed will, due by then
    // at the latest, is not sent: the subscribers it was meant for are
    // not restored yet, and the broker was not there to see it happen.
    if (journal_) journal_->erase_session(stored.client_id);
    Stats::add(stats_.clients_expired);
    return;
  }
  auto owned = std::make_unique<Session>();
  Session& session = *owned;
  session.client_id = std::move(stored.client_id);
  const std::string_view key = session.client_id;
  if (!sessions_.emplace(key, std::move(owned)).second) return;  // stored twice: the first wins
  session.version = stored.version;
  session.expiry_interval = stored.expiry_interval;
  session.stored = true;
  if (stored.username) session.username = std::make_unique<const std::string>(std::move(*stored.username));
  session.last_packet_id = stored.last_packet_id;
  for (StoredSubscription& sub : stored.subscriptions) {
    std::string_view group, inner;
    if (protocol::split_shared_filter(sub.filter, group, inner)) {
      SharedMember member{worker_, session.client_id, sub.options.max_qos, sub.subscription_id, false, {}};
      if (!shared_.shared_subscriptions.add(std::string(group), std::string(inner), member, 0)) continue;
      Stats::add(stats_.shared_subscriptions, 1);
    } else if (tree_.subscribe(sub.filter, SubscriptionEntry{&session, sub.options, sub.subscription_id, false})) {
      interest_.add(sub.filter);
    }
    session.subscriptions[sub.filter] = SessionSubscription{sub.options, sub.subscription_id};
    Stats::add(stats_.subscriptions, 1);
  }
  for (StoredDelivery& d : stored.deliveries) {
    store_seq_ = std::max(store_seq_, d.seq);
    // Whether an in-flight record exists is not known: erase it anyway.
    Delivery delivery{std::move(d.message), d.qos, d.retain, std::move(d.subscription_ids), d.from_retained, d.seq,
                      d.packet_id != 0, d.packet_id != 0 ? d.packet_id : d.queued_packet_id};
    const size_t payload = delivery.message ? delivery.message->payload.size() : 0;
    if (delivery.message) {
      Stats::add(stats_.stored_messages, 1);
      Stats::add(stats_.stored_bytes, static_cast<int64_t>(payload));
    }
    if (d.packet_id != 0) {
      Stats::add(stats_.inflight_messages, 1);
      session.inflight_bytes += payload;
      session.inflight.push_back(InflightOut{d.packet_id, static_cast<uint32_t>(payload), std::move(delivery), d.released});
      continue;
    }
    if (!delivery.message) continue;  // released but never sent: nothing to do
    if (delivery.from_retained) {
      ++session.queued_replays;
    } else {
      session.queued_bytes += queued_size(delivery);
    }
    Stats::add(stats_.queued_messages, 1);
    session.queue.push_back(std::move(delivery));
  }
  settle_packet_ids(session);
  for (uint16_t id : stored.incoming_qos2) session.incoming_qos2.insert(id);
  if (stored.will) session.will = std::make_unique<protocol::Will>(std::move(*stored.will));
  if (stored.offline) {
    if (stored.will_at) session.will_at = *stored.will_at;
    if (stored.expires_at) session.expires_at = *stored.expires_at;
  } else {
    if (session.will) {
      const uint32_t delay = session.will->properties.will_delay_interval.value_or(0);
      session.will_at = now + seconds(std::min(delay, session.expiry_interval));
    }
    std::optional<uint64_t> expiry;
    if (session.expiry_interval != kSessionNeverExpires) expiry = session.expiry_interval;
    const auto& cap = settings_.persistent_client_expiration;
    if (cap && (!expiry || *expiry > *cap)) expiry = cap;
    if (expiry) session.expires_at = now + seconds(std::min<uint64_t>(*expiry, kSessionNeverExpires));
  }
  if (!session.will) session.will_at.reset();
  Stats::add(stats_.clients_disconnected, 1);
  arm_timer(session);
  // Offline from now on; or written by a worker of a run with another
  // worker count: its record names this worker now (server/persistence.cc
  // routes in-transit messages by it).
  if (!stored.offline || stored.worker != worker_) store_session(session);
}

// A $share delivery its receiver had not written: to that member alone,
// if its session came back here (other members had their own messages).
void Broker::replay_shared(const std::string& client_id, uint8_t qos, uint32_t subscription_id,
                           const MessagePtr& message, const std::function<bool(const Session&)>& only,
                           TimePoint now) {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end() || !only(*it->second)) return;
  const SharedMember member{worker_, client_id, qos, subscription_id, false, {}};
  on_shared_delivery(member, message, now);
}

void Broker::replay(const MessagePtr& message, const std::function<bool(const Session&)>& only, TimePoint now) {
  replay_only_ = &only;
  route(message, now, /*from_remote=*/true);
  replay_only_ = nullptr;
}

}  // namespace midge::broker
