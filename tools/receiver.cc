#include "tools/receiver.h"

#include <cstdio>
#include <ctime>
#include <thread>
#include <utility>

#include "protocol/topic.h"
#include "tools/wire_order.h"

namespace midge::tools {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int Receiver::run() {
  Clock::time_point deadline = Clock::time_point::max();
  if (config_.timeout > 0) deadline = Clock::now() + std::chrono::seconds(config_.timeout);
  if (config_.version == protocol::Version::kV5) {
    client_.set_raw_hook([this](std::string_view packet) { record_order(packet); });
  }
  int rc = connect_client(config_, client_);
  if (rc >= 0) return rc;
  for (;;) {
    if (on_connected) on_connected(client_);
    rc = loop(deadline);
    if (rc >= 0) return rc;
    // Lost: retry once a second until the deadline, like libmosquitto's loop_forever.
    for (;;) {
      if (Clock::now() >= deadline) {
        print_error(config_, "Timed out");
        return kExitTimeout;
      }
      std::this_thread::sleep_for(milliseconds(1000));
      client::ConnectOptions options;
      if (!make_connect_options(config_, options)) return 1;
      qos2_orders_.clear();  // the client drops its QoS 2 messages awaiting PUBREL too
      if (!client_.connect(options)) break;
    }
  }
}

void Receiver::disconnect() {
  protocol::DisconnectPacket packet;
  packet.properties = config_.disconnect_props;
  client_.disconnect(packet);
}

int Receiver::loop(Clock::time_point deadline) {
  for (;;) {
    if (Clock::now() >= deadline) {  // -W holds even while messages keep coming
      print_error(config_, "Timed out");
      disconnect();
      return kExitTimeout;
    }
    auto left = deadline == Clock::time_point::max()
                    ? milliseconds(-1)
                    : std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() < 0 && deadline != Clock::time_point::max()) left = milliseconds(0);
    client::Event ev = client_.next_event(left);
    switch (ev.type) {
      case client::EventType::kTimeout: break;  // the deadline is checked above
      case client::EventType::kPublish: handle_message(ev.publish); break;
      case client::EventType::kSuback:
      case client::EventType::kUnsuback:
        if (on_ack) {
          if (int rc = on_ack(ev); rc >= 0) exit_code_ = rc;
        }
        break;
      case client::EventType::kClosed:
      case client::EventType::kDisconnect: return -1;
      case client::EventType::kPublishDone: break;
    }
    if (exit_code_ >= 0) {
      disconnect();
      return exit_code_;
    }
  }
}

bool Receiver::filtered_out(const protocol::PublishPacket& msg) {
  for (const std::string& f : config_.filter_outs) {
    if (protocol::topic_matches(f, msg.topic)) return true;
  }
  if (config_.no_retain && msg.retain) return true;
  return false;
}

bool Receiver::handle_message(const protocol::PublishPacket& msg) {
  PropertyOrder order = take_order(msg);  // also for messages not printed
  if (config_.retained_only && !msg.retain) {
    finish(0);
    return false;
  }
  if (filtered_out(msg)) return false;
  if (config_.remove_retained && msg.retain) {
    protocol::PublishPacket clear;
    clear.topic = msg.topic;
    clear.retain = true;
    clear.qos = 1;
    client_.publish(std::move(clear));
  }
  if (config_.random_filter < 100.0 &&
      std::uniform_real_distribution<double>(0, 100)(rng_) > config_.random_filter) {
    return false;
  }
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  std::string out;
  format_message(config_, msg, now, order, out);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  ++printed_;
  if (config_.msg_count > 0 && printed_ >= config_.msg_count) finish(0);
  return true;
}

void Receiver::record_order(std::string_view packet) {
  std::optional<PublishOrder> o = publish_property_order(packet);
  if (!o) return;
  if (o->qos < 2) {
    last_order_ = std::move(o->ids);
  } else {
    qos2_orders_.try_emplace(o->packet_id, std::move(o->ids));  // a resend keeps the first
  }
}

PropertyOrder Receiver::take_order(const protocol::PublishPacket& msg) {
  if (msg.qos < 2) return std::exchange(last_order_, {});
  auto it = qos2_orders_.find(msg.packet_id);
  if (it == qos2_orders_.end()) return {};
  PropertyOrder order = std::move(it->second);
  qos2_orders_.erase(it);
  return order;
}

}  // namespace midge::tools
