// midge_rr: publish a request and print the first response received on the
// response topic (-e). With MQTT v5 (the default) the request carries the
// Response Topic property. Drop-in for mosquitto_rr.
#include <iostream>
#include <iterator>
#include <string>

#include "tools/client_options.h"
#include "tools/format.h"
#include "tools/receiver.h"

namespace midge::tools {
namespace {

void subscribe_response(const ClientConfig& config, client::Client& client) {
  protocol::SubscribePacket sub;
  sub.properties = config.subscribe_props;
  protocol::Subscription s;
  s.filter = config.response_topic;
  s.options.max_qos = static_cast<uint8_t>(config.qos);
  sub.subscriptions.push_back(s);
  client.subscribe(std::move(sub));
}

// The request goes out once the response subscription is in place, so a
// fast responder cannot answer before we listen.
void send_request(const ClientConfig& config, const std::string& payload, client::Client& client) {
  protocol::PublishPacket p;
  p.topic = config.topics[0];
  p.payload = payload;
  p.qos = static_cast<uint8_t>(config.qos);
  p.properties = config.publish_props;
  if (config.version == protocol::Version::kV5) p.properties.response_topic = config.response_topic;
  client.publish(std::move(p));
}

}  // namespace
}  // namespace midge::tools

int main(int argc, char** argv) {
  using namespace midge::tools;
  ClientConfig config;
  int rc = parse_options(Tool::kRr, argc, argv, config);
  if (rc >= 0) return rc;
  if (config.format && !validate_format(Tool::kRr, *config.format)) return 1;
  std::string payload = config.message;
  if (config.mode == MessageMode::kStdinFile) {
    payload.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  config.msg_count = 1;
  Receiver receiver(config);
  bool sent = false;
  receiver.on_connected = [&](midge::client::Client& client) { subscribe_response(config, client); };
  receiver.on_ack = [&](const midge::client::Event& ev) {
    if (ev.type == midge::client::EventType::kSuback && !sent) {
      sent = true;
      send_request(config, payload, receiver.client());
    }
    return -1;
  };
  return receiver.run();
}
