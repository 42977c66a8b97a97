// Recovery scenarios (bench/recovery.sh): fill a broker through MQTT, then,
// after it was restarted, probe how soon it serves what it restored.
//   load-retained   --retained N retained QoS 1 messages on midge-bench-retained/<i>
//   load-sessions   --sessions N persistent sessions midge-bench-session-<i>, each
//                   subscribed (QoS 1) to midge-bench-queue/<i> and offline, then
//                   --queued K QoS 1 messages published to each of those topics
//   probe-retained  connects (retrying until the listener accepts), subscribes to the
//                   last retained topic and waits for its message
//   probe-session   resumes the last session and waits for its first queued message
// Session and topic names carry no run tag: the probe is another process.
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
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

const std::string kRetainedPrefix = "midge-bench-retained/";
const std::string kQueuePrefix = "midge-bench-queue/";
const std::string kSessionPrefix = "midge-bench-session-";
constexpr uint32_t kWindow = 1000;  // QoS 1 PUBLISHes awaiting PUBACK

// Wall clock in ns: recovery.sh compares it with the broker's exec time.
int64_t unix_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

class Populate final : public PacketHandler {
 public:
  Populate(const Options& o, const Link& link) : o_(o), link_(link) {}
  bool run(Report& report);

  void on_packet(Conn& conn, Packet& packet, int64_t now) override;
  void on_publish(Conn& conn, const PublishView& publish, int64_t now) override;
  void on_closed(Conn& conn, const char* why) override;

 private:
  bool load_sessions();
  bool open_session(const sockaddr_in& to);
  bool publish_all();
  bool probe();
  bool start_probe();
  void sweep();
  bool wait_until(const std::function<bool()>& done, double timeout_s);

  const Options& o_;
  const Link& link_;
  Loop loop_;
  sockaddr_in to_{};
  std::string error_;
  // Session creation: at most --concurrency connections in flight.
  std::vector<std::unique_ptr<Conn>> slots_;
  std::vector<uint32_t> free_;
  std::vector<int> slot_session_;  // the session index of each slot's connection
  std::vector<uint32_t> finished_;
  std::vector<sockaddr_in> sources_;
  int opened_ = 0;
  int sessions_done_ = 0;
  // Publishing.
  std::unique_ptr<Conn> pub_;
  uint64_t acked_ = 0;
  // Probe.
  std::unique_ptr<Conn> probe_;
  bool probe_closed_ = false;
  int attempts_ = 0;
  bool got_ = false;
  bool session_present_ = false;
  int64_t connack_at_ = 0;
  int64_t ready_at_ = 0;
};

void Populate::on_closed(Conn& conn, const char* why) {
  if (&conn == probe_.get()) {
    probe_closed_ = true;  // refused while the broker starts: try again
    return;
  }
  if (error_.empty()) error_ = std::string("connection closed: ") + why;
}

void Populate::on_publish(Conn& conn, const PublishView& p, int64_t /*now*/) {
  if (&conn != probe_.get()) return;
  const bool retained = o_.scenario == "probe-retained";
  const std::string want = retained ? kRetainedPrefix + std::to_string(o_.retained - 1)
                                    : kQueuePrefix + std::to_string(o_.sessions - 1);
  if (p.topic == want && (!retained || p.retain) && !got_) {
    got_ = true;
    ready_at_ = unix_now_ns();
  }
  // No PUBACK: the session keeps its queue for the next restart (what is in
  // flight is sent again then).
}

void Populate::on_packet(Conn& conn, Packet& packet, int64_t /*now*/) {
  if (auto* c = std::get_if<protocol::ConnackPacket>(&packet)) {
    if (protocol::is_error(c->reason)) {
      error_ = "CONNACK refused";
      return;
    }
    conn.connected = true;
    if (&conn == probe_.get()) {
      connack_at_ = unix_now_ns();
      session_present_ = c->session_present;
      if (o_.scenario == "probe-retained") {
        protocol::SubscribePacket s;
        s.packet_id = 1;
        s.subscriptions.push_back({kRetainedPrefix + std::to_string(o_.retained - 1), {1}});
        conn.send(s);
        loop_.mark(conn);
      }
      return;
    }
    if (&conn != pub_.get()) {  // a new session: subscribe it
      if (c->session_present) error_ = "session present: the broker was not fresh";
      protocol::SubscribePacket s;
      s.packet_id = 1;
      s.subscriptions.push_back({kQueuePrefix + std::to_string(slot_session_[conn.tag]), {1}});
      conn.send(s);
      loop_.mark(conn);
    }
  } else if (auto* s = std::get_if<protocol::SubackPacket>(&packet)) {
    if (&conn == probe_.get()) return;
    if (s->reasons.empty() || protocol::is_error(s->reasons[0])) error_ = "SUBSCRIBE refused";
    ++sessions_done_;
    conn.send(protocol::DisconnectPacket{});
    conn.flush();
    conn.close_now();
    finished_.push_back(conn.tag);
  } else if (auto* a = std::get_if<AckPacket>(&packet)) {
    if (a->type == PacketType::kPuback) ++acked_;
  }
}

bool Populate::wait_until(const std::function<bool()>& done, double timeout_s) {
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

bool Populate::open_session(const sockaddr_in& to) {
  const uint32_t slot = free_.back();
  auto conn = std::make_unique<Conn>(*this, o_.version, 4096, &link_);
  conn->tag = slot;
  slot_session_[slot] = opened_;
  const sockaddr_in& src = sources_[static_cast<size_t>(opened_) % sources_.size()];
  if (!conn->start_connect(to, &src)) {
    error_ = std::string("socket/connect: ") + std::strerror(errno);
    return false;
  }
  free_.pop_back();
  loop_.add(*conn);
  conn->send(connect_packet(o_, kSessionPrefix + std::to_string(opened_), true));
  loop_.mark(*conn);
  slots_[slot] = std::move(conn);
  ++opened_;
  return true;
}

void Populate::sweep() {
  for (uint32_t slot : finished_) {
    slots_[slot].reset();
    free_.push_back(slot);
  }
  finished_.clear();
}

bool Populate::load_sessions() {
  const int n = o_.sessions;
  const int k = o_.sources > 0 ? o_.sources : n / 10000 + 1;  // TIME_WAIT holds client ports
  for (int i = 0; i < k; ++i) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_addr.s_addr = htonl(0x7F000002u + static_cast<uint32_t>(i));
    sources_.push_back(s);
  }
  const int concurrency = std::min(o_.connect_concurrency, n);
  slots_.resize(static_cast<size_t>(concurrency));
  slot_session_.resize(static_cast<size_t>(concurrency));
  for (int i = concurrency - 1; i >= 0; --i) free_.push_back(static_cast<uint32_t>(i));
  int64_t last_progress_at = now_ns();
  int last_done = 0;
  while (error_.empty() && sessions_done_ < n) {
    while (error_.empty() && opened_ < n && !free_.empty()) {
      if (!open_session(to_)) break;
    }
    loop_.turn(10);
    sweep();
    if (sessions_done_ != last_done) {
      last_done = sessions_done_;
      last_progress_at = now_ns();
    } else if (now_ns() - last_progress_at > static_cast<int64_t>(o_.connect_timeout * 1e9)) {
      error_ = "timed out creating sessions";
    }
  }
  slots_.clear();
  return error_.empty();
}

// Publishes every message (QoS 1, at most kWindow unacknowledged) and waits
// for the last PUBACK: then the broker holds them all.
bool Populate::publish_all() {
  pub_ = std::make_unique<Conn>(*this, o_.version, 64 * 1024, &link_);
  pub_->tag = 0xFFFFFFFF;
  if (!pub_->start_connect(to_, nullptr)) {
    error_ = "cannot connect";
    return false;
  }
  loop_.add(*pub_);
  pub_->send(connect_packet(o_, run_tag() + "loader"));
  loop_.mark(*pub_);
  if (!wait_until([&] { return pub_->connected; }, o_.connect_timeout)) return false;
  const bool retained = o_.scenario == "load-retained";
  const uint64_t topics = static_cast<uint64_t>(retained ? o_.retained : o_.sessions);
  const uint64_t total = retained ? topics : topics * static_cast<uint64_t>(o_.queued);
  std::string payload(std::max(o_.payload, kPayloadHeaderSize), 'r');
  protocol::OutgoingPublish out;
  out.retain = retained;
  out.qos = 1;
  std::string topic;
  uint64_t sent = 0;
  int64_t last_progress_at = now_ns();
  uint64_t last_acked = 0;
  while (error_.empty() && acked_ < total) {
    while (sent < total && sent - acked_ < kWindow) {
      const uint64_t index = sent % topics;  // round by round: each queue in order
      topic = (retained ? kRetainedPrefix : kQueuePrefix) + std::to_string(index);
      write_header({0, static_cast<uint32_t>(sent / topics), now_ns()}, payload.data());
      out.topic = topic;
      out.payload = payload;
      out.packet_id = static_cast<uint16_t>(sent % 65535 + 1);
      protocol::encode_publish(out, o_.version, pub_->out());
      ++sent;
    }
    loop_.mark(*pub_);
    loop_.turn(10);
    if (acked_ != last_acked) {
      last_acked = acked_;
      last_progress_at = now_ns();
    } else if (now_ns() - last_progress_at > static_cast<int64_t>(o_.drain_timeout * 1e9)) {
      error_ = "stalled: no PUBACK for --drain-timeout seconds";
    }
  }
  pub_->send(protocol::DisconnectPacket{});
  pub_->flush();
  return error_.empty();
}

bool Populate::start_probe() {
  probe_ = std::make_unique<Conn>(*this, o_.version, 256 * 1024, &link_);
  probe_->tag = 0xFFFFFFFE;
  probe_closed_ = false;
  ++attempts_;
  if (!probe_->start_connect(to_, nullptr)) {
    if (errno == ECONNREFUSED) {  // loopback may refuse at once: try again
      probe_closed_ = true;
      return true;
    }
    error_ = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  loop_.add(*probe_);
  if (o_.scenario == "probe-session") {
    probe_->send(connect_packet(o_, kSessionPrefix + std::to_string(o_.sessions - 1), true));
  } else {
    probe_->send(connect_packet(o_, run_tag() + "probe"));
  }
  loop_.mark(*probe_);
  return true;
}

// Connects until the listener accepts (1 ms between refused attempts), then
// waits for the restored message; --duration bounds the whole probe.
bool Populate::probe() {
  const int64_t deadline = now_ns() + static_cast<int64_t>(o_.duration * 1e9);
  if (!start_probe()) return false;
  while (error_.empty() && !got_) {
    if (now_ns() > deadline) {
      error_ = "timed out waiting for the restored message";
      break;
    }
    loop_.turn(1);
    if (probe_closed_) {
      if (probe_->connected || connack_at_ > 0) {
        error_ = "probe connection closed after CONNACK";
        break;
      }
      timespec pause{0, 1'000'000};
      nanosleep(&pause, nullptr);
      probe_.reset();
      if (!start_probe()) break;
    }
  }
  return got_ && error_.empty();
}

bool Populate::run(Report& report) {
  if (!resolve(o_, to_)) error_ = "cannot resolve " + o_.host;
  const int64_t start = now_ns();
  double sessions_s = 0;
  bool ok = false;
  if (error_.empty()) {
    if (o_.scenario == "probe-retained" || o_.scenario == "probe-session") {
      ok = probe();
    } else {
      if (o_.scenario == "load-sessions") ok = load_sessions();
      sessions_s = seconds(now_ns() - start);
      ok = error_.empty() && publish_all();
    }
  }
  const double elapsed = seconds(now_ns() - start);
  report.add("scenario", o_.scenario);
  report.add("label", o_.label);
  if (o_.scenario.starts_with("probe")) {
    report.add("attempts", attempts_);
    report.add("connack_unix_ns", connack_at_);
    report.add("ready_unix_ns", ready_at_);
    report.add("session_present", static_cast<int>(session_present_));
  } else {
    report.add("retained", o_.scenario == "load-retained" ? o_.retained : 0);
    report.add("sessions", o_.scenario == "load-sessions" ? o_.sessions : 0);
    report.add("queued", o_.scenario == "load-sessions" ? o_.queued : 0);
    report.add("sessions_s", sessions_s);
    report.add("acked", acked_);
  }
  report.add("seconds", elapsed);
  report.add("broker_rss_kb", rss_kb(o_.broker_pid));
  report.add("check", std::string(ok ? "pass" : "fail"));
  report.add("error", error_);
  return ok;
}

}  // namespace

bool run_populate(const Options& options, const Link& link, Report& report) {
  raise_fd_limit();
  Populate p(options, link);
  return p.run(report);
}

}  // namespace midge::bench
