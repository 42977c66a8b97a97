// The receive loop shared by midge_sub and midge_rr: filters (-T, -R,
// --retained-only, --random-filter), printing, -C counting, -W timeout and
// reconnecting after a lost connection (as mosquitto_sub's loop does).
#pragma once

#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>

#include "client/client.h"
#include "tools/client_options.h"
#include "tools/format.h"

namespace midge::tools {

constexpr int kExitTimeout = 27;  // -W expired, as mosquitto_sub

class Receiver {
 public:
  explicit Receiver(const ClientConfig& config) : config_(config) {}

  // Called after every (re)connect to send SUBSCRIBE/PUBLISH etc.
  std::function<void(client::Client&)> on_connected;
  // Called on SUBACK/UNSUBACK; return an exit code to stop, or -1.
  std::function<int(const client::Event&)> on_ack;

  // Connects and loops; returns the exit code.
  int run();
  // Ends run() with `code` after the current event.
  void finish(int code) { exit_code_ = code; }
  client::Client& client() { return client_; }
  // Prints the message if it passes the filters; true when printed.
  bool handle_message(const protocol::PublishPacket& msg);

 private:
  // Property wire order of received PUBLISHes (v5), for %j: the client delivers
  // QoS 0/1 messages as they are read and QoS 2 ones on PUBREL, by packet id.
  void record_order(std::string_view packet);
  PropertyOrder take_order(const protocol::PublishPacket& msg);
  bool filtered_out(const protocol::PublishPacket& msg);
  int loop(std::chrono::steady_clock::time_point deadline);
  void disconnect();

  const ClientConfig& config_;
  client::Client client_;
  int exit_code_ = -1;
  int printed_ = 0;
  PropertyOrder last_order_;
  std::unordered_map<uint16_t, PropertyOrder> qos2_orders_;
  std::mt19937 rng_{std::random_device{}()};
};

}  // namespace midge::tools
