// mosquitto.conf (2.0 dialect) -> immutable Config. Start-up and SIGHUP only; not thread-safe,
// call from the main thread. Every option is declared once in option_table.h / options.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace midge::config {

struct Listener {
  uint16_t port = 1883;           // 0 => unix socket, path in `address`
  std::string address;            // bind address; empty = all interfaces (IPv4+IPv6)
  std::string protocol = "mqtt";  // "mqtt", "websockets" or "http" (metrics)
  std::string socket_domain;      // "", "ipv4", "ipv6"
  int max_connections = -1;
  std::string mount_point;
  uint8_t max_qos = 2;           // per listener, as mosquitto 2.0
  uint16_t max_topic_alias = 10;  // likewise
  std::string http_dir;           // websockets listeners: files served over HTTP; empty = none
  // TLS: on when certfile and keyfile are set, or psk_hint (server.cc checks the combination).
  std::string cafile, capath, certfile, keyfile, ciphers, ciphers_tls13, tls_version, crlfile, dhparamfile, psk_hint;
  bool require_certificate = false, use_identity_as_username = false, use_subject_as_username = false;
  bool use_username_as_clientid = false;  // a listener option in Mosquitto, whatever per_listener_settings says
  // Per-listener security: only set when per_listener_settings is true. Unset/empty means "use the
  // Config-level value", i.e. effective = listener.x.value_or(config.x).
  std::optional<bool> allow_anonymous;
  std::string password_file, acl_file, psk_file;
  std::optional<bool> allow_zero_length_clientid;
  std::optional<std::string> auto_id_prefix;
  std::string file;  // where it was declared (`listener`, `port`, or the first default-listener option)
  int line = 0;
};

struct Config {
  // Empty => local-only mode: listen on 127.0.0.1 and ::1 port 1883 (see apply_port_override).
  std::vector<Listener> listeners;
  bool local_only = false;  // true when no listener/port was configured
  // Unset => the broker resolves mosquitto 2.0's default: false when any listener is configured,
  // true in local-only mode (checked against mosquitto 2.0.11: `listener 18831` alone refuses an
  // anonymous client with "not authorised"; `mosquitto -p 18830` accepts it on localhost).
  std::optional<bool> allow_anonymous;
  bool per_listener_settings = false;
  std::string password_file, acl_file, psk_file;
  uint32_t sys_interval = 10;          // seconds, 0 disables $SYS
  uint32_t max_queued_messages = 1000;  // 0 = unlimited
  uint64_t max_queued_bytes = 0;        // 0 = unlimited
  bool queue_qos0_messages = false;
  bool upgrade_outgoing_qos = false;
  bool check_retain_source = false;
  uint16_t max_inflight_messages = 20;  // 0 = unlimited (mosquitto); we cap at 65535
  uint64_t max_inflight_bytes = 0;  // payload bytes of outgoing QoS 1/2 in flight; 0 = no limit
  uint32_t message_size_limit = 0;  // 0 = no limit (bytes of payload)
  // Whole packets, in bytes. Mosquitto has no limit by default (256 MB, the protocol's); Midge is
  // stricter by default so that a small machine survives hostile clients (like EMQX's 1 MiB).
  uint32_t max_packet_size = 0;  // 0 = the protocol's limit (268435455), as Mosquitto
  uint32_t max_subscriptions_per_client = 10000;  // 0 = no limit (Midge extension)
  uint32_t max_shared_groups = 65536;             // 0 = no limit (Midge extension)
  uint32_t max_pending_output = 1048576;  // bytes waiting to be written to one connection (Midge extension)
  uint16_t max_keepalive = 65535;
  int max_connections = -1;  // mosquitto has no global form; kept for the broker's total cap
  std::optional<uint64_t> persistent_client_expiration;  // seconds; unset = never
  unsigned thread_count = 0;  // 0 = one worker per core (Midge extension)
  bool refuse_cross_user_takeover = false;  // Midge extension (security review M8)
  bool retain_available = true;
  // max_qos: the value given before any `listener` (the default listener's); applied in local-only
  // mode, where the loopback listeners have no block of their own (each listener has its own).
  // max_topic_alias is per listener in mosquitto; Midge applies one value to all: after parsing,
  // it holds the lowest of the opened listeners' values (a warning when they differ), or in
  // local-only mode the value given before any `listener`.
  uint8_t max_qos = 2;
  uint16_t max_topic_alias = 10;
  bool allow_zero_length_clientid = true;
  std::string auto_id_prefix = "auto-";
  bool set_tcp_nodelay = false;
  // service
  std::string pid_file;
  bool persistence = false;
  std::string persistence_location, persistence_file = "mosquitto.db";
  bool persistence_sync = false;
  uint32_t autosave_interval = 1800;
  std::vector<std::string> log_dest;  // raw values: "stderr", "file /var/log/x.log", "syslog", ...; empty = default (stderr)
  std::optional<uint32_t> log_facility;  // syslog local0..local7; unset = daemon
  std::vector<std::string> log_type;  // "error", "warning", ..., "all", "none"; empty = default set
  bool connection_messages = true;
  bool log_timestamp = true;
  std::string log_timestamp_format;
  std::string user = "midge";  // as Mosquitto's "mosquitto": if missing, nobody
  uint16_t websockets_log_level = 0;
  // "file:line: ..." for options Midge accepts but does not apply, and ignored extra arguments.
  std::vector<std::string> warnings;
  // Every file or directory option as given, with where: `midge --test-config` names the line of
  // a file that cannot be read.
  struct PathLine {
    std::string option, value, file;
    int line = 0;
  };
  std::vector<PathLine> paths;
  // "file:line" of the line that set `option` to `value`; "" when none did.
  std::string where(std::string_view option, std::string_view value) const;
};

struct Error {
  std::string file;
  int line = 0;  // 0 when the error is about the whole file (e.g. cannot open it)
  std::string message;
  std::string to_string() const;  // "file:line: message"
};

// Parse a file; follows include_dir (files ending ".conf" in that directory, in mosquitto's order,
// each parsed as if inline; errors carry the included file's name and line). Never throws.
std::variant<Config, Error> load_file(const std::string& path);
std::variant<Config, Error> parse_string(std::string_view text, const std::string& name = "<string>");

// `mosquitto -p PORT`. Mosquitto 2.0.11 honours -p only in local-only mode (no listener, no
// `port`, no option that creates the default listener): it then listens on 127.0.0.1 and ::1 at
// PORT. With any listener configured, -p is silently ignored. We do the same: in local-only mode
// the two loopback listeners are materialised in `listeners` (local_only stays true).
void apply_port_override(Config& config, uint16_t port);

// For `--help-config`/docs: every option with its scope, applied state, type and default, generated
// from the table.
std::string describe_options();
// The README's list of the options Midge applies, warns about and refuses (Markdown), from the table.
std::string describe_applied_markdown();
// The option list of midge.conf(5) in roff (`midge --help-config man`), from the table.
std::string describe_options_man();

}  // namespace midge::config
