// midge_pub: publish one message (-m, -f, -n, -s), each line of stdin (-l),
// or one message --repeat times, then disconnect. Drop-in for mosquitto_pub.
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
        std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
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

  int publish_lines() {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (int rc = publish(line); rc != 0) return rc;
      // Keep the connection serviced between slow stdin lines.
      if (int rc = drain(config_.max_inflight - 1); rc != 0) return rc;
    }
    return 0;
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
