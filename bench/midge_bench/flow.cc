// Message-flow scenarios: publishers send numbered, timestamped payloads and
// subscribers count what arrives. One epoll loop drives every connection.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "midge_bench/conn.h"
#include "midge_bench/scenarios.h"
#include "protocol/publish_encoder.h"

namespace midge::bench {
namespace {

using protocol::AckPacket;
using protocol::Packet;
using protocol::PacketType;

constexpr size_t kReadBuffer = 256 * 1024;
// A publisher stops producing for this turn once this much output waits.
constexpr size_t kMaxPending = 256 * 1024;

struct Publisher {
  std::unique_ptr<Conn> conn;
  std::string topic;
  uint64_t sent = 0;
  uint64_t acked = 0;
  uint64_t quota = UINT64_MAX;
  uint32_t max_inflight = 65535;  // server Receive Maximum (v5) for QoS 1/2
  std::vector<uint32_t> receivers;
  std::vector<uint8_t> inflight;  // by packet id
  uint16_t next_id = 0;
};

struct Subscriber {
  std::unique_ptr<Conn> conn;
  std::string filter;
  uint32_t receiver = 0;
  bool subscribed = false;
  int64_t last_rx = 0;  // steady time of the last delivery
};

// Something that must get every message of its publishers once: a
// subscriber, or a whole shared-subscription group.
struct Receiver {
  std::vector<SeqTrack> from;  // by publisher index
};

class Flow final : public PacketHandler {
 public:
  Flow(const Options& o, const Link& link) : o_(o), link_(link) {}
  bool run(Report& report);

  void on_packet(Conn& conn, Packet& packet, int64_t now) override;
  void on_publish(Conn& conn, const PublishView& publish, int64_t now) override;
  void on_closed(Conn& conn, const char* why) override {
    if (error_.empty()) {
      error_ = std::string(conn.tag & 1 ? "subscriber" : "publisher") + " connection: " + why;
    }
  }

 private:
  void build();
  bool setup();
  void produce(Publisher& p, int64_t now);
  void on_subscriber_packet(Subscriber& s, Packet& packet, int64_t now);
  void on_publisher_packet(Publisher& p, Packet& packet);
  void send_ack(Conn& conn, PacketType type, uint16_t id);
  uint64_t delivered() const { return delivered_; }
  uint64_t expected() const;
  void fill(Report& report, bool ok_check, const char* check) const;

  const Options& o_;
  const Link& link_;
  std::string scenario_;
  int window_ = 100;
  double rate_ = 0;  // total messages/s, 0 = unpaced
  Loop loop_;
  std::vector<Publisher> pubs_;
  std::vector<Subscriber> subs_;
  std::vector<Receiver> receivers_;
  std::string payload_;
  Packet ack_ = AckPacket{};
  Histogram latency_;
  uint64_t delivered_ = 0;  // unique deliveries
  uint64_t progress_ = 0;   // deliveries + acks, to detect a stall
  uint64_t foreign_ = 0;    // payloads from no publisher of this run
  int64_t start_ = 0;
  int64_t send_end_ = 0;
  int64_t last_delivery_ = 0;
  int64_t max_gap_ = 0;
  double broker_cpu_ = -1;  // CPU seconds over the sending phase and drain
  double own_cpu_ = -1;
  std::string error_;
};

void Flow::build() {
  int npub = o_.publishers;
  int nsub = o_.subscribers;
  const std::string& s = o_.scenario;
  if (s == "fan-in") {
    npub = npub < 0 ? 8 : npub;
    nsub = nsub < 0 ? 1 : nsub;
  } else if (s == "fan-out") {
    npub = npub < 0 ? 1 : npub;
    nsub = nsub < 0 ? 100 : nsub;
  } else if (s == "pairs" || s == "latency") {
    npub = npub < 0 ? (s == "pairs" ? 100 : 1) : npub;
    nsub = npub;
  } else {  // shared
    npub = npub < 0 ? 8 : npub;
    nsub = nsub < 0 ? 4 : nsub;
  }
  npub = std::max(npub, 1);
  nsub = std::max(nsub, 1);
  window_ = o_.window >= 0 ? o_.window : (s == "latency" ? 0 : 100);
  rate_ = o_.rate > 0 ? o_.rate : (s == "latency" ? 10000 : 0);

  const std::string tag = run_tag();
  const std::string base = "bench/" + tag + "/";
  const bool pairs = s == "pairs" || s == "latency";
  const bool shared = s == "shared";
  receivers_.resize(shared ? 1 : static_cast<size_t>(nsub));
  for (Receiver& r : receivers_) r.from.resize(static_cast<size_t>(npub));

  pubs_.resize(static_cast<size_t>(npub));
  for (size_t i = 0; i < pubs_.size(); ++i) {
    Publisher& p = pubs_[i];
    p.conn = std::make_unique<Conn>(*this, o_.version, kReadBuffer, &link_);
    p.conn->tag = static_cast<uint32_t>(i * 2);
    p.topic = base + (s == "fan-out" ? std::string("0") : std::to_string(i));
    p.inflight.assign(65536, 0);
    if (pairs) {
      p.receivers = {static_cast<uint32_t>(i)};
    } else {
      for (uint32_t r = 0; r < receivers_.size(); ++r) p.receivers.push_back(r);
    }
  }
  if (o_.messages > 0) {
    for (size_t i = 0; i < pubs_.size(); ++i) {
      pubs_[i].quota = o_.messages / pubs_.size() + (i < o_.messages % pubs_.size() ? 1 : 0);
    }
  }
  subs_.resize(static_cast<size_t>(nsub));
  for (size_t i = 0; i < subs_.size(); ++i) {
    Subscriber& sub = subs_[i];
    sub.conn = std::make_unique<Conn>(*this, o_.version, kReadBuffer, &link_);
    sub.conn->tag = static_cast<uint32_t>(i * 2 + 1);
    sub.receiver = shared ? 0 : static_cast<uint32_t>(i);
    if (s == "fan-in") {
      sub.filter = base + "+";
    } else if (s == "fan-out") {
      sub.filter = base + "0";
    } else if (pairs) {
      sub.filter = base + std::to_string(i);
    } else {
      sub.filter = "$share/g/" + base + "+";
    }
  }
  payload_.assign(std::max(o_.payload, kPayloadHeaderSize), 'x');
}

// Connects everybody and subscribes; true when all are ready.
bool Flow::setup() {
  sockaddr_in to{};
  if (!resolve(o_, to)) {
    error_ = "cannot resolve " + o_.host;
    return false;
  }
  const std::string tag = run_tag();
  auto start = [&](Conn& c, const std::string& id, bool persistent) {
    if (!c.start_connect(to, nullptr)) {
      error_ = "connect failed";
      return false;
    }
    loop_.add(c);
    c.send(connect_packet(o_, id, persistent));
    loop_.mark(c);
    return true;
  };
  for (size_t i = 0; i < subs_.size(); ++i) {
    // Run-tagged ids: a persistent session is new (checked at CONNACK).
    if (!start(*subs_[i].conn, tag + "s" + std::to_string(i), o_.persistent)) return false;
  }
  for (size_t i = 0; i < pubs_.size(); ++i) {
    if (!start(*pubs_[i].conn, tag + "p" + std::to_string(i), false)) return false;
  }
  const int64_t deadline = now_ns() + static_cast<int64_t>(o_.connect_timeout * 1e9);
  while (error_.empty() && now_ns() < deadline) {
    loop_.turn(10);
    bool ready = true;
    for (const Subscriber& s : subs_) ready = ready && s.subscribed;
    for (const Publisher& p : pubs_) ready = ready && p.conn->connected;
    if (ready) return true;
  }
  if (error_.empty()) error_ = "timed out connecting and subscribing";
  return false;
}

void Flow::send_ack(Conn& conn, PacketType type, uint16_t id) {
  auto& a = std::get<AckPacket>(ack_);
  a.type = type;
  a.packet_id = id;
  conn.send(ack_);
  loop_.mark(conn);
}

void Flow::on_packet(Conn& conn, Packet& packet, int64_t now) {
  const size_t index = conn.tag / 2;
  if (conn.tag & 1) {
    on_subscriber_packet(subs_[index], packet, now);
  } else {
    on_publisher_packet(pubs_[index], packet);
  }
}

void Flow::on_publish(Conn& conn, const PublishView& pub, int64_t now) {
  if ((conn.tag & 1) == 0) return;  // publishers subscribe to nothing
  Subscriber& s = subs_[conn.tag / 2];
  PayloadHeader h;
  Receiver& r = receivers_[s.receiver];
  if (read_header(pub.payload.data(), pub.payload.size(), h) && h.publisher < r.from.size() &&
      !pub.retain) {
    // Longest silence of a subscriber while publishers are sending: an
    // event-loop stall in the broker shows here.
    if (send_end_ == 0 && s.last_rx > 0 && now > s.last_rx) {
      max_gap_ = std::max(max_gap_, now - s.last_rx);
    }
    s.last_rx = now;
    if (r.from[h.publisher].add(h.seq)) {
      ++delivered_;
      ++progress_;
      latency_.add(now - h.sent_ns);
      last_delivery_ = now;
    }
  } else {
    ++foreign_;
  }
  if (pub.qos == 1) send_ack(*s.conn, PacketType::kPuback, pub.packet_id);
  if (pub.qos == 2) send_ack(*s.conn, PacketType::kPubrec, pub.packet_id);
}

void Flow::on_subscriber_packet(Subscriber& s, Packet& packet, int64_t /*now*/) {
  if (auto* ack = std::get_if<AckPacket>(&packet)) {
    if (ack->type == PacketType::kPubrel) send_ack(*s.conn, PacketType::kPubcomp, ack->packet_id);
  } else if (auto* connack = std::get_if<protocol::ConnackPacket>(&packet)) {
    if (protocol::is_error(connack->reason)) {
      error_ = "subscriber refused by CONNACK";
      return;
    }
    if (connack->session_present) {
      error_ = "subscriber resumed an old session";
      return;
    }
    s.conn->connected = true;
    protocol::SubscribePacket sub;
    sub.packet_id = 1;
    sub.subscriptions.push_back({s.filter, {static_cast<uint8_t>(o_.qos)}});
    s.conn->send(sub);
    loop_.mark(*s.conn);
  } else if (auto* suback = std::get_if<protocol::SubackPacket>(&packet)) {
    if (suback->reasons.empty() || protocol::is_error(suback->reasons[0])) {
      error_ = "subscription refused: " + s.filter;
    }
    s.subscribed = true;
  }
}

void Flow::on_publisher_packet(Publisher& p, Packet& packet) {
  if (auto* ack = std::get_if<AckPacket>(&packet)) {
    if (ack->type == PacketType::kPubrec) {
      if (protocol::is_error(ack->reason)) {
        error_ = "PUBREC with an error reason code";
        return;
      }
      send_ack(*p.conn, PacketType::kPubrel, ack->packet_id);
      return;
    }
    if (ack->type == PacketType::kPuback || ack->type == PacketType::kPubcomp) {
      if (p.inflight[ack->packet_id]) {
        p.inflight[ack->packet_id] = 0;
        ++p.acked;
        ++progress_;
      }
    }
  } else if (auto* connack = std::get_if<protocol::ConnackPacket>(&packet)) {
    if (protocol::is_error(connack->reason)) {
      error_ = "publisher refused by CONNACK";
      return;
    }
    p.conn->connected = true;
    if (connack->properties.receive_maximum) p.max_inflight = *connack->properties.receive_maximum;
  }
}

void Flow::produce(Publisher& p, int64_t now) {
  uint64_t limit = p.quota;
  if (rate_ > 0) {
    const double per_pub = rate_ / static_cast<double>(pubs_.size());
    limit = std::min(limit, static_cast<uint64_t>(per_pub * seconds(now - start_)) + 1);
  }
  if (window_ > 0) {
    // End to end: the slowest receiver of this publisher bounds it. A lost
    // message does not close the window for good: progress is the highest
    // sequence number seen (one publisher's messages arrive in order
    // [MQTT-4.6.0-6]; the losses are still counted).
    uint64_t done = UINT64_MAX;
    for (uint32_t r : p.receivers) done = std::min(done, receivers_[r].from[p.conn->tag / 2].reached());
    if (o_.qos > 0) done = std::min(done, p.acked);
    limit = std::min(limit, done + static_cast<uint64_t>(window_));
  }
  if (o_.qos > 0) limit = std::min(limit, p.acked + p.max_inflight);
  if (p.sent >= limit || p.conn->pending() >= kMaxPending) return;

  protocol::OutgoingPublish out;
  out.topic = p.topic;
  out.qos = static_cast<uint8_t>(o_.qos);
  PayloadHeader h;
  h.publisher = p.conn->tag / 2;
  h.sent_ns = now;
  std::string& buf = p.conn->out();
  while (p.sent < limit && buf.size() < kMaxPending) {
    if (o_.qos > 0) {
      const uint16_t id = static_cast<uint16_t>(p.next_id % 65535 + 1);
      if (p.inflight[id]) break;  // acks came back out of order; wait
      p.inflight[id] = 1;
      p.next_id = id;
      out.packet_id = id;
    }
    h.seq = static_cast<uint32_t>(p.sent);
    write_header(h, payload_.data());
    out.payload = payload_;
    protocol::encode_publish(out, o_.version, buf);
    ++p.sent;
  }
  loop_.mark(*p.conn);
}

uint64_t Flow::expected() const {
  uint64_t n = 0;
  for (const Publisher& p : pubs_) n += p.sent * p.receivers.size();
  return n;
}

bool Flow::run(Report& report) {
  build();
  if (!setup()) {
    fill(report, false, "fail");
    return false;
  }
  start_ = now_ns();
  last_delivery_ = start_;
  const double broker_cpu0 = o_.broker_pid > 0 ? cpu_seconds(o_.broker_pid) : -1;
  const double own_cpu0 = cpu_seconds(0);
  const int64_t duration_ns = static_cast<int64_t>(o_.duration * 1e9);
  const int64_t stall_ns = static_cast<int64_t>(std::max(o_.drain_timeout, 1.0) * 1e9);
  int64_t last_progress_at = start_;
  uint64_t last_progress = 0;
  // Sending phase.
  while (error_.empty()) {
    const int64_t now = now_ns();
    if (o_.messages == 0 && now - start_ >= duration_ns) break;
    bool all_sent = true;
    for (Publisher& p : pubs_) {
      produce(p, now);
      all_sent = all_sent && p.sent >= p.quota;
    }
    if (all_sent) break;
    if (progress_ != last_progress) {
      last_progress = progress_;
      last_progress_at = now;
    } else if (now - last_progress_at > stall_ns && window_ > 0) {
      break;  // nothing moves: the window never reopens
    }
    loop_.turn(rate_ > 0 || window_ == 0 ? 1 : 100);
  }
  send_end_ = now_ns();
  // Drain: wait for outstanding acks and deliveries; for a lossy run, stop
  // when nothing arrived for a while.
  const int64_t drain_end = send_end_ + static_cast<int64_t>(o_.drain_timeout * 1e9);
  const int64_t quiet_ns = o_.qos == 0 && window_ == 0 ? 500'000'000 : stall_ns;
  last_progress_at = send_end_;
  while (error_.empty()) {
    uint64_t acked = 0;
    uint64_t sent = 0;
    for (const Publisher& p : pubs_) {
      acked += p.acked;
      sent += p.sent;
    }
    if (delivered_ >= expected() && (o_.qos == 0 || acked >= sent)) break;
    const int64_t now = now_ns();
    if (now >= drain_end) break;
    if (progress_ != last_progress) {
      last_progress = progress_;
      last_progress_at = now;
    } else if (now - last_progress_at > quiet_ns) {
      break;
    }
    loop_.turn(10);
  }
  if (broker_cpu0 >= 0) broker_cpu_ = cpu_seconds(o_.broker_pid) - broker_cpu0;
  own_cpu_ = cpu_seconds(0) - own_cpu0;
  uint64_t lost = expected() - std::min(expected(), delivered_);
  uint64_t dup = 0;
  for (const Receiver& r : receivers_) {
    for (const SeqTrack& t : r.from) dup += t.duplicated();
  }
  uint64_t acked = 0;
  uint64_t sent = 0;
  for (const Publisher& p : pubs_) {
    acked += p.acked;
    sent += p.sent;
  }
  bool ok = error_.empty();
  const char* check = "none";
  if (o_.qos == 2) {
    ok = ok && lost == 0 && dup == 0 && acked == sent;
    check = ok ? "pass" : "fail";
  } else if (o_.qos == 1) {
    ok = ok && lost == 0 && acked == sent;
    check = ok ? "pass" : "fail";
  } else if (window_ > 0) {
    ok = ok && lost == 0;
    check = ok ? "pass" : "fail";
  }
  if (!error_.empty()) check = "fail";
  fill(report, ok, check);
  return ok;
}

void Flow::fill(Report& report, bool /*ok_check*/, const char* check) const {
  uint64_t acked = 0;
  uint64_t sent = 0;
  for (const Publisher& p : pubs_) {
    acked += p.acked;
    sent += p.sent;
  }
  uint64_t dup = 0;
  uint64_t ooo = 0;
  for (const Receiver& r : receivers_) {
    for (const SeqTrack& t : r.from) {
      dup += t.duplicated();
      ooo += t.out_of_order();
    }
  }
  const double send_s = start_ > 0 ? seconds(send_end_ - start_) : 0;
  const double deliver_s = start_ > 0 ? seconds(std::max(last_delivery_, send_end_) - start_) : 0;
  const double active_s = start_ > 0 ? seconds(last_delivery_ - start_) : 0;
  report.add("scenario", o_.scenario);
  report.add("label", o_.label);
  report.add("qos", o_.qos);
  report.add("payload", static_cast<int64_t>(payload_.size()));
  report.add("publishers", static_cast<int64_t>(pubs_.size()));
  report.add("subscribers", static_cast<int64_t>(subs_.size()));
  report.add("persistent", static_cast<int64_t>(o_.persistent));
  report.add("window", window_);
  report.add("rate", rate_);
  report.add("seconds", deliver_s);
  report.add("sent", sent);
  report.add("acked", acked);
  report.add("expected", expected());
  report.add("delivered", delivered_);
  report.add("lost", expected() - std::min(expected(), delivered_));
  report.add("duplicated", dup);
  report.add("out_of_order", ooo);
  report.add("sent_per_s", send_s > 0 ? static_cast<double>(sent) / send_s : 0.0);
  report.add("delivered_per_s", active_s > 0 ? static_cast<double>(delivered_) / active_s : 0.0);
  report.add("p50_us", static_cast<double>(latency_.percentile(0.50)) / 1e3);
  report.add("p99_us", static_cast<double>(latency_.percentile(0.99)) / 1e3);
  report.add("p999_us", static_cast<double>(latency_.percentile(0.999)) / 1e3);
  report.add("max_gap_ms", static_cast<double>(max_gap_) / 1e6);
  // Who was the bottleneck: CPU use over the run, in % of one core.
  const double run_s = start_ > 0 ? seconds(now_ns() - start_) : 0;
  report.add("broker_cpu_pct", broker_cpu_ >= 0 && run_s > 0 ? 100 * broker_cpu_ / run_s : -1.0);
  report.add("bench_cpu_pct", own_cpu_ >= 0 && run_s > 0 ? 100 * own_cpu_ / run_s : -1.0);
  report.add("broker_rss_kb", rss_kb(o_.broker_pid));
  report.add("check", std::string(check));
  report.add("error", error_);
}

}  // namespace

bool run_flow(const Options& options, const Link& link, Report& report) {
  Flow flow(options, link);
  return flow.run(report);
}

}  // namespace midge::bench
