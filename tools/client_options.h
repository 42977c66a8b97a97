// Command-line and config-file options shared by midge_pub, midge_sub and
// midge_rr. Names, meanings, messages and exit codes follow the Mosquitto 2.0
// tools (mosquitto_pub(1), mosquitto_sub(1), mosquitto_rr(1)).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/client.h"
#include "protocol/packets.h"

namespace midge::tools {

enum class Tool : uint8_t { kPub = 1, kSub = 2, kRr = 4 };

const char* tool_name(Tool tool);

enum class MessageMode : uint8_t { kNone, kMessage, kFile, kStdinLines, kStdinFile, kNull };

struct ClientConfig {
  Tool tool = Tool::kPub;
  // connection
  std::string host = "localhost";
  int port = -1;  // -1: default 1883
  std::string unix_path;
  std::string bind_address;
  bool nodelay = false;
  protocol::Version version = protocol::Version::kV311;
  std::string id;
  std::string id_prefix;
  int keepalive = 60;
  bool clean_session = true;
  std::optional<uint32_t> session_expiry;  // -x
  std::optional<std::string> username;
  std::optional<std::string> password;
  // will
  std::optional<std::string> will_topic;
  std::optional<std::string> will_payload;
  int will_qos = 0;
  bool will_retain = false;
  // v5 properties from -D, per packet
  protocol::Properties connect_props, publish_props, subscribe_props, unsubscribe_props,
      disconnect_props, will_props;
  // publishing (pub, rr)
  int qos = 0;
  bool retain = false;
  std::vector<std::string> topics;  // pub/rr: exactly one; sub: any number
  MessageMode mode = MessageMode::kNone;
  std::string message;  // -m text or -f file contents
  int max_inflight = 20;
  int repeat = 1;
  double repeat_delay = 0;  // seconds
  // receiving (sub, rr)
  std::string response_topic;  // rr -e
  std::vector<std::string> filter_outs;  // -T
  std::vector<std::string> unsub_topics;  // -U
  int msg_count = 0;  // -C
  int timeout = 0;    // -W seconds
  bool verbose = false;
  bool eol = true;  // -N clears
  bool no_retain = false;  // -R
  bool retained_only = false;
  bool remove_retained = false;
  bool exit_after_sub = false;  // -E
  bool retain_as_published = false;
  bool pretty = false;
  double random_filter = 100.0;
  std::optional<std::string> format;  // -F
  // TLS, as the Mosquitto tools: on with --cafile, --capath, --tls-use-os-certs
  // or an mqtts:// / wss:// URL (those two trust the system CAs).
  std::string cafile, capath, certfile, keyfile;
  std::string tls_version, ciphers, tls_alpn;
  bool insecure = false;
  bool tls_use_os_certs = false;
  bool url_tls = false;
  // TLS-PSK: --psk (hexadecimal key) with --psk-identity, never with
  // --cafile/--capath. Set or not matters, as for mosquitto_pub: "" is a value.
  std::optional<std::string> psk, psk_identity;
  // MQTT over WebSockets: a ws:// or wss:// URL (Midge extension).
  bool websocket = false;
  std::string ws_path = "/mqtt";
  // misc
  bool debug = false;
  bool quiet = false;
  std::string unsupported;  // an engine/proxy feature asked for; refused later
};

// Parses the default-options file (~/.config/midge_<tool> or
// $XDG_CONFIG_HOME/midge_<tool>) and then argv. Returns -1 to continue, or
// the exit code to leave with (errors are already printed on stderr, --help
// on stdout).
int parse_options(Tool tool, int argc, char** argv, ClientConfig& config);

// Builds the CONNECT options (client id, will, credentials, properties).
// Returns false, after printing the error, when the options cannot be used.
bool make_connect_options(const ClientConfig& config, client::ConnectOptions& out);

// Prints the "Error: ..." line for a failed connect (socket or CONNACK) the
// way the Mosquitto tools do and returns the exit code.
int report_connect_error(const ClientConfig& config, const client::Error& error);

// Mosquitto's wording for a v5 reason code / v3 CONNACK refusal.
const char* reason_string(protocol::ReasonCode code);
const char* connack_string_v3(uint8_t code);

// "-d" lines: "Client <id> sending CONNECT" and so on, on stdout. A CONNACK
// carrying an assigned client id updates `client_id` first.
void print_debug_packet(std::string& client_id, protocol::Version version, bool sent,
                        const protocol::Packet& packet);

// Connects `client` as the options say (with the -d hook when asked).
// Returns -1 when connected, else the exit code (error already printed).
int connect_client(const ClientConfig& config, client::Client& client);

// Prints an error unless --quiet.
void print_error(const ClientConfig& config, const std::string& line);

}  // namespace midge::tools
