#include "server/startup_checks.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/acl_file.h"
#include "auth/password_file.h"
#include "server/persistence.h"

namespace midge::server {
namespace {

// What --test-config found: errors stop a start-up, warnings are logged by it.
struct Findings {
  std::vector<std::string> errors, warnings;
  void error(const std::string& where, const std::string& message) { errors.push_back(where + ": " + message); }
};

// Where a file option was given; the config file itself when the line is unknown.
std::string where_path(const config::Config& cfg, std::string_view option, const std::string& value,
                       const std::string& config_file) {
  std::string at = cfg.where(option, value);
  return at.empty() ? config_file : at;
}

// The password files start-up loads: the broker's, and with
// per_listener_settings each listener's (server.cc, listener_access).
std::vector<std::string> files_of(const config::Config& cfg, std::string config::Config::*global,
                                  std::string config::Listener::*own) {
  std::vector<std::string> files;
  if (!(cfg.*global).empty()) files.push_back(cfg.*global);
  if (!cfg.per_listener_settings || cfg.local_only) return files;
  for (const config::Listener& l : cfg.listeners) {
    if (!(l.*own).empty()) files.push_back(l.*own);
  }
  return files;
}

void check_password_files(const config::Config& cfg, const std::string& config_file, Findings& out) {
  for (const std::string& path : files_of(cfg, &config::Config::password_file, &config::Listener::password_file)) {
    std::vector<std::string> problems;  // bad lines: skipped at start-up, as Mosquitto
    std::string error;
    if (!auth::PasswordFile::load(path, problems, error)) {
      out.error(where_path(cfg, "password_file", path, config_file), "password_file: " + error);
    }
    for (std::string& p : problems) out.warnings.push_back(std::move(p));
  }
}

// An ACL file that cannot be read, or has a bad line, stops the start-up:
// it is parsed as start-up parses it (its own errors name its file and line).
void check_acl_files(const config::Config& cfg, const std::string& config_file, Findings& out) {
  for (const std::string& path : files_of(cfg, &config::Config::acl_file, &config::Listener::acl_file)) {
    std::string error;
    std::vector<std::string> warnings;
    if (!auth::AclFile::load(path, error, warnings)) {
      out.error(where_path(cfg, "acl_file", path, config_file), "acl_file: " + error);
    }
    for (std::string& w : warnings) out.warnings.push_back(std::move(w));
  }
}

// persistence true: the store's directory must be one start-up can use. The
// store itself is not opened: a running broker holds its lock.
void check_persistence(const config::Config& cfg, const std::string& config_file, Findings& out) {
  if (!cfg.persistence) return;
  const std::string location = cfg.persistence_location.empty() ? std::string(".") : cfg.persistence_location;
  const std::string where = where_path(cfg, "persistence_location", cfg.persistence_location, config_file);
  std::error_code ec;
  if (!std::filesystem::is_directory(location, ec)) {
    out.error(where, "persistence_location " + location + " is not an existing directory");
  } else if (::access(location.c_str(), W_OK | X_OK) != 0) {
    out.error(where, "persistence_location " + location + " is not writable");
  }
  const std::string path = store_path(cfg);
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_directory(path, ec)) {
    out.error(where, path + " is a file: Midge keeps its store in a directory of that name");
  }
}

// TLS contexts are built exactly as start-up builds them; http_dir must be a directory.
void check_listeners(const config::Config& cfg, Findings& out) {
  for (const config::Listener& l : cfg.listeners) {
    const std::string where = l.file + ":" + std::to_string(l.line);
    std::string error;
    listener_tls(cfg, l, error);
    if (!error.empty()) out.error(where, "listener on port " + std::to_string(l.port) + ": " + error);
    std::error_code ec;
    if (l.protocol == "websockets" && !l.http_dir.empty() && !std::filesystem::is_directory(l.http_dir, ec)) {
      out.error(where, "listener on port " + std::to_string(l.port) + ": http_dir \"" + l.http_dir +
                           "\" is not a directory");
    }
  }
}

}  // namespace

std::shared_ptr<net::TlsContext> listener_tls(const config::Config& cfg, const config::Listener& l,
                                              std::string& error) {
  if (l.certfile.empty() && l.psk_hint.empty()) return nullptr;
  net::TlsOptions o;
  o.cafile = l.cafile;
  o.capath = l.capath;
  o.certfile = l.certfile;
  o.keyfile = l.keyfile;
  o.crlfile = l.crlfile;
  o.dhparamfile = l.dhparamfile;
  o.ciphers = l.ciphers;
  o.ciphers_tls13 = l.ciphers_tls13;
  o.tls_version = l.tls_version;
  o.require_certificate = l.require_certificate;
  o.psk_hint = l.psk_hint;
  o.psk_file = cfg.per_listener_settings ? l.psk_file : cfg.psk_file;
  o.alpn = l.protocol == "mqtt" ? "mqtt" : "http/1.1";
  return net::TlsContext::create(o, error);
}

int test_config(const std::string& config_file) {
  if (config_file.empty()) {
    std::fputs("Error: --test-config needs a configuration file (-c FILE).\n", stderr);
    return 1;
  }
  auto loaded = config::load_file(config_file);
  if (auto* err = std::get_if<config::Error>(&loaded)) {
    std::fprintf(stderr, "%s\n", err->to_string().c_str());
    return 1;
  }
  const config::Config& cfg = std::get<config::Config>(loaded);
  Findings found;
  found.warnings = cfg.warnings;
  check_password_files(cfg, config_file, found);
  check_acl_files(cfg, config_file, found);
  check_listeners(cfg, found);
  check_persistence(cfg, config_file, found);
  for (const std::string& w : found.warnings) {
    const bool labelled = w.starts_with("Error: ") || w.starts_with("Warning: ");  // password file lines
    std::fprintf(stderr, "%s%s\n", labelled ? "" : "Warning: ", w.c_str());
  }
  for (const std::string& e : found.errors) std::fprintf(stderr, "%s\n", e.c_str());
  if (!found.errors.empty()) return 1;
  std::printf("%s: configuration OK.\n", config_file.c_str());
  return 0;
}

}  // namespace midge::server
