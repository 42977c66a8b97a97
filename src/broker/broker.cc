// Connections and session lifetimes: CONNECT, takeover, DISCONNECT, wills,
// session expiry (MQTT 3.1, 3.2, 3.14, 4.1).
#include "broker/broker.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <random>

#include "protocol/codec.h"
#include "protocol/publish_encoder.h"
#include "protocol/topic.h"

namespace midge::broker {

using protocol::ReasonCode;
using protocol::Version;

Broker::Broker(unsigned worker, SharedState& shared, Router& router)
    : worker_(worker), shared_(shared), settings_(shared.settings), router_(router) {}

Broker::~Broker() = default;

bool Broker::assign_client_id(protocol::ConnectPacket& connect, const Settings& settings) {
  if (!connect.client_id.empty()) return false;
  // 3.1 requires an id; 3.1.1 allows an empty one only with clean session
  // [MQTT-3.1.3-7]; 5.0 always allows it [MQTT-3.1.3-6].
  if (connect.version == Version::kV31) return false;
  if (connect.version == Version::kV311 && !connect.clean_start) return false;
  if (!settings.allow_zero_length_clientid) return false;
  // A UUID's form in upper-case hex, as Mosquitto's (clients and tests
  // compare its length): 64 random bits, then a process-wide counter under
  // a random mask, so that no two ids are ever the same.
  static std::atomic<uint64_t> counter{0};
  static const uint64_t mask = std::random_device{}() * 0x9E3779B97F4A7C15ull ^ std::random_device{}();
  thread_local std::mt19937_64 rng(std::random_device{}());
  const uint64_t hi = rng();
  const uint64_t lo = counter.fetch_add(1) ^ mask;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08llX-%04llX-%04llX-%04llX-%012llX", static_cast<unsigned long long>(hi >> 32),
                static_cast<unsigned long long>((hi >> 16) & 0xFFFF), static_cast<unsigned long long>(hi & 0xFFFF),
                static_cast<unsigned long long>(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  connect.client_id = settings.auto_id_prefix + buf;
  return true;
}

unsigned Broker::worker_for(const std::string& client_id, unsigned workers) {
  if (workers <= 1) return 0;
  return static_cast<unsigned>(util::hash_bytes(client_id) % workers);
}

const Session* Broker::find_session(const std::string& client_id) const {
  auto it = sessions_.find(client_id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void Broker::send(Link& link, const protocol::Packet& packet) {
  if (debugging()) [[unlikely]] debug_sent(link, packet);
  protocol::encode(packet, link.version, link.out());
  link.commit();
  Stats::add(stats_.messages_sent);
}

// PUBACK/PUBREC/PUBREL/PUBCOMP written directly: 4 bytes, or 5 with a v5
// reason code and no properties (3.4.2.1: the reason may be omitted when it
// is Success and there are no properties). The hottest packet of QoS 1/2.
void Broker::send_ack(Link& link, protocol::PacketType type, uint16_t id, ReasonCode reason) {
  if (debugging()) [[unlikely]] debug_sent_ack(link, type, id, reason);
  const bool with_reason = link.version == Version::kV5 && reason != ReasonCode::kSuccess;
  // PUBREL's fixed header flags are 0010 [MQTT-3.6.1-1].
  const uint8_t flags = type == protocol::PacketType::kPubrel ? 0x02 : 0x00;
  const char bytes[5] = {static_cast<char>((static_cast<uint8_t>(type) << 4) | flags),
                         static_cast<char>(with_reason ? 3 : 2), static_cast<char>(id >> 8),
                         static_cast<char>(id & 0xff), static_cast<char>(reason)};
  link.out().append(bytes, with_reason ? 5 : 4);
  if (journal_ && !journal_->empty()) link.awaits_commit();
  link.commit();
  Stats::add(stats_.messages_sent);
}

ReasonCode Broker::check_connect(const Link& link, const protocol::ConnectPacket& c, bool id_assigned,
                                 ReasonCode credentials) const {
  if (c.client_id.empty() && !id_assigned) {
    // 5.0: 0x85 MAY be used (3.1.3-8); Mosquitto answers 0x80, and so does
    // Midge (issue 14). 3.1.1: return code 2, identifier rejected.
    return c.version == Version::kV5 ? ReasonCode::kUnspecifiedError : ReasonCode::kClientIdentifierNotValid;
  }
  if (credentials != ReasonCode::kSuccess) return credentials;
  if (c.properties.authentication_method) return ReasonCode::kBadAuthenticationMethod;
  // 3.x clients cannot be told a server keep alive: mosquitto refuses them
  // (identifier rejected) when they ask for more than max_keepalive.
  if (c.version != Version::kV5 &&
      (c.keep_alive > settings_.max_keepalive ||
       (c.keep_alive == 0 && settings_.max_keepalive < 65535))) {
    return ReasonCode::kClientIdentifierNotValid;
  }
  if (c.will) {
    if (c.will->qos > max_qos(&link)) return ReasonCode::kQosNotSupported;      // [MQTT-3.2.2-12]
    if (c.will->retain && !settings_.retain_available) return ReasonCode::kRetainNotSupported;
    // The will is a message like any other: refused at CONNECT, as Mosquitto does.
    if (settings_.message_size_limit != 0 && c.will->payload.size() > settings_.message_size_limit) {
      return ReasonCode::kPacketTooLarge;
    }
  }
  return ReasonCode::kSuccess;
}

// Mosquitto 2.0.11's rules, found by experiment (tests/integration/test_auth.py):
// every refusal is "not authorised" (3.1.1 return code 5, 5.0 reason 0x87),
// never "bad user name or password" (4 / 0x86).
// - An absent or empty user name is anonymous: allowed iff allow_anonymous,
//   whatever the password file says.
// - A named client needs, when a password file is loaded (an
//   authenticator), its user in the file and a password that matches (no
//   password at all does not match); the file is authoritative even with
//   allow_anonymous true.
// - Without a password file nothing can vouch for a user name, so a named
//   client is then treated like an anonymous one.
std::optional<ReasonCode> Broker::check_credentials(const protocol::ConnectPacket& c, Authenticator::Reply reply,
                                                    const AccessPolicy* policy) const {
  Authenticator* authenticator = policy ? policy->authenticator.get() : shared_.authenticator.get();
  const bool allow_anonymous = policy ? policy->allow_anonymous : settings_.allow_anonymous;
  const bool anonymous = !c.username || c.username->empty();
  if (!anonymous && authenticator) {
    return authenticator->authenticate(Credentials{c.client_id, *c.username, c.password}, std::move(reply));
  }
  return allow_anonymous ? ReasonCode::kSuccess : ReasonCode::kNotAuthorized;
}

ReasonCode Broker::refuse(Link& link, const protocol::ConnectPacket& c, ReasonCode reason) {
  protocol::ConnackPacket ack;
  ack.reason = reason;
  link.version = c.version;
  send(link, ack);
  link.close_for(reason, nullptr, c.client_id);
  return reason;
}

bool Broker::on_connect(Link& link, protocol::ConnectPacket&& c, bool id_assigned, TimePoint now) {
  // Nothing here could take a later answer: an authenticator that needs
  // one is told nobody waits for it.
  Authenticator::Reply nobody;
  nobody.wanted = [] { return false; };
  const ReasonCode credentials = check_credentials(c, std::move(nobody)).value_or(ReasonCode::kServerUnavailable);
  return connect(link, std::move(c), id_assigned, credentials, now) == ReasonCode::kSuccess;
}

ReasonCode Broker::connect(Link& link, protocol::ConnectPacket&& c, bool id_assigned, ReasonCode credentials,
                           TimePoint now, const AccessPolicy* policy) {
  link.version = c.version;
  Stats::add(stats_.messages_received);
  if (ReasonCode reason = check_connect(link, c, id_assigned, credentials); reason != ReasonCode::kSuccess) {
    return refuse(link, c, reason);
  }
  const std::string_view username = c.username ? std::string_view(*c.username) : std::string_view();
  auto it = sessions_.find(c.client_id);
  Session* session = it == sessions_.end() ? nullptr : it->second.get();
  // M8: otherwise user B, naming user A's client id, inherits A's
  // subscriptions and queued messages (Mosquitto allows it too).
  if (session && settings_.refuse_cross_user_takeover &&
      (session->username ? std::string_view(*session->username) : std::string_view()) != username) {
    return refuse(link, c, ReasonCode::kNotAuthorized);
  }
  Stats::add(stats_.connections_total);
  bool present = false;
  if (session) {
    const bool was_offline = session->link == nullptr;
    // Clean Start ends the old session [MQTT-3.1.2-4]; so does an expiry of
    // 0, with the old connection that the new one takes over: no session
    // is then present, as with Mosquitto.
    const bool ends = c.clean_start || session->expiry_interval == 0;
    take_over(*session, ends, now);
    if (was_offline) Stats::add(stats_.clients_disconnected, -1);
    if (ends) {
      end_session(*session, now);
      session = nullptr;
    } else {
      present = true;
    }
  }
  if (!session) {
    auto owned = std::make_unique<Session>();
    owned->client_id = c.client_id;
    session = owned.get();
    const std::string_view key = owned->client_id;
    sessions_.emplace(key, std::move(owned));
  }
  attach(*session, link, c);
  session->username = username.empty() ? nullptr : std::make_unique<const std::string>(username);
  give_access(*session, policy);
  Authenticator* authenticator = policy ? policy->authenticator.get() : shared_.authenticator.get();
  session->credential_stamp = static_cast<uint32_t>(
      session->username && authenticator ? authenticator->credential_stamp(*session->username) : 0);
  store_session(*session);
  link.accepted();
  send_connack(*session, c, present, id_assigned);
  if (present) resume(*session, now);
  return ReasonCode::kSuccess;
}

// The rules of the connecting client, from its listener's Authorizer or the
// broker's; a resumed session's subscriptions are classified again, since
// its user name, and so its rules, may have changed.
void Broker::give_access(Session& session, const AccessPolicy* policy) {
  Authorizer* authorizer = policy ? policy->authorizer.get() : shared_.authorizer.get();
  const bool had = session.access != nullptr;
  session.access = authorizer ? authorizer->access_for(session.client_id, session.username.get()) : nullptr;
  if (!had && !session.access) return;
  classify_subscriptions(session);
  drop_unreadable(session, /*inflight_too=*/true);
}

// Marks each subscription whose topics the session may only partly read,
// so that its deliveries are checked (route). Shared subscriptions are
// checked at every delivery (on_shared_delivery).
void Broker::classify_subscriptions(Session& session) {
  for (const auto& [filter, sub] : session.subscriptions) {
    std::string_view group, inner;
    if (protocol::split_shared_filter(filter, group, inner)) continue;
    const bool check = session.access && session.access->readable(filter) != Coverage::kAll;
    tree_.subscribe(filter, SubscriptionEntry{&session, sub.options, sub.subscription_id, check});
  }
}

// Messages kept for a client that may no longer read their topic (its user
// name or the ACL changed) are dropped, as Mosquitto does at CONNECT; those
// in flight only while they have not been sent on this connection.
void Broker::drop_unreadable(Session& session, bool inflight_too) {
  if (!session.access) return;
  for (auto it = session.queue.begin(); it != session.queue.end();) {
    if (may_read(session, it->message->topic)) {
      ++it;
      continue;
    }
    forget_stored(*it);
    unstore_delivery(session, *it);
    if (it->from_retained) {
      --session.queued_replays;
    } else {
      session.queued_bytes -= queued_size(*it);
    }
    it = session.queue.erase(it);
    Stats::add(stats_.queued_messages, -1);
  }
  if (!inflight_too) return;
  for (auto it = session.inflight.begin(); it != session.inflight.end();) {
    // A released QoS 2 message (PUBREL sent) has no message left to drop.
    if (!it->delivery.message || may_read(session, it->delivery.message->topic)) {
      ++it;
      continue;
    }
    forget_stored(it->delivery);
    unstore_delivery(session, it->delivery);
    it = session.inflight.erase(it);
    Stats::add(stats_.inflight_messages, -1);
  }
}

// Who published a retained message, when check_retain_source will ask.
std::shared_ptr<const RetainSource> Broker::retain_source(const Session& session) const {
  if (!settings_.check_retain_source) return nullptr;
  // Offline (a delayed will), the listener is no longer known: the broker's
  // rules, if any, are kept with the message.
  const AccessPolicy* policy = session.link ? session.link->policy() : nullptr;
  const Authorizer* authorizer = policy ? policy->authorizer.get() : shared_.authorizer.get();
  if (!authorizer) return nullptr;
  auto source = std::make_shared<RetainSource>();
  if (session.username) source->username = std::make_unique<const std::string>(*session.username);
  source->authorizer = authorizer;
  if (policy) source->listener_port = session.link->listener_port();
  return source;
}

void Broker::renew_access() {
  for (auto& [id, session] : sessions_) {
    if (!session->access) continue;
    session->access = session->access->renewed();
    classify_subscriptions(*session);
    drop_unreadable(*session, /*inflight_too=*/session->link == nullptr);
  }
}

void Broker::revalidate(TimePoint now) {
  std::vector<Session*> refused;
  for (auto& [id, session] : sessions_) {
    const Session& s = *session;
    if (!s.link || s.link->certificate_login()) continue;
    const AccessPolicy* policy = s.link->policy();
    const Authenticator* authenticator = policy ? policy->authenticator.get() : shared_.authenticator.get();
    const bool allow_anonymous = policy ? policy->allow_anonymous : settings_.allow_anonymous;
    // The rules of check_credentials: a named client is checked by the
    // password file when there is one, else let in by allow_anonymous.
    const bool ok = s.username && authenticator
                        ? static_cast<uint32_t>(authenticator->credential_stamp(*s.username)) == s.credential_stamp
                        : allow_anonymous;
    if (!ok) refused.push_back(session.get());
  }
  for (Session* s : refused) disconnect(*s, ReasonCode::kNotAuthorized, now, "no longer authorised after a reload");
}

// A session already exists for this client id: close its connection, if any
// [MQTT-3.1.4-3], and cancel a pending delayed will [MQTT-3.1.3-9].
void Broker::take_over(Session& session, bool session_ends, TimePoint now) {
  if (session.link) {
    if (session.version == Version::kV5) {
      protocol::DisconnectPacket d;
      d.reason = ReasonCode::kSessionTakenOver;
      send(*session.link, d);
    }
    // The old connection ends without DISCONNECT. Its will goes out only if
    // the session ends too and the will has no delay: otherwise a new
    // connection for the client id came before the delay passed
    // [MQTT-3.1.2-8], [MQTT-3.1.3-9]. 3.1.1 the same, as Mosquitto: a
    // take-over is not among the cases of 3.1.2.5.
    if (session.will && session_ends && session.will->properties.will_delay_interval.value_or(0) == 0) {
      publish_will(session, now);
    }
    session.will.reset();
    forget_delayed_acks(session);
    Link* old = session.link;
    old->session = nullptr;
    session.link = nullptr;
    Stats::add(stats_.clients_connected, -1);
    shared_.shared_subscriptions.set_online(session.client_id, false);
    old->close_for(ReasonCode::kSessionTakenOver, nullptr, session.client_id);
  } else if (session.will_at) {
    // The client is back before the will delay passed [MQTT-3.1.3-9]: no
    // will, even with Clean Start, which ends the old session now (the
    // specification allows either reading; Mosquitto drops it).
    session.will.reset();
    session.will_at.reset();
  }
  session.expires_at.reset();
  disarm_timer(session);
}

void Broker::attach(Session& session, Link& link, const protocol::ConnectPacket& c) {
  session.link = &link;
  link.session = &session;
  session.version = c.version;
  if (c.version == Version::kV5) {
    session.expiry_interval = c.properties.session_expiry_interval.value_or(0);
  } else {
    session.expiry_interval = c.clean_start ? 0 : kSessionNeverExpires;
  }
  session.will = c.will ? std::make_unique<protocol::Will>(*c.will) : nullptr;
  if (session.will && !link.mount_point().empty()) session.will->topic.insert(0, link.mount_point());
  session.will_at.reset();
  session.expires_at.reset();
  uint32_t window = c.properties.receive_maximum.value_or(65535);
  if (settings_.max_inflight_messages != 0) window = std::min<uint32_t>(window, settings_.max_inflight_messages);
  session.send_window = static_cast<uint16_t>(window);
  session.client_max_packet = c.properties.maximum_packet_size.value_or(0);
  session.client_alias_max = c.properties.topic_alias_maximum.value_or(0);
  session.aliases.reset();
  session.keep_alive = c.keep_alive;
  if (c.version == Version::kV5 && (c.keep_alive > settings_.max_keepalive ||
                                    (c.keep_alive == 0 && settings_.max_keepalive < 65535))) {
    session.keep_alive = settings_.max_keepalive;  // sent as Server Keep Alive
  }
  session.request_problem_information = c.properties.request_problem_information.value_or(1) != 0;
  Stats::add(stats_.clients_connected, 1);
  shared_.shared_subscriptions.set_online(session.client_id, true);
  // $SYS/broker/clients/maximum: the most clients connected at once.
  int64_t connected = 0;
  for (const Stats* s : shared_.worker_stats) connected += s->clients_connected.load(std::memory_order_relaxed);
  int64_t seen = shared_.clients_maximum.load(std::memory_order_relaxed);
  while (connected > seen && !shared_.clients_maximum.compare_exchange_weak(seen, connected)) {
  }
}

void Broker::send_connack(Session& session, const protocol::ConnectPacket& c, bool present,
                          bool id_assigned) {
  if (debugging()) [[unlikely]] debug_will(c);
  protocol::ConnackPacket ack;
  ack.session_present = present;  // [MQTT-3.2.2-2]
  if (c.version == Version::kV5) {
    auto& p = ack.properties;
    if (id_assigned) p.assigned_client_identifier = session.client_id;
    // The administrator's cap on session lifetimes, told to the client
    // (3.2.2.3.2); applied at disconnect (detach).
    const auto& cap = settings_.persistent_client_expiration;
    if (cap && session.expiry_interval > *cap) p.session_expiry_interval = static_cast<uint32_t>(*cap);
    if (session.keep_alive != c.keep_alive) p.server_keep_alive = session.keep_alive;
    if (settings_.max_inflight_messages != 0 && settings_.max_inflight_messages != 65535) {
      p.receive_maximum = settings_.max_inflight_messages;
    }
    if (settings_.max_packet_size != 0) p.maximum_packet_size = settings_.max_packet_size;
    if (settings_.max_topic_alias != 0) p.topic_alias_maximum = settings_.max_topic_alias;
    if (!settings_.retain_available) p.retain_available = 0;
    if (max_qos(session.link) < 2) p.maximum_qos = max_qos(session.link);
    if (c.properties.request_response_information.value_or(0) == 1 && session.client_id.size() <= 65535 - 15) {
      p.response_information = "midge/response/" + session.client_id;
    }
  }
  send(*session.link, ack);
}

// Resends what was in flight, in order, then what was queued [MQTT-4.4.0-1].
// What does not fit the output bound now goes out from on_link_writable.
void Broker::resume(Session& session, TimePoint now) {
  session.resend_count = session.inflight.size();
  pump(session, now);
}

// One timer entry per session, at its next deadline: the delayed will or,
// while offline, the session's expiry.
void Broker::arm_timer(Session& session) {
  disarm_timer(session);
  MaybeTime at = session.will_at;
  if (!session.link && session.expires_at && (!at || *session.expires_at < *at)) at = session.expires_at;
  if (!at) return;
  session.timer = timers_.emplace(*at, &session);
  session.timer_armed = true;
}

void Broker::disarm_timer(Session& session) {
  if (!session.timer_armed) return;
  timers_.erase(session.timer);
  session.timer_armed = false;
}

// The connection of `session` is gone. `send_will` is false after a normal
// DISCONNECT [MQTT-3.1.2-10].
void Broker::detach(Session& session, bool send_will, TimePoint now) {
  Link* link = session.link;
  if (link) {
    forget_delayed_acks(session);
    link->session = nullptr;
    session.link = nullptr;
    Stats::add(stats_.clients_connected, -1);
    shared_.shared_subscriptions.set_online(session.client_id, false);
  }
  session.aliases.reset();
  if (!send_will) session.will.reset();
  if (session.will) {
    const uint32_t delay = session.will->properties.will_delay_interval.value_or(0);
    if (delay == 0 || session.expiry_interval == 0) {
      publish_will(session, now);
    } else {
      // Sent when the delay passes or the session ends, whichever is first
      // [MQTT-3.1.3-9].
      const uint32_t wait = std::min(delay, session.expiry_interval);
      session.will_at = now + seconds(wait);
    }
  }
  if (session.expiry_interval == 0) {
    end_session(session, now);
    return;
  }
  Stats::add(stats_.clients_disconnected, 1);
  std::optional<uint64_t> expiry;
  if (session.expiry_interval != kSessionNeverExpires) expiry = session.expiry_interval;
  // persistent_client_expiration caps what a v5 client asks for too (review M4).
  const auto& cap = settings_.persistent_client_expiration;
  if (cap && (!expiry || *expiry > *cap)) expiry = cap;
  // Beyond about 292 years `now + seconds` would overflow TimePoint.
  if (expiry) session.expires_at = now + seconds(std::min<uint64_t>(*expiry, kSessionNeverExpires));
  arm_timer(session);
  store_session(session);  // offline now: its expiry and delayed will
}

void Broker::end_session(Session& session, TimePoint now) {
  if (session.will && session.will_at) publish_will(session, now);  // the session ends first
  if (session.link) {
    forget_delayed_acks(session);
    session.link->session = nullptr;
    session.link = nullptr;
    Stats::add(stats_.clients_connected, -1);
  }
  for (const auto& [filter, sub] : session.subscriptions) {
    std::string_view group, inner;
    if (protocol::split_shared_filter(filter, group, inner)) {
      shared_.shared_subscriptions.remove(std::string(group), std::string(inner), session.client_id);
      Stats::add(stats_.shared_subscriptions, -1);
    } else {
      if (tree_.unsubscribe(filter, &session)) interest_.remove(filter);
    }
    Stats::add(stats_.subscriptions, -1);
  }
  for (const InflightOut& f : session.inflight) forget_stored(f.delivery);
  for (const Delivery& d : session.queue) forget_stored(d);
  Stats::add(stats_.inflight_messages, -static_cast<int64_t>(session.inflight.size()));
  Stats::add(stats_.queued_messages, -static_cast<int64_t>(session.queue.size()));
  unstore_session(session);
  disarm_timer(session);
  const std::string id = session.client_id;  // session is destroyed below
  sessions_.erase(id);
}

void Broker::publish_will(Session& session, TimePoint now) {
  if (!session.will) return;
  protocol::Will will = std::move(*session.will);
  session.will.reset();
  session.will_at.reset();
  if (will.topic.rfind("$SYS", 0) == 0) return;  // clients cannot publish into $SYS
  if (session.access && !session.access->allows(will.topic, Access::kWrite)) return;
  MessagePtr shared = client_message(session, will.topic, will.payload, will.qos, will.retain,
                                     will.properties, now);
  if (shared->retain) {
    std::shared_ptr<const RetainSource> source = retain_source(session);
    store_retained(*shared, source.get());
    shared_.retained.put(shared, std::move(source));
  }
  route(shared, now, /*from_remote=*/false);
}

void Broker::handle_disconnect(Session& session, const protocol::DisconnectPacket& p, TimePoint now) {
  if (session.version == Version::kV5 && p.properties.session_expiry_interval) {
    // A session that ends with its connection cannot be given a lifetime
    // at DISCONNECT [MQTT-3.14.2-2].
    if (session.expiry_interval == 0 && *p.properties.session_expiry_interval != 0) {
      disconnect(session, ReasonCode::kProtocolError, now);
      return;
    }
    session.expiry_interval = *p.properties.session_expiry_interval;
  }
  const bool keep_will = session.version == Version::kV5 && p.reason == ReasonCode::kDisconnectWithWill;
  Link* link = session.link;
  detach(session, keep_will, now);
  link->close();
}

// The server ends the connection: DISCONNECT with a reason for v5 clients
// [MQTT-4.13.1-1], then close; the will is published.
void Broker::disconnect(Session& session, ReasonCode reason, TimePoint now, const char* why) {
  Link* link = session.link;
  if (!link) return;
  if (session.version == Version::kV5) {
    protocol::DisconnectPacket d;
    d.reason = reason;
    // No Reason String: Mosquitto sends none, and `why` is in the log
    // already (Link::close_for).
    send(*link, d);
  }
  const std::string client_id = session.client_id;  // detach may end the session
  detach(session, /*send_will=*/true, now);
  link->close_for(reason, why, client_id);
}

void Broker::on_protocol_error(Link& link, ReasonCode reason, TimePoint now, const char* why) {
  if (link.session) {
    disconnect(*link.session, reason, now, why);
    return;
  }
  link.close();
}

void Broker::on_keepalive_expired(Link& link, TimePoint now) {
  on_protocol_error(link, ReasonCode::kKeepAliveTimeout, now);
}

void Broker::on_link_lost(Link& link, TimePoint now) {
  if (link.session) detach(*link.session, /*send_will=*/true, now);
}

void Broker::on_link_writable(Link& link, TimePoint now) {
  if (link.session) pump(*link.session, now);
}

void Broker::on_publish(Link& link, protocol::PublishView& publish, TimePoint now) {
  Session* session = link.session;
  if (!session) return;
  Stats::add(stats_.messages_received);
  handle_publish(*session, publish, now);
}

void Broker::on_packet(Link& link, protocol::Packet&& packet, TimePoint now) {
  Session* session = link.session;
  if (!session) return;
  Stats::add(stats_.messages_received);
  if (debugging()) [[unlikely]] debug_received(*session, packet);
  if (auto* publish = std::get_if<protocol::PublishPacket>(&packet)) {
    protocol::PublishView view = protocol::view_of(*publish);
    handle_publish(*session, view, now);
  } else if (auto* ack = std::get_if<protocol::AckPacket>(&packet)) {
    handle_ack(*session, *ack, now);
  } else if (auto* sub = std::get_if<protocol::SubscribePacket>(&packet)) {
    handle_subscribe(*session, *sub, now);
  } else if (auto* unsub = std::get_if<protocol::UnsubscribePacket>(&packet)) {
    handle_unsubscribe(*session, *unsub);
  } else if (std::holds_alternative<protocol::PingreqPacket>(packet)) {
    send(link, protocol::PingrespPacket{});
  } else if (auto* d = std::get_if<protocol::DisconnectPacket>(&packet)) {
    handle_disconnect(*session, *d, now);
  } else {
    // A second CONNECT [MQTT-3.1.0-2], AUTH without an authentication
    // method, or a packet only a server sends.
    disconnect(*session, ReasonCode::kProtocolError, now);
  }
}

void Broker::tick(TimePoint now) {
  while (!timers_.empty() && timers_.begin()->first <= now) {
    Session& session = *timers_.begin()->second;
    disarm_timer(session);
    if (session.will_at && *session.will_at <= now) {
      publish_will(session, now);
      store_session(session);  // without its will
    }
    if (!session.link && session.expires_at && *session.expires_at <= now) {
      Stats::add(stats_.clients_expired);
      Stats::add(stats_.clients_disconnected, -1);
      end_session(session, now);
      continue;
    }
    arm_timer(session);
  }
  if (worker_ == 0) {
    shared_.retained.expire(now, [this](const Message& m) {
      if (journal_) journal_->erase_retained(m.topic);  // [MQTT-3.3.2-5]: gone from the store too
    });
  }
  if (worker_ == 0 && settings_.sys_interval > 0 && now >= next_sys_) {
    publish_sys(now);
    next_sys_ = now + seconds(settings_.sys_interval);
  }
}

void Broker::shutdown(TimePoint now) {
  if (journal_) journal_all_deferred();
  std::vector<Session*> online;
  for (auto& [id, session] : sessions_) {
    if (session->link) online.push_back(session.get());
  }
  for (Session* session : online) disconnect(*session, ReasonCode::kServerShuttingDown, now);
}

}  // namespace midge::broker
