// midge_pub: publish one message (-m, -f, -n, -s), each line of stdin (-l),
// or one message --repeat times, then disconnect. Drop-in for mosquitto_pub.
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>

#include "client/client.h"
#include "tools/client_options.h"

namespace midge::tools {
namespace {

using std::chrono::milliseconds;

class Publisher {
 public:
  explicit Publisher(const ClientConfig& config) : config_(config) {}

  int run() {
    int rc = connect_client(config_, client_);
    if (rc >= 0) return rc;
    switch (config_.mode) {
      case MessageMode::kStdinLines: rc = publish_lines(); break;
      case MessageMode::kStdinFile: {
        std::string all((std::istreambuf_iterator<char>(std::cin)),
                        std::istreambuf_iterator<char>());
        rc = publish_repeated(all);
        break;
      }
      default: rc = publish_repeated(config_.message); break;
    }
    if (rc == 0) rc = drain(0);
    if (client_.connected()) {
      protocol::DisconnectPacket disconnect;
      disconnect.properties = config_.disconnect_props;
      client_.disconnect(disconnect);
    }
    return rc;
  }

 private:
  int publish_repeated(const std::string& payload) {
    for (int i = 0; i < config_.repeat; ++i) {
      if (i > 0 && config_.repeat_delay > 0) {
        if (int rc = drain(0); rc != 0) return rc;
        std::this_thread::sleep_for(std::chrono::duration<double>(config_.repeat_delay));
      }
      if (int rc = publish(payload); rc != 0) return rc;
    }
    return 0;
  }

  // One message per stdin line (newline stripped; a last line without one
  // counts). While stdin is idle the connection keeps being serviced, so
  // keep alive pings and acks flow during a slow pipe.
  int publish_lines() {
    std::string buf;
    size_t start = 0;
    bool eof = false;
    for (;;) {
      size_t nl = buf.find('\n', start);
      if (nl != std::string::npos) {
        if (int rc = publish(buf.substr(start, nl - start)); rc != 0) return rc;
        start = nl + 1;
        continue;
      }
      if (eof) return start < buf.size() ? publish(buf.substr(start)) : 0;
      buf.erase(0, start);
      start = 0;
      if (int rc = wait_stdin(); rc != 0) return rc;
      char chunk[16384];
      ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) eof = true;
      else buf.append(chunk, static_cast<size_t>(n));
    }
  }

  int wait_stdin() {
    for (;;) {
      pollfd pfd{STDIN_FILENO, POLLIN, 0};
      if (poll(&pfd, 1, 0) != 0) return 0;
      client::Event ev = client_.next_event(milliseconds(100));
      if (ev.type == client::EventType::kClosed || ev.type == client::EventType::kDisconnect) {
        return lost(ev.error);
      }
    }
  }

  int publish(const std::string& payload) {
    if (int rc = drain(config_.max_inflight - 1); rc != 0) return rc;
    protocol::PublishPacket p;
    p.topic = config_.topics[0];
    p.payload = payload;
    p.qos = static_cast<uint8_t>(config_.qos);
    p.retain = config_.retain;
    p.properties = config_.publish_props;
    client_.publish(std::move(p));
    if (client::Error e = client_.flush()) return lost(e);
    return 0;
  }

  // Services the connection until at most `max_left` QoS 1/2 publishes are
  // unacknowledged.
  int drain(int max_left) {
    while (static_cast<int>(client_.inflight()) > max_left) {
      client::Event ev = client_.next_event(milliseconds(-1));
      if (ev.type == client::EventType::kClosed || ev.type == client::EventType::kDisconnect) {
        return lost(ev.error);
      }
      if (ev.type == client::EventType::kPublishDone && protocol::is_error(ev.reason)) {
        print_error(config_, "Warning: Publish " + std::to_string(ev.packet_id) + " failed: " +
                                 reason_string(ev.reason) + ".");
      }
    }
    return 0;
  }

  int lost(const client::Error& e) {
    (void)e;
    print_error(config_, "Error: The connection was lost.");
    return 1;
  }

  const ClientConfig& config_;
  client::Client client_;
};

}  // namespace
}  // namespace midge::tools

int main(int argc, char** argv) {
  using namespace midge::tools;
  ClientConfig config;
  int rc = parse_options(Tool::kPub, argc, argv, config);
  if (rc >= 0) return rc;
  Publisher publisher(config);
  return publisher.run();
}
