// $SYS/broker/... statistics, with Mosquitto's topic names, published as
// retained messages every sys_interval seconds by worker 0.
#include <cmath>
#include <string>

#include "broker/broker.h"
#include "protocol/reason_code.h"

namespace midge::broker {
namespace {

struct Totals {
  uint64_t messages_received = 0, messages_sent = 0;
  uint64_t publish_received = 0, publish_sent = 0, publish_dropped = 0;
  uint64_t publish_denied = 0, subscribe_denied = 0;
  uint64_t publish_bytes_received = 0, publish_bytes_sent = 0;
  uint64_t bytes_received = 0, bytes_sent = 0;
  uint64_t connections = 0, sockets = 0, expired = 0;
  int64_t connected = 0, disconnected = 0, subscriptions = 0, shared_subscriptions = 0;
  int64_t stored_messages = 0, stored_bytes = 0;
};

Totals sum(const std::vector<Stats*>& all) {
  Totals t;
  auto get = [](const auto& c) { return c.load(std::memory_order_relaxed); };
  for (const Stats* s : all) {
    t.messages_received += get(s->messages_received);
    t.messages_sent += get(s->messages_sent);
    t.publish_received += s->publish_received();
    t.publish_sent += s->publish_sent();
    t.publish_dropped += get(s->publish_dropped);
    t.publish_denied += get(s->publish_denied);
    t.subscribe_denied += get(s->subscribe_denied);
    t.publish_bytes_received += get(s->publish_bytes_received);
    t.publish_bytes_sent += get(s->publish_bytes_sent);
    t.bytes_received += get(s->bytes_received);
    t.bytes_sent += get(s->bytes_sent);
    t.connections += get(s->connections_total);
    t.sockets += get(s->sockets_total);
    t.expired += get(s->clients_expired);
    t.connected += get(s->clients_connected);
    t.disconnected += get(s->clients_disconnected);
    t.subscriptions += get(s->subscriptions);
    t.shared_subscriptions += get(s->shared_subscriptions);
    t.stored_messages += get(s->stored_messages);
    t.stored_bytes += get(s->stored_bytes);
  }
  return t;
}

std::string fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

}  // namespace

namespace {

std::string_view log_topic(util::LogType type) {
  switch (type) {
    case util::LogType::kError: return "$SYS/broker/log/E";
    case util::LogType::kWarning: return "$SYS/broker/log/W";
    case util::LogType::kNotice: return "$SYS/broker/log/N";
    case util::LogType::kInformation: return "$SYS/broker/log/I";
    case util::LogType::kSubscribe: return "$SYS/broker/log/M/subscribe";
    case util::LogType::kUnsubscribe: return "$SYS/broker/log/M/unsubscribe";
    case util::LogType::kWebsockets: return "$SYS/broker/log/WS";
    case util::LogType::kDebug: return "$SYS/broker/log/D";
  }
  return "$SYS/broker/log/E";
}

}  // namespace

void Broker::publish_log(util::LogType type, std::string line, TimePoint now) {
  MessageFields f;
  f.topic = log_topic(type);
  f.payload = line;
  f.qos = 2;
  f.expires_at = now + std::chrono::seconds(20);
  route(Message::create(f), now, /*from_remote=*/false);
}

void Traffic::copy_from(const Traffic& o) {
  auto copy = [](Counter& to, const Counter& from) { to.store(from.load(std::memory_order_relaxed), std::memory_order_relaxed); };
  copy(sockets, o.sockets);
  copy(bytes_received, o.bytes_received);
  copy(bytes_sent, o.bytes_sent);
  for (int q = 0; q < 3; ++q) {
    copy(publish_received[q], o.publish_received[q]);
    copy(publish_sent[q], o.publish_sent[q]);
  }
}

uint64_t Stats::publish_received() const {
  uint64_t n = 0;
  for (size_t i = 0; i < traffic_slots_; ++i) {
    for (const Counter& c : traffic_[i].publish_received) n += c.load(std::memory_order_relaxed);
  }
  return n;
}

uint64_t Stats::publish_sent() const {
  uint64_t n = 0;
  for (size_t i = 0; i < traffic_slots_; ++i) {
    for (const Counter& c : traffic_[i].publish_sent) n += c.load(std::memory_order_relaxed);
  }
  return n;
}

uint16_t Stats::add_traffic_slot() {
  auto grown = std::make_unique<Traffic[]>(traffic_slots_ + 1);
  for (size_t i = 0; i < traffic_slots_; ++i) grown[i].copy_from(traffic_[i]);
  traffic_ = std::move(grown);
  return static_cast<uint16_t>(traffic_slots_++);
}

const char* drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kOutputFull: return "output_full";
    case DropReason::kQueueFull: return "queue_full";
    case DropReason::kTooLarge: return "too_large";
    case DropReason::kReplayLimit: return "replay_limit";
    case DropReason::kStoreUnavailable: return "store_unavailable";
    case DropReason::kCount: break;
  }
  return "unknown";
}

void Broker::publish_sys(TimePoint now) {
  const Totals t = sum(shared_.worker_stats);
  auto pub = [&](const std::string& name, const std::string& value) {
    publish_internal("$SYS/broker/" + name, value, /*retain=*/true, now);
  };
  auto num = [&](const std::string& name, auto value) { pub(name, std::to_string(value)); };
  const auto uptime = std::chrono::duration_cast<seconds>(now - shared_.start_time).count();
  pub("version", settings_.version);
  pub("uptime", std::to_string(uptime) + " seconds");
  num("clients/connected", t.connected);
  num("clients/active", t.connected);
  num("clients/disconnected", t.disconnected);
  num("clients/inactive", t.disconnected);
  num("clients/total", t.connected + t.disconnected);
  num("clients/maximum", shared_.clients_maximum.load(std::memory_order_relaxed));
  num("clients/expired", t.expired);
  num("messages/received", t.messages_received);
  num("messages/sent", t.messages_sent);
  num("messages/stored", t.stored_messages + static_cast<int64_t>(shared_.retained.count()));
  num("store/messages/count", t.stored_messages + static_cast<int64_t>(shared_.retained.count()));
  num("store/messages/bytes", t.stored_bytes + static_cast<int64_t>(shared_.retained.bytes()));
  num("publish/messages/received", t.publish_received);
  num("publish/messages/sent", t.publish_sent);
  num("publish/messages/dropped", t.publish_dropped);
  num("publish/bytes/received", t.publish_bytes_received);
  num("publish/bytes/sent", t.publish_bytes_sent);
  num("bytes/received", t.bytes_received);
  num("bytes/sent", t.bytes_sent);
  num("subscriptions/count", t.subscriptions);
  // Refused by the ACL (Midge extensions); published once there is one.
  if (t.publish_denied != 0) num("publish/messages/denied", t.publish_denied);
  if (t.subscribe_denied != 0) num("subscriptions/denied", t.subscribe_denied);
  num("shared_subscriptions/count", t.shared_subscriptions);
  num("retained messages/count", shared_.retained.count());
  // Connections the broker ended, by reason (a Midge extension): e.g.
  // $SYS/broker/disconnects/Keep Alive timeout. Only reasons seen so far.
  for (unsigned code = 0; code < 256; ++code) {
    uint64_t n = 0;
    for (const Stats* st : shared_.worker_stats) n += st->disconnects[code].load(std::memory_order_relaxed);
    if (n != 0) num(std::string("disconnects/") + protocol::reason_code_name(static_cast<protocol::ReasonCode>(code)), n);
  }

  // Load averages: events per minute, exponentially smoothed over 1, 5 and
  // 15 minutes as Mosquitto does.
  const double interval = last_sys_ == TimePoint{}
                              ? static_cast<double>(settings_.sys_interval)
                              : std::chrono::duration<double>(now - last_sys_).count();
  last_sys_ = now;
  const std::pair<const char*, uint64_t> counters[] = {
      {"messages/received", t.messages_received}, {"messages/sent", t.messages_sent},
      {"publish/received", t.publish_received},   {"publish/sent", t.publish_sent},
      {"publish/dropped", t.publish_dropped},     {"bytes/received", t.bytes_received},
      {"bytes/sent", t.bytes_sent},               {"sockets", t.sockets},
      {"connections", t.connections},
  };
  static constexpr double kPeriods[3] = {60, 300, 900};
  static constexpr const char* kNames[3] = {"1min", "5min", "15min"};
  for (const auto& [name, value] : counters) {
    Load& load = loads_[name];
    const double rate = interval > 0 ? static_cast<double>(value - load.last) * 60.0 / interval : 0;
    load.last = value;
    for (int i = 0; i < 3; ++i) {
      const double k = std::exp(-interval / kPeriods[i]);
      load.avg[i] = rate + k * (load.avg[i] - rate);
      pub(std::string("load/") + name + "/" + kNames[i], fixed2(load.avg[i]));
    }
  }
}

}  // namespace midge::broker
