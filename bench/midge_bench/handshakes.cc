// Short-lived connections: each one connects (TLS handshake with --tls,
// upgrade with --ws), sends CONNECT, waits for CONNACK, sends DISCONNECT and
// closes, with at most --concurrency in flight. Reports handshakes per second
// and per second of broker CPU (what a reconnect storm costs the broker).
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "midge_bench/conn.h"
#include "midge_bench/scenarios.h"

namespace midge::bench {
namespace {

class Handshakes final : public PacketHandler {
 public:
  Handshakes(const Options& o, const Link& link) : o_(o), link_(link) {}
  bool run(Report& report);

  void on_packet(Conn& conn, protocol::Packet& packet, int64_t /*now*/) override {
    auto* ack = std::get_if<protocol::ConnackPacket>(&packet);
    if (ack == nullptr) return;
    if (protocol::is_error(ack->reason)) {
      if (error_.empty()) error_ = "CONNACK refused a connection";
    } else {
      ++done_;
      conn.send(protocol::DisconnectPacket{});
      conn.flush();
    }
    finish(conn);
  }
  void on_publish(Conn& /*conn*/, const PublishView& /*publish*/, int64_t /*now*/) override {}
  void on_closed(Conn& conn, const char* why) override {
    if (error_.empty()) error_ = std::string("connection closed: ") + why;
    finish(conn);
  }

 private:
  bool open_one(const sockaddr_in& to);
  // The Conn stays allocated until the turn ends: events of this turn may
  // still point at it.
  void finish(Conn& conn) {
    conn.close_now();
    finished_.push_back(conn.tag);
  }
  void sweep();

  const Options& o_;
  const Link& link_;
  Loop loop_;
  std::vector<std::unique_ptr<Conn>> slots_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> finished_;
  std::vector<sockaddr_in> sources_;
  std::string tag_ = run_tag();
  int opened_ = 0;
  int done_ = 0;
  std::string error_;
};

bool Handshakes::open_one(const sockaddr_in& to) {
  const uint32_t slot = free_.back();
  auto conn = std::make_unique<Conn>(*this, o_.version, 4096, &link_);
  conn->tag = slot;
  const sockaddr_in& src = sources_[static_cast<size_t>(opened_) % sources_.size()];
  if (!conn->start_connect(to, &src)) {
    error_ = std::string("socket/connect: ") + std::strerror(errno);
    return false;
  }
  free_.pop_back();
  loop_.add(*conn);
  conn->send(connect_packet(o_, tag_ + "h" + std::to_string(opened_)));
  loop_.mark(*conn);
  slots_[slot] = std::move(conn);
  ++opened_;
  return true;
}

void Handshakes::sweep() {
  for (uint32_t slot : finished_) {
    slots_[slot].reset();
    free_.push_back(slot);
  }
  finished_.clear();
}

bool Handshakes::run(Report& report) {
  const int n = std::max(o_.handshakes, 1);
  const int k = o_.sources > 0 ? o_.sources : n / 10000 + 1;  // TIME_WAIT holds client ports
  for (int i = 0; i < k; ++i) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_addr.s_addr = htonl(0x7F000002u + static_cast<uint32_t>(i));
    sources_.push_back(s);
  }
  const int concurrency = std::min(o_.connect_concurrency, n);
  slots_.resize(static_cast<size_t>(concurrency));
  for (int i = concurrency - 1; i >= 0; --i) free_.push_back(static_cast<uint32_t>(i));
  sockaddr_in to{};
  if (!resolve(o_, to)) error_ = "cannot resolve " + o_.host;
  const double cpu_before = o_.broker_pid > 0 ? cpu_seconds(o_.broker_pid) : -1;
  const double own_before = cpu_seconds(0);
  const int64_t start = now_ns();
  const int64_t stall_ns = static_cast<int64_t>(o_.connect_timeout * 1e9);
  int64_t last_progress_at = start;
  int last_done = 0;
  while (error_.empty() && done_ < n) {
    while (error_.empty() && opened_ < n && !free_.empty()) {
      if (!open_one(to)) break;
    }
    loop_.turn(10);
    sweep();
    const int64_t now = now_ns();
    if (done_ != last_done) {
      last_done = done_;
      last_progress_at = now;
    } else if (now - last_progress_at > stall_ns) {
      error_ = "timed out: no handshake completed for " + std::to_string(o_.connect_timeout) + " s";
    }
  }
  const double elapsed = seconds(now_ns() - start);
  const double broker_cpu = cpu_before >= 0 ? cpu_seconds(o_.broker_pid) - cpu_before : -1;
  const double own_cpu = cpu_seconds(0) - own_before;
  slots_.clear();
  const bool ok = done_ == n && error_.empty();
  report.add("scenario", o_.scenario);
  report.add("label", o_.label);
  report.add("transport", std::string(o_.tls ? (o_.ws ? "wss" : "tls") : (o_.ws ? "ws" : "tcp")));
  report.add("handshakes", n);
  report.add("completed", done_);
  report.add("concurrency", concurrency);
  report.add("seconds", elapsed);
  report.add("handshakes_per_s", elapsed > 0 ? done_ / elapsed : 0.0);
  report.add("broker_cpu_s", broker_cpu);
  report.add("handshakes_per_broker_cpu_s", broker_cpu > 0 ? done_ / broker_cpu : -1.0);
  report.add("broker_cpu_pct", broker_cpu >= 0 && elapsed > 0 ? 100 * broker_cpu / elapsed : -1.0);
  report.add("bench_cpu_pct", elapsed > 0 ? 100 * own_cpu / elapsed : -1.0);
  report.add("check", std::string(ok ? "pass" : "fail"));
  report.add("error", error_);
  return ok;
}

}  // namespace

bool run_handshakes(const Options& options, const Link& link, Report& report) {
  raise_fd_limit();
  Handshakes h(options, link);
  return h.run(report);
}

}  // namespace midge::bench
