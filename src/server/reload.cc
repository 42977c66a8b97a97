#include "server/reload.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "config/option_table.h"

namespace midge::server {
namespace {

// The options that end up in broker::Settings (make_settings in
// server.cc), which every worker replaces on reload, the global files and
// the logger's destinations and timestamps.
constexpr std::array<std::string_view, 26> kLive = {
    "check_retain_source",   "log_timestamp",        "log_timestamp_format", "log_facility", "max_inflight_bytes",
    "allow_anonymous",       "max_queued_messages",  "max_queued_bytes",
    "queue_qos0_messages",   "upgrade_outgoing_qos", "max_inflight_messages",
    "message_size_limit",    "max_packet_size",      "max_pending_output",
    "max_subscriptions_per_client", "max_shared_groups", "max_keepalive",
    "persistent_client_expiration", "sys_interval",  "connection_messages",
    "retain_available",      "allow_zero_length_clientid", "auto_id_prefix",
    "refuse_cross_user_takeover", "password_file",   "acl_file",
};

bool live(std::string_view name, const config::Config& before, const config::Config& after) {
  if (std::find(kLive.begin(), kLive.end(), name) == kLive.end()) return false;
  if (name != "password_file" && name != "acl_file") return true;
  // A file the broker did not have, or stops having, changes who is
  // checked at all: the authenticator is wired at start.
  const auto& field = name == "password_file" ? &config::Config::password_file : &config::Config::acl_file;
  return !(before.*field).empty() && !(after.*field).empty() && !after.per_listener_settings;
}

std::string join(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& v : values) out += (out.empty() ? "" : ", ") + v;
  return out.empty() ? "(default)" : out;
}

// Everything about a listener that only a restart changes. max_topic_alias
// is left out: the broker applies its lowest value over all listeners
// through its settings, which reload.
std::string signature(const config::Listener& l) {
  const std::string fields[] = {
      std::to_string(l.port), l.address, l.protocol, l.socket_domain, std::to_string(l.max_connections),
      std::to_string(l.max_qos),
      l.mount_point, l.http_dir, l.cafile, l.capath, l.certfile, l.keyfile, l.ciphers, l.ciphers_tls13,
      l.tls_version, l.crlfile, l.dhparamfile, l.psk_hint, std::to_string(l.require_certificate),
      std::to_string(l.use_identity_as_username), std::to_string(l.use_subject_as_username),
      l.allow_anonymous ? std::to_string(*l.allow_anonymous) : "-", l.password_file, l.acl_file, l.psk_file,
      l.allow_zero_length_clientid ? std::to_string(*l.allow_zero_length_clientid) : "-",
      l.auto_id_prefix.value_or("-")};
  std::string out;
  for (const std::string& f : fields) out += f + '\n';
  return out;
}

std::string name_of(const config::Listener& l) {
  return l.port == 0 ? "listener " + l.address : "listener " + std::to_string(l.port);
}

void compare_listeners(const config::Config& before, const config::Config& after, ConfigChanges& out) {
  const size_t n = std::max(before.listeners.size(), after.listeners.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= before.listeners.size()) {
      out.restart.push_back(name_of(after.listeners[i]) + " added");
    } else if (i >= after.listeners.size()) {
      out.restart.push_back(name_of(before.listeners[i]) + " removed");
    } else if (signature(before.listeners[i]) != signature(after.listeners[i])) {
      out.restart.push_back(name_of(after.listeners[i]) + " changed");
    }
  }
}

}  // namespace

ConfigChanges compare_configs(const config::Config& before, const config::Config& after) {
  ConfigChanges out;
  const config::Listener none;
  for (const config::Option& o : config::option_table()) {
    if (!o.show || o.scope == config::Scope::kListener || o.scope == config::Scope::kBridge) continue;
    const std::string was = o.show(before, none);
    const std::string now = o.show(after, none);
    if (was == now) continue;
    const std::string line = std::string(o.name) + " " + was + " -> " + now;
    (live(o.name, before, after) ? out.applied : out.restart).push_back(line);
  }
  // Shown by their default only: compared as written.
  if (before.log_dest != after.log_dest) {
    out.applied.push_back("log_dest " + join(before.log_dest) + " -> " + join(after.log_dest));
  }
  if (before.log_type != after.log_type) {
    out.applied.push_back("log_type " + join(before.log_type) + " -> " + join(after.log_type));
  }
  compare_listeners(before, after, out);
  return out;
}

}  // namespace midge::server
