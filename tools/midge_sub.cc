// midge_sub: subscribe to topic filters and print what arrives. Drop-in for
// mosquitto_sub (same flags, output, -F formats and exit codes).
#include <cstdio>
#include <string>

#include "tools/client_options.h"
#include "tools/format.h"
#include "tools/receiver.h"

namespace midge::tools {
namespace {

void send_subscriptions(const ClientConfig& config, client::Client& client) {
  protocol::SubscribePacket sub;
  sub.properties = config.subscribe_props;
  for (const std::string& topic : config.topics) {
    protocol::Subscription s;
    s.filter = topic;
    s.options.max_qos = static_cast<uint8_t>(config.qos);
    s.options.retain_as_published = config.retain_as_published;
    sub.subscriptions.push_back(s);
  }
  client.subscribe(std::move(sub));
  if (!config.unsub_topics.empty()) {
    protocol::UnsubscribePacket unsub;
    unsub.properties = config.unsubscribe_props;
    unsub.filters = config.unsub_topics;
    client.unsubscribe(std::move(unsub));
  }
}

// SUBACK: "-d" summary, refusal of every filter, "-E" exit.
int on_suback(const ClientConfig& config, const client::Event& ev, bool& unsub_pending) {
  if (ev.type == client::EventType::kUnsuback) {
    unsub_pending = false;
    return config.exit_after_sub ? 0 : -1;
  }
  if (config.debug) {
    std::string line = "Subscribed (mid: " + std::to_string(ev.packet_id) + "):";
    for (size_t i = 0; i < ev.suback.reasons.size(); ++i) {
      line += (i == 0 ? " " : ", ") + std::to_string(static_cast<int>(ev.suback.reasons[i]));
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  bool any_granted = false;
  for (protocol::ReasonCode rc : ev.suback.reasons) any_granted |= !protocol::is_error(rc);
  if (!any_granted) {
    print_error(config, "All subscription requests were denied.");
    return 1;
  }
  return config.exit_after_sub && !unsub_pending ? 0 : -1;
}

}  // namespace
}  // namespace midge::tools

int main(int argc, char** argv) {
  using namespace midge::tools;
  ClientConfig config;
  int rc = parse_options(Tool::kSub, argc, argv, config);
  if (rc >= 0) return rc;
  if (config.format && !validate_format(Tool::kSub, *config.format)) return 1;
  Receiver receiver(config);
  bool unsub_pending = false;
  receiver.on_connected = [&](midge::client::Client& client) {
    unsub_pending = !config.unsub_topics.empty();
    send_subscriptions(config, client);
  };
  receiver.on_ack = [&](const midge::client::Event& ev) {
    return on_suback(config, ev, unsub_pending);
  };
  return receiver.run();
}
