// Turning options into a CONNECT, reporting connect failures, and the -d
// packet log, all worded like the Mosquitto tools so scripts that parse them
// keep working.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iterator>
#include <memory>
#include <optional>
#include <random>

#include "tools/client_options.h"

namespace midge::tools {

using protocol::ReasonCode;

const char* connack_string_v3(uint8_t code) {
  switch (code) {
    case 0: return "Connection Accepted.";
    case 1: return "Connection Refused: unacceptable protocol version.";
    case 2: return "Connection Refused: identifier rejected.";
    case 3: return "Connection Refused: broker unavailable.";
    case 4: return "Connection Refused: bad user name or password.";
    case 5: return "Connection Refused: not authorised.";
    default: return "Connection Refused: unknown reason.";
  }
}

const char* reason_string(ReasonCode code) {
  // The wording mosquitto_sub prints for a refused v5 CONNACK (0x80..0xA2).
  static const char* const kFailures[] = {
      "Unspecified error", "Malformed Packet", "Protocol Error",
      "Implementation specific error",
      "Unsupported Protocol Version. Try connecting to an MQTT v5 broker, or use MQTT v3.x mode.",
      "Client Identifier not valid", "Bad User Name or Password", "Not authorized",
      "Server unavailable", "Server busy", "Banned", "Server shutting down",
      "Bad authentication method", "Keep Alive timeout", "Session taken over",
      "Topic Filter invalid", "Topic Name invalid", "Packet Identifier in use",
      "Packet Identifier not found", "Receive Maximum exceeded", "Topic Alias invalid",
      "Packet too large", "Message rate too high", "Quota exceeded", "Administrative action",
      "Payload format invalid", "Retain not supported", "QoS not supported",
      "Use another server", "Server moved", "Shared Subscriptions not supported",
      "Connection rate exceeded", "Maximum connect time",
      "Subscription identifiers not supported", "Wildcard Subscriptions not supported",
  };
  auto v = static_cast<size_t>(code);
  if (v >= 0x80 && v - 0x80 < std::size(kFailures)) return kFailures[v - 0x80];
  return protocol::reason_code_name(code);
}

namespace {

// MQTT 3.1 needs a non-empty client id; make one up like libmosquitto does.
std::string random_client_id() {
  static const char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::uniform_int_distribution<size_t> pick(0, sizeof kChars - 2);
  std::string id = "mosq-";
  for (int i = 0; i < 18; ++i) id += kChars[pick(rd)];
  return id;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The --psk key's bytes as libmosquitto makes them: leading "00" pairs are
// zero bytes, the rest is one big-endian number in as few bytes as it takes
// (an odd digit count gets a leading zero nibble).
std::optional<std::string> psk_key_bytes(const std::string& hex) {
  if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) return std::nullopt;
  std::string key;
  for (size_t i = 0; i + 1 < hex.size() && hex.compare(i, 2, "00") == 0; i += 2) key += '\0';
  size_t first = hex.find_first_not_of('0');
  std::string digits = first == std::string::npos ? "" : hex.substr(first);
  if (digits.size() % 2 != 0) digits.insert(0, "0");
  for (size_t i = 0; i < digits.size(); i += 2) {
    key += static_cast<char>(hex_digit(digits[i]) << 4 | hex_digit(digits[i + 1]));
  }
  return key;
}

// Like libmosquitto, a CA (even the system's) means certificates: the key is
// then checked but not used.
bool make_psk(const ClientConfig& c, client::TlsOptions& tls) {
  std::optional<std::string> key = psk_key_bytes(*c.psk);
  if (!key) return false;
  if (!tls.use_os_certs) {
    tls.psk = std::move(key);
    tls.psk_identity = c.psk_identity.value_or("");
  }
  return true;
}

// TLS settings, checked where mosquitto's client_opts_set checks them: files
// named with --cafile/--capath must exist, the --psk key must be hexadecimal,
// --tls-version must be one it knows.
bool make_tls_options(const ClientConfig& c, client::TlsOptions& tls) {
  bool with_ca = !c.cafile.empty() || !c.capath.empty();
  tls.enabled = with_ca || c.tls_use_os_certs || c.url_tls || c.psk.has_value();
  if (c.websocket) tls.enabled = c.url_tls;  // ws:// is plain, wss:// TLS, whatever else is given
  tls.cafile = c.cafile;
  tls.capath = c.capath;
  tls.use_os_certs = c.tls_use_os_certs || (c.url_tls && !with_ca);
  tls.certfile = c.certfile;
  tls.keyfile = c.keyfile;
  tls.insecure = c.insecure;
  tls.min_version = c.tls_version;
  tls.ciphers = c.ciphers;
  tls.alpn = c.tls_alpn;
  if (with_ca && ((!c.cafile.empty() && !file_exists(c.cafile)) ||
                  (!c.certfile.empty() && !file_exists(c.certfile)) ||
                  (!c.keyfile.empty() && !file_exists(c.keyfile)))) {
    print_error(c, "Error: Problem setting TLS options: File not found.");
    return false;
  }
  if (c.psk && !with_ca && !make_psk(c, tls)) {
    print_error(c, "Error: Problem setting TLS-PSK options.");
    return false;
  }
  if (!c.tls_version.empty() && c.tls_version != "tlsv1.3" && c.tls_version != "tlsv1.2" &&
      c.tls_version != "tlsv1.1") {
    print_error(c, "Error: Problem setting TLS options, check the options are valid.");
    return false;
  }
  return true;
}

}  // namespace

bool make_connect_options(const ClientConfig& c, client::ConnectOptions& out) {
  out.host = c.host;
  // 8883 when --cafile/--capath/--psk ask for TLS, as mosquitto_pub does; URLs set the port.
  int default_port = c.cafile.empty() && c.capath.empty() && !c.psk ? 1883 : 8883;
  out.port = static_cast<uint16_t>(c.port > 0 ? c.port : default_port);
  if (!make_tls_options(c, out.tls)) return false;
  out.websocket.enabled = c.websocket;
  out.websocket.path = c.ws_path;
  out.unix_path = c.unix_path;
  out.bind_address = c.bind_address;
  out.nodelay = c.nodelay;
  protocol::ConnectPacket& p = out.connect;
  p.version = c.version;
  p.clean_start = c.clean_session;
  p.keep_alive = static_cast<uint16_t>(c.keepalive);
  if (!c.id.empty()) {
    p.client_id = c.id;
  } else if (!c.id_prefix.empty()) {
    p.client_id = c.id_prefix + std::to_string(getpid());
  } else if (c.version == protocol::Version::kV31) {
    p.client_id = random_client_id();
  }
  if (c.password && !c.username && c.version != protocol::Version::kV5) {
    print_error(c, "Error: Problem setting username and/or password.");
    return false;
  }
  p.username = c.username;
  p.password = c.password;
  p.properties = c.connect_props;
  if (c.version == protocol::Version::kV5) {
    if (c.session_expiry) {
      p.properties.session_expiry_interval = *c.session_expiry;
    } else if (!c.clean_session) {
      p.properties.session_expiry_interval = UINT32_MAX;
    }
  }
  if (c.will_topic) {
    protocol::Will will;
    will.topic = *c.will_topic;
    will.payload = c.will_payload.value_or("");
    will.qos = static_cast<uint8_t>(c.will_qos);
    will.retain = c.will_retain;
    will.properties = c.will_props;
    p.will = std::move(will);
  }
  return true;
}

int report_connect_error(const ClientConfig& c, const client::Error& e) {
  using client::ErrorKind;
  switch (e.kind) {
    case ErrorKind::kNone: return 0;
    case ErrorKind::kLookup: print_error(c, "Unable to connect (Lookup error.)."); return 1;
    case ErrorKind::kSystem:
    case ErrorKind::kTimeout: print_error(c, "Error: " + e.message); return 1;
    case ErrorKind::kWebSocket: print_error(c, "Error: " + e.message); return 1;
    // Mosquitto fails a handshake inside its loop (MOSQ_ERR_TLS, 8) and bad
    // settings inside mosquitto_connect ("Unable to connect", 1).
    case ErrorKind::kTls: print_error(c, "Error: A TLS error occurred."); return 8;
    case ErrorKind::kTlsSetup:
      print_error(c, "Unable to connect (A TLS error occurred.).");
      return 1;
    case ErrorKind::kClosed: print_error(c, "Error: The connection was lost."); return 7;
    case ErrorKind::kRefused: break;
    default: print_error(c, "Error: The connection was lost."); return 1;
  }
  bool v5 = c.version == protocol::Version::kV5;
  uint8_t code = v5 ? static_cast<uint8_t>(e.reason) : protocol::to_v3_connack_code(e.reason);
  const char* text = v5 ? reason_string(e.reason) : connack_string_v3(code);
  if (c.tool == Tool::kRr && !v5) {
    // mosquitto_rr words a 3.1.1 return code as if it were a v5 reason code.
    static const char* const kAsReason[] = {"Success", "Granted QoS 1", "Granted QoS 2",
                                            "Unknown reason", "Disconnect with Will Message"};
    text = code < 5 ? kAsReason[code] : "Unknown reason";
  }
  print_error(c, std::string("Connection error: ") + text);
  if (c.tool == Tool::kPub) {
    print_error(c, v5 ? "Error: A network protocol error occurred when communicating with the "
                        "broker."
                      : "Error: The connection was refused.");
  }
  return code;
}

namespace {

void line(const std::string& id, const char* fmt_tail, const std::string& rest) {
  std::printf("Client %s %s%s\n", id.empty() ? "(null)" : id.c_str(), fmt_tail, rest.c_str());
}

std::string publish_summary(const protocol::PublishPacket& p) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "(d%d, q%d, r%d, m%d, '", p.dup ? 1 : 0, p.qos, p.retain ? 1 : 0,
                p.packet_id);
  return buf + p.topic + "', ... (" + std::to_string(p.payload.size()) + " bytes))";
}

void print_ack(const std::string& id, bool sent, const protocol::AckPacket& a) {
  const char* name = protocol::packet_type_name(a.type);
  std::string mid = std::to_string(a.packet_id);
  std::string rc = std::to_string(static_cast<int>(a.reason));
  bool with_rc = a.type == protocol::PacketType::kPuback ||
                 a.type == protocol::PacketType::kPubrec;
  if (sent) {
    std::printf("Client %s sending %s (m%s%s)\n", id.empty() ? "(null)" : id.c_str(), name,
                mid.c_str(), with_rc ? (", rc" + rc).c_str() : "");
    return;
  }
  bool recv_rc = a.type == protocol::PacketType::kPuback ||
                 a.type == protocol::PacketType::kPubcomp;
  std::printf("Client %s received %s (Mid: %s%s)\n", id.empty() ? "(null)" : id.c_str(), name,
              mid.c_str(), recv_rc ? (", RC:" + rc).c_str() : "");
}

}  // namespace

void print_debug_packet(std::string& id, protocol::Version version, bool sent,
                        const protocol::Packet& packet) {
  const char* dir = sent ? "sending " : "received ";
  if (const auto* pub = std::get_if<protocol::PublishPacket>(&packet)) {
    line(id, dir, "PUBLISH " + publish_summary(*pub));
  } else if (const auto* ack = std::get_if<protocol::AckPacket>(&packet)) {
    print_ack(id, sent, *ack);
  } else if (const auto* sub = std::get_if<protocol::SubscribePacket>(&packet)) {
    for (const protocol::Subscription& s : sub->subscriptions) {
      char opts[96];
      unsigned o = (s.options.no_local ? 0x04u : 0u) | (s.options.retain_as_published ? 0x08u : 0u) |
                   (static_cast<unsigned>(s.options.retain_handling) << 4);
      std::snprintf(opts, sizeof opts, ", QoS: %d, Options: 0x%02x)", s.options.max_qos, o);
      line(id, dir, "SUBSCRIBE (Mid: " + std::to_string(sub->packet_id) + ", Topic: " +
                        s.filter + opts);
    }
  } else if (const auto* unsub = std::get_if<protocol::UnsubscribePacket>(&packet)) {
    for (const std::string& f : unsub->filters) {
      line(id, dir, "UNSUBSCRIBE (Mid: " + std::to_string(unsub->packet_id) + ", Topic: " + f +
                        ")");
    }
  } else if (const auto* connack = std::get_if<protocol::ConnackPacket>(&packet)) {
    if (connack->properties.assigned_client_identifier) {
      id = *connack->properties.assigned_client_identifier;
    }
    int code = version == protocol::Version::kV5 ? static_cast<int>(connack->reason)
                                                 : protocol::to_v3_connack_code(connack->reason);
    line(id, dir, "CONNACK (" + std::to_string(code) + ")");
  } else if (const auto* disc = std::get_if<protocol::DisconnectPacket>(&packet); disc && !sent) {
    line(id, dir, "DISCONNECT (" + std::to_string(static_cast<int>(disc->reason)) + ")");
  } else {
    line(id, dir, protocol::packet_type_name(protocol::packet_type(packet)));
  }
}

int connect_client(const ClientConfig& config, client::Client& client) {
  client::ConnectOptions options;
  if (!make_connect_options(config, options)) return 1;
  if (config.debug) {
    auto id = std::make_shared<std::string>(options.connect.client_id);
    protocol::Version version = config.version;
    client.set_packet_hook([id, version](bool sent, const protocol::Packet& packet) {
      print_debug_packet(*id, version, sent, packet);
      std::fflush(stdout);
    });
  }
  client::Error error = client.connect(options);
  if (error) return report_connect_error(config, error);
  return -1;
}

}  // namespace midge::tools
