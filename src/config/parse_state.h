// Internal to midge_config: the state threaded through one parse (main file + includes).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace midge::config::detail {

struct ParseState {
  Config config;
  // Mosquitto's implicit default listener: `port`, `bind_address` and listener options given
  // before any `listener` line land here; it is only opened when one of them marks it used.
  Listener default_listener;
  bool default_used = false;
  std::optional<std::size_t> current;  // index in config.listeners of the latest `listener`
  bool security_seen = false;          // per_listener_settings must precede security options
  std::string default_security_at;     // "file:line" of the first per-listener security option
                                       // given before any `listener` line
  std::string file;                    // position of the line being parsed
  int line = 0;
  std::vector<std::string> open_files;  // canonical paths being parsed, for include loops
  std::vector<std::string> open_dirs;
  std::optional<Error> nested;  // a complete error from an included file, reported as is

  Listener& listener() { return current ? config.listeners[*current] : default_listener; }
  // Marks the default listener as opened; it is "declared" at its first use.
  void use_default() {
    if (!default_used) {
      default_listener.file = file;
      default_listener.line = line;
    }
    default_used = true;
  }
  void warn(const std::string& message) {
    config.warnings.push_back(file + ":" + std::to_string(line) + ": " + message);
  }
};

// Parses every "*.conf" file in `dir` (mosquitto's order) into `state`; an error inside an
// included file names that file. Defined in parser.cc.
std::optional<Error> include_dir(ParseState& state, const std::string& dir);

}  // namespace midge::config::detail
