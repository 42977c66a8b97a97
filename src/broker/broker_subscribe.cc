// SUBSCRIBE and UNSUBSCRIBE (MQTT 3.8-3.11), including $share groups and
// retained messages sent on subscribe.
#include "broker/broker.h"
#include "protocol/codec.h"
#include "protocol/topic.h"

#include <unordered_set>

namespace midge::broker {

using protocol::ReasonCode;
using protocol::Version;

namespace {

// A client's filter as the broker holds it: with its listener's mount point
// (inside a $share filter, before the shared filter). Invalid filters stay
// as they are, to be refused.
std::string mount_filter(std::string_view mount, const std::string& filter) {
  if (!protocol::is_valid_topic_filter(filter)) return filter;
  std::string_view group, inner;
  if (protocol::split_shared_filter(filter, group, inner)) {
    return "$share/" + std::string(group) + "/" + std::string(mount) + std::string(inner);
  }
  return std::string(mount) + filter;
}

}  // namespace

void Broker::handle_subscribe(Session& session, const protocol::SubscribePacket& p, TimePoint now) {
  if (!session.link->mount_point().empty()) {
    protocol::SubscribePacket mounted = p;
    for (protocol::Subscription& sub : mounted.subscriptions) {
      sub.filter = mount_filter(session.link->mount_point(), sub.filter);
    }
    subscribe_all(session, mounted, now);
    return;
  }
  subscribe_all(session, p, now);
}

void Broker::subscribe_all(Session& session, const protocol::SubscribePacket& p, TimePoint now) {
  const uint32_t subscription_id =
      p.properties.subscription_identifiers.empty() ? 0 : p.properties.subscription_identifiers.front();
  protocol::SubackPacket ack;
  ack.packet_id = p.packet_id;
  ack.reasons.reserve(p.subscriptions.size());
  std::vector<size_t> send_retained_for;
  // A filter repeated in one SUBSCRIBE gets its retained messages once
  // (review C1: one packet of 10000 x "$SYS/#" must not replay 10000 times).
  std::unordered_set<std::string_view, util::StringHash> replayed;
  for (size_t i = 0; i < p.subscriptions.size(); ++i) {
    const protocol::Subscription& sub = p.subscriptions[i];
    const bool existed = session.subscriptions.count(sub.filter) != 0;
    const ReasonCode reason = subscribe_one(session, sub, subscription_id, now);
    ack.reasons.push_back(reason);
    if (shared_.logs(util::LogType::kSubscribe)) {  // `log_type subscribe`: "client qos filter", as Mosquitto
      router_.log(util::LogType::kSubscribe,
                  session.client_id + " " + std::to_string(static_cast<unsigned>(reason)) + " " + sub.filter);
    }
    if (protocol::is_error(reason)) continue;
    // Retain Handling 0: always send retained messages, 1: only for a new
    // subscription, 2: never [MQTT-3.3.1-9..11].
    const uint8_t rh = sub.options.retain_handling;
    if ((rh == 0 || (rh == 1 && !existed)) && replayed.insert(sub.filter).second) {
      send_retained_for.push_back(i);
    }
  }
  if (debugging()) [[unlikely]] debug("Sending SUBACK to " + session.client_id);
  protocol::encode(ack, session.version, session.link->out());
  if (journal_ && !journal_->empty()) session.link->awaits_commit();
  session.link->commit();
  Stats::add(stats_.messages_sent);
  for (size_t i : send_retained_for) {
    const protocol::Subscription& sub = p.subscriptions[i];
    protocol::SubscribeOptions granted = sub.options;
    granted.max_qos = std::min(granted.max_qos, max_qos(session.link));
    send_retained(session, sub.filter, granted, subscription_id, now);
  }
}

ReasonCode Broker::subscribe_one(Session& session, const protocol::Subscription& sub,
                                 uint32_t subscription_id, TimePoint /*now*/) {
  if (!protocol::is_valid_topic_filter(sub.filter)) return ReasonCode::kTopicFilterInvalid;
  const bool exists = session.subscriptions.count(sub.filter) != 0;
  const uint32_t quota = settings_.max_subscriptions_per_client;
  if (!exists && quota != 0 && session.subscriptions.size() >= quota) {
    return ReasonCode::kQuotaExceeded;  // 0x80 for 3.x clients (encoder)
  }
  protocol::SubscribeOptions options = sub.options;
  options.max_qos = std::min(options.max_qos, max_qos(session.link));  // the granted QoS (MQTT 5.0 section 3.9.3)
  std::string_view group, inner;
  const bool shared = protocol::split_shared_filter(sub.filter, group, inner);
  // Unlike Mosquitto 2.0, which grants it and then delivers nothing, a
  // filter of which the client may read no topic is refused (0x80, v5 0x87).
  bool check_read = false;
  if (session.access) {
    const Coverage coverage = session.access->readable(shared ? inner : std::string_view(sub.filter));
    if (coverage == Coverage::kNone) {
      Stats::add(stats_.subscribe_denied);
      return ReasonCode::kNotAuthorized;
    }
    check_read = coverage == Coverage::kSome;
  }
  if (shared) {
    SharedMember member{worker_, session.client_id, options.max_qos, subscription_id, session.link != nullptr, {}};
    if (!shared_.shared_subscriptions.add(std::string(group), std::string(inner), member,
                                          settings_.max_shared_groups)) {
      return ReasonCode::kQuotaExceeded;  // the broker holds max_shared_groups groups
    }
  }
  auto [it, inserted] = session.subscriptions.try_emplace(sub.filter);
  it->second = SessionSubscription{options, subscription_id};
  if (durable(session)) journal_->put_subscription(session.client_id, sub.filter, it->second);
  if (shared) {
    if (inserted) Stats::add(stats_.shared_subscriptions, 1);
  } else {
    if (tree_.subscribe(sub.filter, SubscriptionEntry{&session, options, subscription_id, check_read})) {
      interest_.add(sub.filter);
    }
  }
  if (inserted) Stats::add(stats_.subscriptions, 1);
  return static_cast<ReasonCode>(options.max_qos);  // Granted QoS 0, 1 or 2
}

// Retained messages matching a new subscription go out with the retain flag
// set [MQTT-3.3.1-8]. Shared subscriptions get none (MQTT 5.0 section 4.8.2).
void Broker::send_retained(Session& session, const std::string& filter,
                           const protocol::SubscribeOptions& options, uint32_t subscription_id,
                           TimePoint now) {
  std::string_view group, inner;
  if (protocol::split_shared_filter(filter, group, inner)) return;
  // Replays count against the output bound like any delivery (review C1):
  // what does not fit waits in the session queue, as references to the
  // stored messages, and goes out as the client reads; at most
  // kMaxQueuedReplays wait, beyond that the walk stops (counted as dropped).
  bool complete = true;
  const uint64_t stamp = shared_.retained.match(filter, now, [&](const MessagePtr& m, const RetainSource* source) {
    if (!session.link) return complete = false;
    if (!may_read(session, m->topic)) return true;  // the ACL: skipped, the walk goes on
    // check_retain_source: may its publisher still write there? (Under
    // the store's read lock: the rules are resolved for this one check.)
    if (source && settings_.check_retain_source &&
        !source->authorizer->access_for(m->origin_client_id, source->username.get())->allows(m->topic, Access::kWrite)) {
      return true;
    }
    std::vector<uint32_t> ids;
    if (subscription_id != 0) ids.push_back(subscription_id);
    deliver(session, m, Grant{outgoing_qos(m->qos, options.max_qos), true, /*from_retained=*/true},
            std::move(ids), now);
    if (session.queued_replays < kMaxQueuedReplays) return true;
    stats_.drop(DropReason::kReplayLimit);
    return complete = false;
  });
  if (!complete) return;
  if (SubscriptionEntry* e = tree_.entry(filter, &session)) e->replayed_through = stamp;
}

bool Broker::unsubscribe_one(Session& session, const std::string& filter) {
  auto it = session.subscriptions.find(filter);
  if (it == session.subscriptions.end()) return false;
  session.subscriptions.erase(it);
  if (durable(session)) journal_->erase_subscription(session.client_id, filter);
  std::string_view group, inner;
  if (protocol::split_shared_filter(filter, group, inner)) {
    shared_.shared_subscriptions.remove(std::string(group), std::string(inner), session.client_id);
    Stats::add(stats_.shared_subscriptions, -1);
  } else {
    if (tree_.unsubscribe(filter, &session)) interest_.remove(filter);
  }
  Stats::add(stats_.subscriptions, -1);
  return true;
}

void Broker::handle_unsubscribe(Session& session, const protocol::UnsubscribePacket& p) {
  protocol::UnsubackPacket ack;
  ack.packet_id = p.packet_id;
  for (const std::string& filter : p.filters) {
    const std::string_view mount = session.link->mount_point();
    const bool existed = unsubscribe_one(session, mount.empty() ? filter : mount_filter(mount, filter));
    if (shared_.logs(util::LogType::kUnsubscribe)) router_.log(util::LogType::kUnsubscribe, session.client_id + " " + filter);
    ack.reasons.push_back(existed ? ReasonCode::kSuccess : ReasonCode::kNoSubscriptionExisted);
  }
  if (debugging()) [[unlikely]] debug("Sending UNSUBACK to " + session.client_id);
  protocol::encode(ack, session.version, session.link->out());
  session.link->commit();
  Stats::add(stats_.messages_sent);
}

}  // namespace midge::broker
