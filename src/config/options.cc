// The option table. One row per mosquitto.conf option (man mosquitto.conf, 2.0); adding an option
// is adding a row. Rows are built by small constexpr helpers that take the target member pointer,
// so the row also knows where the value lives and how to print its default.
#include <charconv>
#include <limits>
#include <type_traits>

#include "config/option_table.h"
#include "config/parse_state.h"

namespace midge::config {
namespace {

using detail::ParseState;
using Err = std::optional<std::string>;

template <class>
struct MemberOf;
template <class C, class T>
struct MemberOf<T C::*> {
  using Class = C;
  using Type = T;
};

template <class T>
inline constexpr bool kIsOptional = false;
template <class T>
inline constexpr bool kIsOptional<std::optional<T>> = true;

template <class T>
struct Unwrap {
  using Type = T;
};
template <class T>
struct Unwrap<std::optional<T>> {
  using Type = T;
};

// Stores `v` in `field`; the kind/type pairing is checked when the table is compiled (below).
template <class T>
Err assign(T& field, const Value& v) {
  if constexpr (kIsOptional<T>) {
    typename T::value_type inner{};
    if (auto e = assign(inner, v)) return e;
    field = std::move(inner);
  } else if constexpr (std::is_same_v<T, bool>) {
    const bool* b = std::get_if<bool>(&v);
    if (!b) return "internal: expected a boolean";
    field = *b;
  } else if constexpr (std::is_integral_v<T>) {
    const int64_t* n = std::get_if<int64_t>(&v);
    if (!n) return "internal: expected a number";
    field = static_cast<T>(*n);
  } else if constexpr (std::is_same_v<T, std::string>) {
    const std::string* s = std::get_if<std::string>(&v);
    if (!s) return "internal: expected text";
    field = *s;
  } else {  // std::vector<std::string>: repeated options accumulate
    const std::string* s = std::get_if<std::string>(&v);
    if (!s) return "internal: expected text";
    field.push_back(*s);
  }
  return std::nullopt;
}

template <class T>
std::string to_text(const T& v) {
  if constexpr (kIsOptional<T>) {
    return v ? to_text(*v) : std::string("unset");
  } else if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_integral_v<T>) {
    return std::to_string(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    return v.empty() ? std::string("\"\"") : v;
  } else {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out.empty() ? std::string("-") : out;
  }
}

template <auto M>
Err store(ParseState& st, const Value& v) {
  if constexpr (std::is_same_v<typename MemberOf<decltype(M)>::Class, Config>) {
    return assign(st.config.*M, v);
  } else {
    return assign(st.listener().*M, v);
  }
}

template <auto M>
std::string show(const Config& c, const Listener& l) {
  if constexpr (std::is_same_v<typename MemberOf<decltype(M)>::Class, Config>) {
    return to_text(c.*M);
  } else {
    return to_text(l.*M);
  }
}

// per_listener_settings decides whether a security option is global or the listener's.
template <auto G, auto L>
Err store_security(ParseState& st, const Value& v) {
  if (st.config.per_listener_settings) {
    if (!st.current && st.default_security_at.empty()) st.default_security_at = st.file + ":" + std::to_string(st.line);
    return assign(st.listener().*L, v);
  }
  return assign(st.config.*G, v);
}

// Listener option whose value before any `listener` line is also mirrored in Config.
template <auto L, auto G>
Err store_mirrored(ParseState& st, const Value& v) {
  if (!st.current) {
    if (auto e = assign(st.config.*G, v)) return e;
  }
  return assign(st.listener().*L, v);
}

template <class T>
constexpr void check_kind(Kind kind, int64_t lo, int64_t hi) {
  using V = typename Unwrap<T>::Type;
  bool ok = false;
  if constexpr (std::is_same_v<V, bool>) {
    ok = kind == Kind::kBool;
  } else if constexpr (std::is_integral_v<V>) {
    ok = (kind == Kind::kUint || kind == Kind::kInt || kind == Kind::kDuration) &&
         lo >= static_cast<int64_t>(std::numeric_limits<V>::min()) &&
         static_cast<uint64_t>(hi) <= static_cast<uint64_t>(std::numeric_limits<V>::max());
  } else {
    ok = kind == Kind::kString || kind == Kind::kPath || kind == Kind::kEnum;
  }
  if (!ok) throw "option kind does not match its field type or bounds";  // compile-time only
}

constexpr Scope scope_of_class(bool is_config) { return is_config ? Scope::kGlobal : Scope::kListener; }

// A plain stored option: scope follows the class of the member.
template <auto M>
constexpr Option opt(std::string_view name, Kind kind, uint8_t flags, std::string_view help,
                     int64_t lo = 0, int64_t hi = 0, std::string_view choices = {}) {
  using Info = MemberOf<decltype(M)>;
  check_kind<typename Info::Type>(kind, lo, hi);
  return {name, kind, scope_of_class(std::is_same_v<typename Info::Class, Config>), flags, lo, hi,
          choices, help, &store<M>, &show<M>, Applied::kYes, {}, {}};
}

template <auto G, auto L>
constexpr Option security(std::string_view name, Kind kind, std::string_view help) {
  check_kind<typename MemberOf<decltype(G)>::Type>(kind, 0, 0);
  return {name, kind, Scope::kSecurity, kReloadable, 0, 0, {}, help, &store_security<G, L>, &show<G>, Applied::kYes, {}, {}};
}

template <auto L, auto G>
constexpr Option mirrored(std::string_view name, Kind kind, std::string_view help, int64_t lo, int64_t hi,
                          uint8_t flags = kMakesDefault) {
  check_kind<typename MemberOf<decltype(L)>::Type>(kind, lo, hi);
  check_kind<typename MemberOf<decltype(G)>::Type>(kind, lo, hi);
  return {name, kind, Scope::kListener, flags, lo, hi, {}, help, &store_mirrored<L, G>, &show<L>, Applied::kYes, {}, {}};
}

constexpr Option special(std::string_view name, Kind kind, Scope scope, uint8_t flags, std::string_view help,
                         Setter set, Shower shown = nullptr, int64_t lo = 0, int64_t hi = 0) {
  return {name, kind, scope, flags, lo, hi, {}, help, set, shown, Applied::kYes, {}, {}};
}

constexpr Option unsupported(std::string_view name, Scope scope, std::string_view help, uint8_t flags = kNoFlags) {
  return {name, Kind::kUnsupported, scope, flags, 0, 0, {}, help, nullptr, nullptr, Applied::kYes, {}, {}};
}

// Marks a row as accepted but not applied (a warning) or refused; `inert` is the value that asks
// for what Midge does anyway, which is accepted silently.
constexpr Option warn(Option o, std::string_view why, std::string_view inert = {}) {
  o.applied = Applied::kWarn;
  o.why = why;
  o.inert = inert;
  return o;
}

constexpr Option refuse(Option o, std::string_view why, std::string_view inert = {}) {
  o.applied = Applied::kRefuse;
  o.why = why;
  o.inert = inert;
  return o;
}

// What the user loses, shared by the rows of one missing feature.
constexpr std::string_view kEngine = "OpenSSL engines are not supported; the key must be a PEM file (keyfile)";
constexpr std::string_view kPlugin = "plugins are not implemented; their authentication and access checks would not run";
constexpr std::string_view kPluginOpt = "plugins are not implemented";
constexpr std::string_view kAutosave = "Midge writes every change as it is made, before acknowledging it: there is no periodic save";
constexpr std::string_view kBridge = "bridges are not implemented";
constexpr std::string_view kWebsocketsLib = "Midge does not use libwebsockets";

// ---- special setters -------------------------------------------------------------------------

// A topic prefix: no wildcard, as Mosquitto checks it.
Err set_mount_point(ParseState& st, const Value& v) {
  const std::string& s = std::get<std::string>(v);
  if (s.find_first_of("+#") != std::string::npos) return "a mount point may not contain '+' or '#'";
  if (s.find('\0') != std::string::npos) return "a mount point may not contain NUL";
  st.listener().mount_point = s;
  return std::nullopt;
}

std::string_view first_word(std::string_view s, std::string_view* rest) {
  std::size_t end = s.find_first_of(" \t");
  std::string_view word = s.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view{} : s.substr(end);
  std::size_t start = tail.find_first_not_of(" \t");
  *rest = start == std::string_view::npos ? std::string_view{} : tail.substr(start);
  return word;
}

std::optional<uint16_t> parse_port(std::string_view text, int min) {
  int port = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc{} || ptr != text.data() + text.size() || port < min || port > 65535) return std::nullopt;
  return static_cast<uint16_t>(port);
}

Err set_listener(ParseState& st, const Value& v) {
  std::string_view rest;
  std::string_view port_text = first_word(std::get<std::string>(v), &rest);
  auto port = parse_port(port_text, 0);
  if (!port) return "invalid port '" + std::string(port_text) + "' (expected 0..65535)";
  std::string_view extra;
  std::string_view address = first_word(rest, &extra);
  if (!extra.empty() && extra.front() != '#') st.warn("extra argument '" + std::string(extra) + "' after listener address ignored");
  if (address.starts_with('#')) address = {};
  if (*port == 0 && address.empty()) return "a listener with port 0 needs a unix socket path";
  Listener l;
  l.port = *port;
  l.address = std::string(address);
  l.file = st.file;
  l.line = st.line;
  st.config.listeners.push_back(std::move(l));
  st.current = st.config.listeners.size() - 1;
  return std::nullopt;
}

// `port` and `bind_address` always configure the default listener, wherever they appear.
Err set_port(ParseState& st, const Value& v) {
  st.use_default();
  st.default_listener.port = static_cast<uint16_t>(std::get<int64_t>(v));
  return std::nullopt;
}

Err set_bind_address(ParseState& st, const Value& v) {
  st.use_default();
  st.default_listener.address = std::get<std::string>(v);
  return std::nullopt;
}

std::string show_port(const Config&, const Listener& l) { return std::to_string(l.port); }

Err set_per_listener_settings(ParseState& st, const Value& v) {
  bool on = std::get<bool>(v);
  if (on && st.security_seen) return "per_listener_settings must be set before any other security settings";
  st.config.per_listener_settings = on;
  return std::nullopt;
}

constexpr std::string_view kLogDests = "stdout|stderr|syslog|topic|file|dlt|none";
constexpr std::string_view kLogTypes =
    "debug|error|warning|notice|information|subscribe|unsubscribe|websockets|none|all";

bool is_choice(std::string_view choices, std::string_view word) {
  while (!choices.empty()) {
    std::size_t bar = choices.find('|');
    if (choices.substr(0, bar) == word) return true;
    if (bar == std::string_view::npos) break;
    choices.remove_prefix(bar + 1);
  }
  return false;
}

Err set_log_dest(ParseState& st, const Value& v) {
  std::string_view rest;
  std::string_view dest = first_word(std::get<std::string>(v), &rest);
  if (!is_choice(kLogDests, dest)) return "invalid destination '" + std::string(dest) + "' (expected one of stdout, stderr, syslog, topic, file, dlt, none)";
  if (dest == "file") {
    if (rest.empty()) return "'log_dest file' needs a file path";
    st.config.log_dest.push_back("file " + std::string(rest));
    return std::nullopt;
  }
  if (!rest.empty() && rest.front() != '#') st.warn("extra argument '" + std::string(rest) + "' for log_dest ignored");
  if (dest == "dlt") st.warn("option 'log_dest dlt' is not applied by Midge yet (there is no DLT output)");
  st.config.log_dest.emplace_back(dest);
  return std::nullopt;
}

std::string show_log_dest(const Config&, const Listener&) { return "stderr"; }
std::string show_log_type(const Config&, const Listener&) { return "error,warning,notice,information"; }

// Errors inside an included file keep that file's name and line: they travel in st.nested.
Err set_include_dir(ParseState& st, const Value& v) {
  if (auto e = detail::include_dir(st, std::get<std::string>(v))) {
    st.nested = std::move(*e);
    return st.nested->message;
  }
  return std::nullopt;
}

constexpr int64_t kU32 = std::numeric_limits<uint32_t>::max();
constexpr int64_t kI64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kI32 = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxPayload = 268435455;  // MQTT remaining-length limit
// Session expiry is kept as a nanosecond steady-clock time point (int64, about 292 years from boot):
// 200 years leaves room for any uptime (security review L6).
constexpr int64_t kMaxExpiration = int64_t{200} * 365 * 86400;

constexpr uint8_t R = kReloadable;
constexpr uint8_t D = kMakesDefault;
constexpr Kind B = Kind::kBool, U = Kind::kUint, I = Kind::kInt, S = Kind::kString, P = Kind::kPath,
               E = Kind::kEnum;

// clang-format off
constexpr Option kOptions[] = {
  // ---- general (global) ----
  security<&Config::acl_file, &Listener::acl_file>("acl_file", P, "Access control list file (topic/user/pattern lines, as Mosquitto); re-read on SIGHUP. A filter of which a client may read nothing is refused in SUBACK."),
  security<&Config::allow_anonymous, &Listener::allow_anonymous>("allow_anonymous", B, "Allow clients that send no username. Unset: false if any listener is configured, true in local-only mode."),
  warn(unsupported("allow_duplicate_messages", Scope::kGlobal, "Deprecated in mosquitto; duplicates are always allowed."), "deprecated; duplicates are always delivered", "true"),
  security<&Config::allow_zero_length_clientid, &Listener::allow_zero_length_clientid>("allow_zero_length_clientid", B, "Let MQTT 3.1.1/5 clients connect with an empty client id and get a generated one."),
  warn(unsupported("auth_opt_*", Scope::kSecurity, "Option passed to the auth plugin."), kPluginOpt),
  refuse(unsupported("auth_plugin", Scope::kSecurity, "External authentication plugin (shared object)."), kPlugin),
  warn(unsupported("auth_plugin_deny_special_chars", Scope::kSecurity, "Deny ACL checks for usernames/client ids with + or #."), kPluginOpt, "true"),
  security<&Config::auto_id_prefix, &Listener::auto_id_prefix>("auto_id_prefix", S, "Prefix of generated client ids."),
  warn(opt<&Config::autosave_interval>("autosave_interval", U, R, "Mosquitto: seconds between saves of its in-memory database. Midge has no periodic save (see persistence).", 0, kU32), kAutosave),
  warn(unsupported("autosave_on_changes", Scope::kGlobal, "Mosquitto: count changes instead of seconds for autosave_interval. Midge has no periodic save (see persistence)."), kAutosave),
  opt<&Config::check_retain_source>("check_retain_source", B, R, "Before sending a retained message, check that its publisher may still write its topic (acl_file)."),
  refuse(unsupported("clientid_prefixes", Scope::kGlobal, "Deprecated: only allow client ids with this prefix."), "client id prefixes are not checked; clients with any client id would be accepted"),
  opt<&Config::connection_messages>("connection_messages", B, R, "Log client connects and disconnects."),
  special("include_dir", Kind::kPath, Scope::kGlobal, kNoFlags, "Parse every *.conf file in this directory, in mosquitto's order.", &set_include_dir),
  special("log_dest", Kind::kSpecial, Scope::kGlobal, R, "Log destination: stdout, stderr, syslog, topic ($SYS/broker/log/...), file PATH or none; repeatable (dlt: a warning).", &set_log_dest, &show_log_dest),
  opt<&Config::log_facility>("log_facility", U, R, "Syslog facility: N means localN (0..7); unset = daemon.", 0, 7),
  opt<&Config::log_timestamp>("log_timestamp", B, R, "Prefix each log line with a timestamp."),
  opt<&Config::log_timestamp_format>("log_timestamp_format", S, R, "strftime() format of the log timestamp (local time); unset = seconds since the epoch."),
  {"log_type", E, Scope::kGlobal, R, 0, 0, kLogTypes, "Message types to log; repeatable. debug: a line for each packet received and sent, as Mosquitto's.", &store<&Config::log_type>, &show_log_type, Applied::kYes, {}, {}},
  opt<&Config::max_inflight_bytes>("max_inflight_bytes", U, R, "Per-client limit of the payload bytes of outgoing QoS 1/2 messages in flight: a message goes out while fewer bytes are in flight, the others wait in the queue; 0 = no limit.", 0, kI64),
  opt<&Config::max_inflight_messages>("max_inflight_messages", U, R, "Per-client limit of outgoing QoS 1/2 messages in flight; 0 = no limit.", 0, 65535),
  opt<&Config::max_keepalive>("max_keepalive", U, R, "Largest keepalive accepted; MQTT 5 clients asking for more are told this value.", 10, 65535),
  opt<&Config::max_packet_size>("max_packet_size", U, R, "Largest MQTT packet accepted, in bytes (>= 20); larger packets close the connection. Default: no limit but the protocol's (268435455 bytes of remaining length), as in Mosquitto.", 20, kU32),
  opt<&Config::max_pending_output>("max_pending_output", U, kMidgeExtension, "Bytes waiting to be written to one connection beyond which it is sent nothing more but what it needs (see README, slow consumers).", 65536, kU32),
  opt<&Config::max_queued_bytes>("max_queued_bytes", U, R, "Per-client byte limit of queued QoS 1/2 messages; 0 = no limit.", 0, kI64),
  opt<&Config::max_queued_messages>("max_queued_messages", U, R, "Per-client limit of queued QoS 1/2 messages; 0 = no limit.", 0, kU32),
  opt<&Config::max_shared_groups>("max_shared_groups", U, kMidgeExtension, "Most $share groups (group and filter) in the whole broker; 0 = no limit.", 0, kU32),
  opt<&Config::max_subscriptions_per_client>("max_subscriptions_per_client", U, kMidgeExtension, "Most subscriptions one client may hold; more are refused in SUBACK (0x97 / 0x80); 0 = no limit.", 0, kU32),
  warn(unsupported("memory_limit", Scope::kGlobal, "Heap limit in bytes."), "the heap is not limited; each connection's memory is bounded by max_packet_size, max_pending_output and the queue limits"),
  opt<&Config::message_size_limit>("message_size_limit", U, R, "Largest PUBLISH payload accepted, in bytes; 0 = no limit.", 0, kMaxPayload),
  security<&Config::password_file, &Listener::password_file>("password_file", P, "Password file made with mosquitto_passwd."),
  special("per_listener_settings", B, Scope::kGlobal, R, "Security options in a listener block apply to it (password_file, allow_anonymous, psk_file); the others must be the same on every listener.", &set_per_listener_settings, &show<&Config::per_listener_settings>),
  opt<&Config::persistence>("persistence", B, kNoFlags, "Keep retained messages, persistent sessions (subscriptions, queued and in-flight messages) on disk: each change is written before it is acknowledged, so a restart, kill -9 or crash loses nothing acknowledged."),
  opt<&Config::persistence_file>("persistence_file", S, kNoFlags, "Mosquitto's database file name: Midge keeps its store in the directory NAME.midge beside it (RocksDB; Mosquitto's file is neither read nor touched)."),
  opt<&Config::persistence_location>("persistence_location", P, kNoFlags, "Directory that holds the store; it must exist. Unset = the current directory."),
  opt<&Config::persistence_sync>("persistence_sync", B, kMidgeExtension, "fsync each batch of writes before acknowledging it: survives a power cut, not just a crash, at a cost (README, persistence)."),
  opt<&Config::persistent_client_expiration>("persistent_client_expiration", Kind::kDuration, R, "Expire disconnected persistent clients after N h/d/w/m/y (at most 200 years: longer is cut to that, with a warning); unset = never.", 1, kMaxExpiration),
  opt<&Config::pid_file>("pid_file", P, kNoFlags, "Write the process id to this file (not through a symbolic link)."),
  refuse(unsupported("plugin", Scope::kSecurity, "Plugin shared object (mosquitto 2.0 name of auth_plugin)."), kPlugin),
  warn(unsupported("plugin_opt_*", Scope::kSecurity, "Option passed to the plugin."), kPluginOpt),
  security<&Config::psk_file, &Listener::psk_file>("psk_file", P, "TLS-PSK keys, identity:hexkey lines (used by listeners with psk_hint)."),
  opt<&Config::queue_qos0_messages>("queue_qos0_messages", B, R, "Queue QoS 0 messages for disconnected persistent clients."),
  opt<&Config::refuse_cross_user_takeover>("refuse_cross_user_takeover", B, kMidgeExtension, "Refuse (not authorised) a CONNECT whose client id has a session of another user name, instead of taking it over."),
  opt<&Config::retain_available>("retain_available", B, R, "Support retained messages; false disconnects clients that publish them."),
  warn(unsupported("retry_interval", Scope::kGlobal, "Removed in mosquitto 2.0 (accepted with a warning)."), "removed in Mosquitto 2.0"),
  warn(opt<&Config::set_tcp_nodelay>("set_tcp_nodelay", B, R, "Set TCP_NODELAY on client sockets."), "Midge always sets TCP_NODELAY: it writes each connection's output once per event-loop turn, so Nagle's algorithm would only delay it", "true"),
  opt<&Config::sys_interval>("sys_interval", U, R, "Seconds between $SYS updates; 0 disables $SYS.", 0, 65535),
  opt<&Config::thread_count>("thread_count", U, kMidgeExtension, "Worker threads; 0 = one per core.", 0, 1024),
  opt<&Config::upgrade_outgoing_qos>("upgrade_outgoing_qos", B, R, "Deliver at the subscription's granted QoS, not the lower of it and the published one (non-standard, breaks MQTT-3.8.4-8)."),
  opt<&Config::user>("user", S, kNoFlags, "When started as root, switch to this user after opening listeners, log and pid files and the store ('root': stay root). If user 'midge' does not exist, 'nobody' is used; any other user that does not exist stops the start-up."),
  // ---- listeners ----
  special("bind_address", S, Scope::kListener, D, "Deprecated: bind address of the default listener.", &set_bind_address),
  refuse(unsupported("bind_interface", Scope::kListener, "Listen only on this network interface.", D), "the listener would accept connections on every interface"),
  opt<&Listener::http_dir>("http_dir", P, kNoFlags, "Directory of files served over HTTP (GET, HEAD; at most 16 MiB each) by this websockets listener; must exist. Ignored on mqtt listeners."),
  special("listener", Kind::kListener, Scope::kListener, kNoFlags, "listener PORT [ADDRESS|UNIX_PATH]: start a listener block; port 0 = unix socket at UNIX_PATH.", &set_listener),
  mirrored<&Listener::max_connections, &Config::max_connections>("max_connections", I, "Client limit of this listener; -1 = unlimited.", -1, kI32),
  mirrored<&Listener::max_qos, &Config::max_qos>("max_qos", U, "Highest QoS of this listener's clients (0..2): a higher PUBLISH or will is refused (QoS not supported), subscriptions are granted at most this, and MQTT 5 clients are told it in CONNACK.", 0, 2),
  mirrored<&Listener::max_qos, &Config::max_qos>("maximum_qos", U, "Same as max_qos (a second name Mosquitto 2.0 reads too).", 0, 2),
  mirrored<&Listener::max_topic_alias, &Config::max_topic_alias>("max_topic_alias", U, "Topic aliases an MQTT 5 client may create (0..65535); if listeners differ, the lowest applies to all (a warning).", 0, 65535, kNoFlags),
  special("mount_point", S, Scope::kListener, kNeedsListener, "Topic prefix isolating this listener's clients: added to what they publish and subscribe to, removed from what they receive.", &set_mount_point, &show<&Listener::mount_point>),
  special("port", U, Scope::kListener, D, "Deprecated: port of the default listener (all interfaces).", &set_port, &show_port, 1, 65535),
  opt<&Listener::protocol>("protocol", E, D, "mqtt, websockets (plain ws://), or http: the Prometheus metrics at /metrics, no MQTT (README, Metrics).", 0, 0, "mqtt|websockets|http"),
  opt<&Listener::socket_domain>("socket_domain", E, D, "Restrict the listener to ipv4 or ipv6.", 0, 0, "ipv4|ipv6"),
  opt<&Listener::use_username_as_clientid>("use_username_as_clientid", B, D, "A client's user name replaces its client id (so one user cannot take over another's session); a client without user name is refused (not authorised)."),
  warn(opt<&Config::websockets_log_level>("websockets_log_level", U, kNoFlags, "libwebsockets log level bit mask.", 0, 65535), kWebsocketsLib),
  warn(unsupported("websockets_headers_size", Scope::kGlobal, "Websockets HTTP header buffer size."), "the WebSocket upgrade request may be up to 8 KB"),
  // ---- listener TLS (a listener with certfile and keyfile, or psk_hint, speaks TLS) ----
  opt<&Listener::cafile>("cafile", P, D, "PEM CA certificates trusted for client certificates."),
  opt<&Listener::capath>("capath", P, D, "Directory of PEM CA certificates (c_rehash names)."),
  opt<&Listener::certfile>("certfile", P, D, "PEM server certificate chain (with keyfile enables TLS)."),
  opt<&Listener::ciphers>("ciphers", S, D, "OpenSSL cipher list for TLS 1.2 and older."),
  opt<&Listener::ciphers_tls13>("ciphers_tls1.3", S, D, "OpenSSL cipher suites for TLS 1.3."),
  opt<&Listener::crlfile>("crlfile", P, D, "PEM certificate revocation list checked for client certificates."),
  opt<&Listener::dhparamfile>("dhparamfile", P, D, "PEM DH parameters for DHE ciphers; unset = built-in groups."),
  opt<&Listener::keyfile>("keyfile", P, D, "PEM server private key (unencrypted)."),
  opt<&Listener::psk_hint>("psk_hint", S, D, "Enable TLS-PSK on this listener with this hint (keys in psk_file)."),
  opt<&Listener::require_certificate>("require_certificate", B, D, "Require a client certificate signed by cafile/capath."),
  refuse(unsupported("tls_engine", Scope::kListener, "OpenSSL engine id.", D), kEngine),
  refuse(unsupported("tls_engine_kpass_sha1", Scope::kListener, "SHA1 of the engine key password."), kEngine),
  refuse(unsupported("tls_keyform", Scope::kListener, "pem or engine."), kEngine, "pem"),
  opt<&Listener::tls_version>("tls_version", E, kNoFlags, "Oldest TLS version accepted (default tlsv1.2).", 0, 0, "tlsv1.3|tlsv1.2|tlsv1.1"),
  opt<&Listener::use_identity_as_username>("use_identity_as_username", B, D, "The client certificate's CN (or PSK identity) is the user name; no password is checked."),
  opt<&Listener::use_subject_as_username>("use_subject_as_username", B, D, "The client certificate's whole subject (RFC 2253) is the user name; no password is checked."),
  // ---- bridges (a `connection` block) ----
  warn(unsupported("address", Scope::kBridge, "Remote broker address[:port] list."), kBridge),
  warn(unsupported("addresses", Scope::kBridge, "Same as address."), kBridge),
  warn(unsupported("bridge_alpn", Scope::kBridge, "TLS ALPN of the bridge."), kBridge),
  warn(unsupported("bridge_attempt_unsubscribe", Scope::kBridge, "Unsubscribe remote out-topics."), kBridge),
  warn(unsupported("bridge_bind_address", Scope::kBridge, "Local address of the bridge socket."), kBridge),
  warn(unsupported("bridge_cafile", Scope::kBridge, "Bridge TLS CA file."), kBridge),
  warn(unsupported("bridge_capath", Scope::kBridge, "Bridge TLS CA directory."), kBridge),
  warn(unsupported("bridge_certfile", Scope::kBridge, "Bridge client certificate."), kBridge),
  warn(unsupported("bridge_identity", Scope::kBridge, "Bridge PSK identity."), kBridge),
  warn(unsupported("bridge_insecure", Scope::kBridge, "Skip remote host name verification."), kBridge),
  warn(unsupported("bridge_keyfile", Scope::kBridge, "Bridge client key."), kBridge),
  warn(unsupported("bridge_max_packet_size", Scope::kBridge, "Largest packet sent to the remote broker."), kBridge),
  warn(unsupported("bridge_outgoing_retain", Scope::kBridge, "Keep the retain bit on outgoing messages."), kBridge),
  warn(unsupported("bridge_protocol_version", Scope::kBridge, "mqttv50, mqttv311 or mqttv31."), kBridge),
  warn(unsupported("bridge_psk", Scope::kBridge, "Bridge pre-shared key."), kBridge),
  warn(unsupported("bridge_require_ocsp", Scope::kBridge, "Require OCSP on the bridge TLS connection."), kBridge),
  warn(unsupported("bridge_tls_version", Scope::kBridge, "Bridge TLS version."), kBridge),
  warn(unsupported("cleansession", Scope::kBridge, "Clean session of the bridge."), kBridge),
  warn(unsupported("clientid", Scope::kBridge, "Old name of remote_clientid."), kBridge),
  warn(unsupported("connection", Scope::kBridge, "Start a bridge block named NAME."), kBridge),
  warn(unsupported("idle_timeout", Scope::kBridge, "Idle seconds before a lazy bridge stops."), kBridge),
  warn(unsupported("keepalive_interval", Scope::kBridge, "Bridge keepalive seconds."), kBridge),
  warn(unsupported("local_cleansession", Scope::kBridge, "Clean session of the local side."), kBridge),
  warn(unsupported("local_clientid", Scope::kBridge, "Client id on the local broker."), kBridge),
  warn(unsupported("local_password", Scope::kBridge, "Password on the local broker."), kBridge),
  warn(unsupported("local_username", Scope::kBridge, "Username on the local broker."), kBridge),
  warn(unsupported("notification_topic", Scope::kBridge, "Topic of bridge state notifications."), kBridge),
  warn(unsupported("notifications", Scope::kBridge, "Publish bridge state notifications."), kBridge),
  warn(unsupported("notifications_local_only", Scope::kBridge, "Publish notifications locally only."), kBridge),
  warn(unsupported("password", Scope::kBridge, "Old name of remote_password."), kBridge),
  warn(unsupported("remote_clientid", Scope::kBridge, "Client id on the remote broker."), kBridge),
  warn(unsupported("remote_password", Scope::kBridge, "Password on the remote broker."), kBridge),
  warn(unsupported("remote_username", Scope::kBridge, "Username on the remote broker."), kBridge),
  warn(unsupported("restart_timeout", Scope::kBridge, "Reconnect delay: constant or base cap."), kBridge),
  warn(unsupported("round_robin", Scope::kBridge, "Treat all bridge addresses as equals."), kBridge),
  warn(unsupported("start_type", Scope::kBridge, "automatic, lazy or once."), kBridge),
  warn(unsupported("threshold", Scope::kBridge, "Queued messages that start a lazy bridge."), kBridge),
  warn(unsupported("topic", Scope::kBridge, "Topic pattern [direction [qos [local remote]]] shared with the remote."), kBridge),
  warn(unsupported("try_private", Scope::kBridge, "Announce the bridge to the remote broker."), kBridge),
  warn(unsupported("username", Scope::kBridge, "Old name of remote_username."), kBridge),
};
// clang-format on

// Every row says whether Midge applies it, and why not when it does not.
constexpr bool states_are_complete() {
  for (const Option& o : kOptions) {
    if (o.kind == Kind::kUnsupported && o.applied == Applied::kYes) return false;
    if ((o.applied == Applied::kYes) != o.why.empty()) return false;
  }
  return true;
}
static_assert(states_are_complete(), "an option row lacks its applied state or its reason");

// mosquitto reads 1/0 as booleans too.
std::string_view as_bool_word(std::string_view v) {
  if (v == "1") return "true";
  if (v == "0") return "false";
  return v;
}

}  // namespace

std::span<const Option> option_table() { return kOptions; }

const Option* find_option(std::string_view name) {
  for (const Option& o : kOptions) {
    if (o.name == name) return &o;
  }
  for (const Option& o : kOptions) {
    if (o.name.ends_with('*') && name.size() > o.name.size() - 1 && name.starts_with(o.name.substr(0, o.name.size() - 1))) {
      return &o;
    }
  }
  return nullptr;
}

std::optional<std::string> not_applied_message(const Option& o, std::string_view name, std::string_view value) {
  if (o.applied == Applied::kYes) return std::nullopt;
  if (!o.inert.empty() && (value == o.inert || as_bool_word(value) == o.inert)) return std::nullopt;
  const std::string quoted = "option '" + std::string(name) + "'";
  if (o.applied == Applied::kWarn) return quoted + " is not applied by Midge yet (" + std::string(o.why) + ")";
  return quoted + " is not supported by Midge yet and ignoring it would weaken security (" + std::string(o.why) +
         "); remove it to start Midge";
}

}  // namespace midge::config
