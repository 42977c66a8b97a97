// Retained storm: N retained topics are published, then one subscriber to
// `#` measures how long until all of them arrived. The topics are cleared
// again at the end so runs do not pile up in the broker.
#include <algorithm>
#include <functional>
#include <memory>
#include <string>

#include "midge_bench/conn.h"
#include "midge_bench/scenarios.h"
#include "protocol/publish_encoder.h"

namespace midge::bench {
namespace {

using protocol::AckPacket;
using protocol::Packet;
using protocol::PacketType;

constexpr uint64_t kChunk = 1000;  // PUBLISHes between two PINGREQs
constexpr uint64_t kChunksAhead = 8;
const std::string kPrefix = "midge-bench-retained/";

class Retained final : public PacketHandler {
 public:
  Retained(const Options& o, const Link& link) : o_(o), link_(link) {}
  bool run(Report& report);

  void on_packet(Conn& conn, Packet& packet, int64_t now) override;
  void on_publish(Conn& conn, const PublishView& publish, int64_t now) override;
  void on_closed(Conn& /*conn*/, const char* why) override {
    if (error_.empty()) error_ = std::string("connection closed: ") + why;
  }

 private:
  bool wait(const std::function<bool()>& done, double timeout_s);
  // Publishes N retained messages (empty ones when `clear`), paced by
  // PINGREQ/PINGRESP so the broker has handled them all on return.
  bool publish_all(bool clear);
  void ack(Conn& conn, PacketType type, uint16_t id) {
    auto& a = std::get<AckPacket>(ack_);
    a.type = type;
    a.packet_id = id;
    conn.send(ack_);
    loop_.mark(conn);
  }

  const Options& o_;
  const Link& link_;
  Loop loop_;
  Conn pub_{*this, o_.version, 64 * 1024, &link_};
  Conn sub_{*this, o_.version, 256 * 1024, &link_};
  Packet ack_ = AckPacket{};
  uint64_t pings_ = 0;
  uint64_t pongs_ = 0;
  uint64_t acked_ = 0;
  SeqTrack got_;
  bool subscribed_ = false;
  int64_t last_ = 0;
  std::string error_;
};

void Retained::on_publish(Conn& conn, const PublishView& p, int64_t now) {
  PayloadHeader h;
  if (&conn == &sub_ && p.retain && p.topic.starts_with(kPrefix) &&
      read_header(p.payload.data(), p.payload.size(), h) &&
      h.seq < static_cast<uint32_t>(o_.retained)) {  // older runs may have left more
    got_.add(h.seq);
    last_ = now;
  }
  if (p.qos == 1) ack(conn, PacketType::kPuback, p.packet_id);
  if (p.qos == 2) ack(conn, PacketType::kPubrec, p.packet_id);
}

void Retained::on_packet(Conn& conn, Packet& packet, int64_t /*now*/) {
  if (auto* a = std::get_if<AckPacket>(&packet)) {
    if (a->type == PacketType::kPubrec) ack(conn, PacketType::kPubrel, a->packet_id);
    if (a->type == PacketType::kPubrel) ack(conn, PacketType::kPubcomp, a->packet_id);
    if (a->type == PacketType::kPuback || a->type == PacketType::kPubcomp) ++acked_;
  } else if (std::holds_alternative<protocol::PingrespPacket>(packet)) {
    ++pongs_;
  } else if (auto* c = std::get_if<protocol::ConnackPacket>(&packet)) {
    if (protocol::is_error(c->reason)) error_ = "CONNACK refused";
    conn.connected = true;
  } else if (auto* s = std::get_if<protocol::SubackPacket>(&packet)) {
    if (s->reasons.empty() || protocol::is_error(s->reasons[0])) error_ = "SUBSCRIBE # refused";
    subscribed_ = true;
  }
}

bool Retained::wait(const std::function<bool()>& done, double timeout_s) {
  const int64_t deadline = now_ns() + static_cast<int64_t>(timeout_s * 1e9);
  while (error_.empty() && !done()) {
    if (now_ns() > deadline) {
      error_ = "timed out";
      return false;
    }
    loop_.turn(10);
  }
  return error_.empty();
}

bool Retained::publish_all(bool clear) {
  const auto n = static_cast<uint64_t>(std::max(o_.retained, 1));
  std::string payload(clear ? 0 : std::max(o_.payload, kPayloadHeaderSize), 'r');
  protocol::OutgoingPublish out;
  out.retain = true;
  out.qos = clear ? 0 : static_cast<uint8_t>(o_.qos);
  const uint64_t acked_base = acked_;
  uint64_t sent = 0;
  std::string topic;
  while (error_.empty() && sent < n) {
    while (sent < n && (pings_ - pongs_) < kChunksAhead) {
      const uint64_t end = std::min(n, sent + kChunk);
      for (; sent < end; ++sent) {
        topic = kPrefix + std::to_string(sent);
        if (!clear) write_header({0, static_cast<uint32_t>(sent), now_ns()}, payload.data());
        out.topic = topic;
        out.payload = payload;
        out.packet_id = static_cast<uint16_t>(sent % 65535 + 1);
        protocol::encode_publish(out, o_.version, pub_.out());
      }
      pub_.send(protocol::PingreqPacket{});
      ++pings_;
    }
    loop_.mark(pub_);
    loop_.turn(10);
  }
  const uint64_t want_acks = out.qos > 0 ? n : 0;
  return wait([&] { return pongs_ == pings_ && acked_ - acked_base >= want_acks; }, 120);
}

bool Retained::run(Report& report) {
  sockaddr_in to{};
  const std::string tag = run_tag();
  if (!resolve(o_, to) || !pub_.start_connect(to, nullptr)) error_ = "cannot connect";
  int64_t t0 = 0;
  int64_t t_published = 0;
  int64_t t_subscribed = 0;
  int64_t rss_before = rss_kb(o_.broker_pid);
  int64_t rss_after = -1;
  if (error_.empty()) {
    loop_.add(pub_);
    pub_.send(connect_packet(o_, tag + "rp"));
    loop_.mark(pub_);
    wait([&] { return pub_.connected; }, o_.connect_timeout);
  }
  if (error_.empty()) {
    t0 = now_ns();
    publish_all(false);
    t_published = now_ns();
    rss_after = rss_kb(o_.broker_pid);
  }
  if (error_.empty() && sub_.start_connect(to, nullptr)) {
    loop_.add(sub_);
    sub_.send(connect_packet(o_, tag + "rs"));
    loop_.mark(sub_);
    wait([&] { return sub_.connected; }, o_.connect_timeout);
    protocol::SubscribePacket s;
    s.packet_id = 1;
    s.subscriptions.push_back({"#", {static_cast<uint8_t>(o_.qos)}});
    t_subscribed = now_ns();
    last_ = t_subscribed;
    sub_.send(s);
    loop_.mark(sub_);
    // Until all arrived, or nothing new arrived for --drain-timeout seconds.
    const auto stall = static_cast<int64_t>(o_.drain_timeout * 1e9);
    while (error_.empty() && got_.unique() < static_cast<uint64_t>(o_.retained)) {
      if (now_ns() - last_ > stall) {
        error_ = "stalled: nothing new for --drain-timeout seconds";
        break;
      }
      loop_.turn(10);
    }
  }
  const uint64_t received = got_.unique();
  if (pub_.connected) publish_all(true);
  const bool ok = error_.empty() && received == static_cast<uint64_t>(o_.retained);
  const double publish_s = t_published > t0 ? seconds(t_published - t0) : 0;
  const double deliver_s = t_subscribed > 0 ? seconds(last_ - t_subscribed) : 0;
  report.add("scenario", o_.scenario);
  report.add("label", o_.label);
  report.add("qos", o_.qos);
  report.add("retained", o_.retained);
  report.add("received", received);
  report.add("duplicated", got_.duplicated());
  report.add("publish_s", publish_s);
  report.add("publish_per_s", publish_s > 0 ? o_.retained / publish_s : 0.0);
  report.add("deliver_s", deliver_s);
  report.add("delivered_per_s", deliver_s > 0 ? static_cast<double>(received) / deliver_s : 0.0);
  report.add("broker_rss_kb_before", rss_before);
  report.add("broker_rss_kb_after", rss_after);
  report.add("check", std::string(ok ? "pass" : "fail"));
  report.add("error", error_);
  return ok;
}

}  // namespace

bool run_retained(const Options& options, const Link& link, Report& report) {
  Retained r(options, link);
  return r.run(report);
}

}  // namespace midge::bench
