// Values that need more than one word of parsing: -D properties and -L URLs.
#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "tools/options_table.h"

namespace midge::tools {
namespace {

enum class PropType : uint8_t { kByte, kU16, kU32, kVarint, kString, kBinary, kPair };

// Bit per -D command.
enum : unsigned {
  kConnect = 1, kPublish = 2, kSubscribe = 4, kUnsubscribe = 8, kDisconnect = 16, kWill = 32,
  kAuth = 64,
};

struct PropSpec {
  const char* name;
  PropType type;
  unsigned commands;
};

// [MQTT-2.2.2.2]: which packet may carry which property (from the client side).
const PropSpec kProps[] = {
    {"payload-format-indicator", PropType::kByte, kPublish | kWill},
    {"message-expiry-interval", PropType::kU32, kPublish | kWill},
    {"content-type", PropType::kString, kPublish | kWill},
    {"response-topic", PropType::kString, kPublish | kWill},
    {"correlation-data", PropType::kBinary, kPublish | kWill},
    {"subscription-identifier", PropType::kVarint, kSubscribe},
    {"session-expiry-interval", PropType::kU32, kConnect | kDisconnect},
    {"authentication-method", PropType::kString, kConnect | kAuth},
    {"authentication-data", PropType::kBinary, kConnect | kAuth},
    {"request-problem-information", PropType::kByte, kConnect},
    {"will-delay-interval", PropType::kU32, kWill},
    {"request-response-information", PropType::kByte, kConnect},
    {"reason-string", PropType::kString, kDisconnect | kAuth},
    {"receive-maximum", PropType::kU16, kConnect},
    {"topic-alias-maximum", PropType::kU16, kConnect},
    {"topic-alias", PropType::kU16, kPublish},
    {"user-property", PropType::kPair, kConnect | kPublish | kSubscribe | kUnsubscribe |
                                           kDisconnect | kWill | kAuth},
    {"maximum-packet-size", PropType::kU32, kConnect},
};

unsigned command_bit(const std::string& command) {
  static const std::pair<const char*, unsigned> kCommands[] = {
      {"connect", kConnect},         {"publish", kPublish},       {"subscribe", kSubscribe},
      {"unsubscribe", kUnsubscribe}, {"disconnect", kDisconnect}, {"will", kWill},
      {"auth", kAuth},
  };
  for (const auto& [name, bit] : kCommands) {
    if (command == name) return bit;
  }
  return 0;
}

protocol::Properties* target_props(ClientConfig& c, unsigned command) {
  switch (command) {
    case kConnect: return &c.connect_props;
    case kPublish: return &c.publish_props;
    case kSubscribe: return &c.subscribe_props;
    case kUnsubscribe: return &c.unsubscribe_props;
    case kDisconnect: return &c.disconnect_props;
    case kWill: return &c.will_props;
    default: return nullptr;  // AUTH is never sent by these tools
  }
}

bool parse_number(const std::string& s, uint64_t max, uint32_t& out) {
  if (s.empty() || s[0] == '-') return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

bool store_number(protocol::Properties& p, std::string_view name, uint32_t v) {
  if (name == "payload-format-indicator") p.payload_format_indicator = static_cast<uint8_t>(v);
  else if (name == "message-expiry-interval") p.message_expiry_interval = v;
  else if (name == "subscription-identifier") p.subscription_identifiers.push_back(v);
  else if (name == "session-expiry-interval") p.session_expiry_interval = v;
  else if (name == "request-problem-information")
    p.request_problem_information = static_cast<uint8_t>(v);
  else if (name == "will-delay-interval") p.will_delay_interval = v;
  else if (name == "request-response-information")
    p.request_response_information = static_cast<uint8_t>(v);
  else if (name == "receive-maximum") p.receive_maximum = static_cast<uint16_t>(v);
  else if (name == "topic-alias-maximum") p.topic_alias_maximum = static_cast<uint16_t>(v);
  else if (name == "topic-alias") p.topic_alias = static_cast<uint16_t>(v);
  else if (name == "maximum-packet-size") p.maximum_packet_size = v;
  else return false;
  return true;
}

void store_string(protocol::Properties& p, std::string_view name, const std::string& v) {
  if (name == "content-type") p.content_type = v;
  else if (name == "response-topic") p.response_topic = v;
  else if (name == "correlation-data") p.correlation_data = v;
  else if (name == "authentication-method") p.authentication_method = v;
  else if (name == "authentication-data") p.authentication_data = v;
  else if (name == "reason-string") p.reason_string = v;
}

uint64_t max_for(PropType type) {
  switch (type) {
    case PropType::kByte: return 0xFF;
    case PropType::kU16: return 0xFFFF;
    case PropType::kVarint: return 268435455;
    default: return 0xFFFFFFFF;
  }
}

}  // namespace

bool apply_property(ClientConfig& config, const std::vector<std::string>& values,
                    std::string& error) {
  unsigned command = command_bit(values[0]);
  if (command == 0) {
    error = "Invalid command given in --property argument.\n";
    return false;
  }
  const PropSpec* spec = nullptr;
  for (const PropSpec& p : kProps) {
    if (values[1] == p.name) spec = &p;
  }
  if (spec == nullptr) {
    error = "Invalid property name given in --property argument.\n";
    return false;
  }
  if ((spec->commands & command) == 0) {
    error = values[1] + " property not allowed for " + values[0] + " in --property argument.\n";
    return false;
  }
  protocol::Properties* props = target_props(config, command);
  if (props == nullptr) return true;
  if (spec->type == PropType::kPair) {
    props->user_properties.emplace_back(values[2], values[3]);
  } else if (spec->type == PropType::kString || spec->type == PropType::kBinary) {
    store_string(*props, spec->name, values[2]);
  } else {
    uint32_t v = 0;
    if (!parse_number(values[2], max_for(spec->type), v)) {
      error = "Invalid value \"" + values[2] + "\" for property " + values[1] + ".\n";
      return false;
    }
    store_number(*props, spec->name, v);
  }
  return true;
}

namespace {

// [user[:password]@]host[:port] into the config; false on a bad port.
bool apply_authority(ClientConfig& c, std::string_view authority, int default_port,
                     std::string& error) {
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    size_t colon = userinfo.find(':');
    c.username = std::string(userinfo.substr(0, colon));
    if (colon != std::string_view::npos) c.password = std::string(userinfo.substr(colon + 1));
  }
  size_t colon = authority.rfind(':');
  c.port = default_port;
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    uint32_t port = 0;
    if (!parse_number(std::string(authority.substr(colon + 1)), 65535, port) || port == 0) {
      error = "Invalid port given: " + std::string(authority.substr(colon + 1));
      return false;
    }
    c.port = static_cast<int>(port);
    authority = authority.substr(0, colon);
  }
  if (authority.size() >= 2 && authority.front() == '[' && authority.back() == ']') {
    authority = authority.substr(1, authority.size() - 2);
  }
  c.host = std::string(authority);
  return true;
}

// ws[s]://[user[:password]@]host[:port][/path]: the path is the HTTP one
// (default /mqtt, as Paho uses); the topic comes from -t.
bool apply_ws_url(ClientConfig& c, std::string_view rest, bool tls, std::string& error) {
  size_t slash = rest.find('/');
  c.ws_path = slash == std::string_view::npos ? "/mqtt" : std::string(rest.substr(slash));
  c.websocket = true;
  c.url_tls = tls;
  return apply_authority(c, rest.substr(0, slash), tls ? 443 : 80, error);
}

}  // namespace

bool apply_url(ClientConfig& c, const std::string& url, std::string& error) {
  std::string_view rest(url);
  int default_port = 1883;
  c.websocket = false;
  c.url_tls = false;
  if (rest.starts_with("mqtt://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("mqtts://")) {
    // Like mosquitto_pub: port 8883 and TLS trusting the system CAs, even
    // without --cafile.
    rest.remove_prefix(8);
    default_port = 8883;
    c.url_tls = true;
  } else if (rest.starts_with("ws://")) {
    return apply_ws_url(c, rest.substr(5), false, error);
  } else if (rest.starts_with("wss://")) {
    return apply_ws_url(c, rest.substr(6), true, error);
  } else {
    error = "unsupported URL scheme.";
    return false;
  }
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 >= rest.size()) {
    error = "Invalid URL for -L argument specified - topic missing.";
    return false;
  }
  if (!apply_authority(c, rest.substr(0, slash), default_port, error)) return false;
  if (c.tool != Tool::kSub) c.topics.clear();
  c.topics.push_back(std::string(rest.substr(slash + 1)));
  return true;
}

}  // namespace midge::tools
