// Idle connections: how fast the broker accepts them (CONNECT..CONNACK) and
// what each one costs in broker memory (VmRSS from /proc/PID/status).

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

class Connections final : public PacketHandler {
 public:
  Connections(const Options& o, const Link& link) : o_(o), link_(link) {}
  bool run(Report& report);

  void on_packet(Conn& conn, protocol::Packet& packet, int64_t now) override {
    if (auto* ack = std::get_if<protocol::ConnackPacket>(&packet)) {
      if (protocol::is_error(ack->reason)) {
        if (error_.empty()) error_ = "CONNACK refused a connection";
        conn.close_now();
        --pending_;
        return;
      }
      conn.connected = true;
      --pending_;
      ++connected_;
      last_ack_ = now;
    }
  }
  void on_publish(Conn& /*conn*/, const PublishView& /*publish*/, int64_t /*now*/) override {}
  void on_closed(Conn& conn, const char* why) override {
    if (error_.empty()) error_ = std::string("connection closed: ") + why;
    if (!conn.connected) --pending_;
    if (conn.connected) --connected_;
  }

 private:
  bool open_one(const sockaddr_in& to);

  const Options& o_;
  const Link& link_;
  Loop loop_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<sockaddr_in> sources_;
  std::string tag_ = run_tag();
  int pending_ = 0;
  int connected_ = 0;
  int64_t last_ack_ = 0;
  std::string error_;
};

bool Connections::open_one(const sockaddr_in& to) {
  const size_t i = conns_.size();
  auto conn = std::make_unique<Conn>(*this, o_.version, 256, &link_);
  const sockaddr_in& src = sources_[i % sources_.size()];
  if (!conn->start_connect(to, &src)) {
    error_ = std::string("socket/connect: ") + std::strerror(errno);
    return false;
  }
  loop_.add(*conn);
  conn->send(connect_packet(o_, tag_ + "c" + std::to_string(i)));
  loop_.mark(*conn);
  conns_.push_back(std::move(conn));
  ++pending_;
  return true;
}

bool Connections::run(Report& report) {
  raise_fd_limit();  // the hard limit (20000 here) bounds one process
  const int n = std::max(o_.connections, 1);
  const int k = o_.sources > 0 ? o_.sources : n / 10000 + 1;
  for (int i = 0; i < k; ++i) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_addr.s_addr = htonl(0x7F000002u + static_cast<uint32_t>(i));  // 127.0.0.2, .3, ...
    sources_.push_back(s);
  }
  sockaddr_in to{};
  if (!resolve(o_, to)) error_ = "cannot resolve " + o_.host;
  const int64_t rss_before = rss_kb(o_.broker_pid);
  const double cpu_before = o_.broker_pid > 0 ? cpu_seconds(o_.broker_pid) : -1;
  const int64_t start = now_ns();
  last_ack_ = start;
  const int64_t deadline = start + static_cast<int64_t>(o_.connect_timeout * 1e9);
  while (error_.empty() && connected_ < n && now_ns() < deadline) {
    while (error_.empty() && static_cast<int>(conns_.size()) < n &&
           pending_ < o_.connect_concurrency) {
      if (!open_one(to)) break;
    }
    loop_.turn(10);
  }
  const double connect_s = seconds(last_ack_ - start);
  const int reached = connected_;
  // On loopback the TCP handshake runs in the connecting process's system
  // time, so one generator core limits the wall-clock rate; the broker's own
  // CPU seconds per connection are its per-core capacity.
  const double broker_cpu = cpu_before >= 0 ? cpu_seconds(o_.broker_pid) - cpu_before : -1;
  const int64_t hold_end = now_ns() + static_cast<int64_t>(o_.hold * 1e9);
  while (now_ns() < hold_end) loop_.turn(50);
  const int64_t rss_after = rss_kb(o_.broker_pid);
  const bool ok = reached == n && error_.empty();
  report.add("scenario", o_.scenario);
  report.add("label", o_.label);
  report.add("connections", n);
  report.add("connected", reached);
  report.add("sources", k);
  report.add("connect_s", connect_s);
  report.add("connect_per_s", connect_s > 0 ? reached / connect_s : 0.0);
  report.add("broker_cpu_s", broker_cpu);
  report.add("connect_per_broker_cpu_s", broker_cpu > 0 ? reached / broker_cpu : -1.0);
  report.add("broker_rss_kb_before", rss_before);
  report.add("broker_rss_kb_after", rss_after);
  report.add("bytes_per_conn", rss_before >= 0 && rss_after >= 0 && reached > 0
                                   ? static_cast<double>(rss_after - rss_before) * 1024 / reached
                                   : -1.0);
  report.add("check", std::string(ok ? "pass" : "fail"));
  report.add("error", error_);
  conns_.clear();  // closes every socket
  return ok;
}

}  // namespace

bool run_connections(const Options& options, const Link& link, Report& report) {
  Connections c(options, link);
  return c.run(report);
}

}  // namespace midge::bench
