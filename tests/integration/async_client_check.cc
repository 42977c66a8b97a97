// Integration check for midge::client::AsyncClient against a live broker:
// two clients share one poll() loop; one subscribes to async/# at QoS 2, the
// other publishes 100 messages at each of QoS 0, 1 and 2 to async/<qos>, all
// queued at once. Every QoS 1/2 message must arrive (QoS 2 exactly once), in
// order per topic, and every QoS 1/2 publish must be acknowledged
// (on_delivered). Both clients use a 1 s keep alive and then idle for 2.2 s,
// so keep alive pings must flow. Runs for MQTT 3.1.1 and 5.
//
//   async_client_check --host H --port P [--version 311|5] [--timeout S]
//                      [--max-inflight N]   (client-side cap on QoS 1/2 in flight)
// Exit 0 on success, 1 with a message on stderr otherwise.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "client/async_client.h"

namespace {

using midge::client::AsyncClient;
using midge::client::ConnectOptions;
using midge::client::Error;
using midge::client::ErrorKind;
using midge::protocol::ReasonCode;
using midge::protocol::Version;
using Clock = std::chrono::steady_clock;

constexpr int kPerQos = 100;
constexpr auto kIdleForPings = std::chrono::milliseconds(2200);

struct Args {
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  std::vector<Version> versions{Version::kV311, Version::kV5};
  int timeout_s = 20;
  uint16_t max_inflight = 0;  // 0: only the server's Receive Maximum limits
};

// One protocol version: a subscriber, a publisher and what they saw.
class Round {
 public:
  Round(const Args& args, Version version) : args_(args), version_(version) {}

  // Runs until done, failed or `deadline`; returns the failure or "".
  std::string run(Clock::time_point deadline) {
    wire();
    start(sub_, "sub");
    start(pub_, "pub");
    while (failure_.empty() && !finished()) {
      Clock::time_point now = Clock::now();
      if (now >= deadline) return "timed out: " + status();
      if (done_at_ != Clock::time_point{} && now >= done_at_ + kIdleForPings && !closing_) {
        check_pings();
        closing_ = true;
        sub_.disconnect();
        pub_.disconnect();
        continue;
      }
      turn(deadline);
    }
    return failure_;
  }

 private:
  std::string name() const { return version_ == Version::kV5 ? "v5" : "v3.1.1"; }

  void fail(const std::string& why) {
    if (failure_.empty()) failure_ = name() + ": " + why;
  }

  std::string status() const {
    return name() + " received qos0=" + std::to_string(received_[0]) +
           " qos1=" + std::to_string(next_[1]) + " qos2=" + std::to_string(next_[2]) +
           ", acks pending=" + std::to_string(pending_.size()) +
           ", published=" + std::to_string(published_) +
           ", closed=" + std::to_string(closed_);
  }

  bool finished() const { return closed_ == 2; }

  void start(AsyncClient& c, const char* role) {
    ConnectOptions o;
    o.host = args_.host;
    o.port = args_.port;
    o.timeout = std::chrono::milliseconds(5000);
    o.connect.version = version_;
    o.connect.keep_alive = 1;
    o.connect.client_id = "async-check-" + std::string(role) + "-" + name() + "-" +
                          std::to_string(getpid());
    if (args_.max_inflight != 0) c.set_max_inflight(args_.max_inflight);
    if (Error e = c.connect(o)) fail(std::string(role) + " connect: " + e.message);
  }

  void wire() {
    sub_.on_connect = [this](const midge::protocol::ConnackPacket& ack) {
      if (midge::protocol::is_error(ack.reason)) return fail("sub refused");
      midge::protocol::SubscribePacket s;
      s.subscriptions.push_back({"async/#", {2, false, false, 0}});
      if (sub_.subscribe(s) == 0) fail("subscribe returned packet id 0");
    };
    sub_.on_suback = [this](const midge::protocol::SubackPacket& ack) {
      if (ack.reasons.size() != 1 || ack.reasons[0] != ReasonCode::kGrantedQos2) {
        return fail("SUBACK did not grant QoS 2");
      }
      sub_ready_ = true;
      maybe_publish();
    };
    sub_.on_message = [this](const midge::protocol::PublishPacket& m) { on_message(m); };
    pub_.on_connect = [this](const midge::protocol::ConnackPacket& ack) {
      if (midge::protocol::is_error(ack.reason)) return fail("pub refused");
      pub_ready_ = true;
      maybe_publish();
    };
    pub_.on_delivered = [this](uint16_t id, ReasonCode reason) {
      if (pending_.erase(id) != 1) return fail("on_delivered for unknown id " + std::to_string(id));
      if (midge::protocol::is_error(reason)) fail("publish refused: " + std::to_string(id));
      check_done();
    };
    for (AsyncClient* c : {&sub_, &pub_}) {
      c->on_disconnect = [this](const Error& e) {
        ++closed_;
        if (!closing_ || e.kind != ErrorKind::kNone) fail("disconnected: " + e.message);
      };
    }
  }

  void maybe_publish() {
    if (!sub_ready_ || !pub_ready_ || published_) return;
    published_ = true;
    for (uint8_t qos = 0; qos <= 2; ++qos) {
      for (int i = 0; i < kPerQos; ++i) {
        midge::protocol::PublishPacket p;
        p.qos = qos;
        p.topic = "async/" + std::to_string(qos);
        p.payload = std::to_string(i);
        uint16_t id = pub_.publish(std::move(p));
        if (qos == 0) continue;
        if (id == 0 || !pending_.insert(id).second) return fail("bad packet id from publish");
      }
    }
  }

  void on_message(const midge::protocol::PublishPacket& m) {
    if (m.topic.size() != 7 || m.topic.compare(0, 6, "async/") != 0) {
      return fail("unexpected topic " + m.topic);
    }
    int qos = m.topic[6] - '0';
    int i = std::atoi(m.payload.c_str());
    if (qos < 0 || qos > 2) return fail("unexpected topic " + m.topic);
    if (qos == 0) {
      ++received_[0];
      return;
    }
    if (m.qos != qos) return fail(m.topic + " arrived at QoS " + std::to_string(m.qos));
    if (i == next_[qos]) {
      ++next_[qos];
    } else if (qos == 2 || i > next_[qos]) {  // QoS 1 may repeat, never skip
      return fail(m.topic + ": got #" + m.payload + ", expected #" + std::to_string(next_[qos]));
    }
    check_done();
  }

  void check_done() {
    if (done_at_ == Clock::time_point{} && published_ && pending_.empty() &&
        next_[1] == kPerQos && next_[2] == kPerQos) {
      done_at_ = Clock::now();
    }
  }

  void check_pings() {
    if (sub_.pings_sent() == 0 || pub_.pings_sent() == 0) fail("no PINGREQ sent while idle");
    if (received_[0] != kPerQos) {
      std::fprintf(stderr, "%s: note: %d/%d QoS 0 messages arrived\n", name().c_str(),
                   received_[0], kPerQos);
    }
  }

  // One poll() over both clients, then their timers.
  void turn(Clock::time_point deadline) {
    AsyncClient* clients[2] = {&sub_, &pub_};
    pollfd fds[2];
    Clock::time_point wake = deadline;
    for (int k = 0; k < 2; ++k) {
      fds[k] = {clients[k]->fd(), POLLIN, 0};
      if (clients[k]->wants_write()) fds[k].events |= POLLOUT;
      wake = std::min(wake, clients[k]->next_timer());
    }
    if (done_at_ != Clock::time_point{}) wake = std::min(wake, done_at_ + kIdleForPings);
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
    int timeout = static_cast<int>(std::clamp<long long>(ms, 0, 100));
    if (poll(fds, 2, timeout) < 0 && errno != EINTR) return fail(std::strerror(errno));
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || fds[k].fd != clients[k]->fd()) continue;
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) != 0) clients[k]->on_readable();
      if ((fds[k].revents & POLLOUT) != 0 && clients[k]->fd() >= 0) clients[k]->on_writable();
    }
    Clock::time_point now = Clock::now();
    for (AsyncClient* c : clients) c->on_timer(now);
  }

  const Args& args_;
  Version version_;
  AsyncClient sub_;
  AsyncClient pub_;
  bool sub_ready_ = false;
  bool pub_ready_ = false;
  bool published_ = false;
  bool closing_ = false;
  int closed_ = 0;
  std::set<uint16_t> pending_;  // QoS 1/2 publish ids not yet delivered
  int received_[3] = {0, 0, 0};
  int next_[3] = {0, 0, 0};  // next expected index on async/1 and async/2
  Clock::time_point done_at_{};
  std::string failure_;
};

bool parse_args(int argc, char** argv, Args& args) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--host") {
      args.host = value;
    } else if (flag == "--port") {
      args.port = static_cast<uint16_t>(std::atoi(value.c_str()));
    } else if (flag == "--max-inflight") {
      args.max_inflight = static_cast<uint16_t>(std::atoi(value.c_str()));
    } else if (flag == "--timeout") {
      args.timeout_s = std::atoi(value.c_str());
    } else if (flag == "--version" && (value == "311" || value == "5")) {
      args.versions = {value == "5" ? Version::kV5 : Version::kV311};
    } else {
      return false;
    }
  }
  return argc % 2 == 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, args)) {
    std::fprintf(stderr, "usage: %s --host H --port P [--version 311|5] [--timeout S]\n"
                 "       [--max-inflight N]\n",
                 argv[0]);
    return 1;
  }
  Clock::time_point deadline = Clock::now() + std::chrono::seconds(args.timeout_s);
  for (Version v : args.versions) {
    Round round(args, v);
    std::string failure = round.run(deadline);
    if (!failure.empty()) {
      std::fprintf(stderr, "async_client_check: FAIL %s\n", failure.c_str());
      return 1;
    }
  }
  std::printf("async_client_check: OK\n");
  return 0;
}
