// The one declaration of every mosquitto.conf option Midge knows (Redis static_configs[] style).
// Parsing and validation read this table, and describe_options() (describe.cc) renders it. On
// SIGHUP the server parses the file again and compares the two (server/reload.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "config/config.h"

namespace midge::config {

namespace detail {
struct ParseState;
}

enum class Kind : uint8_t {
  kBool,         // true/false (mosquitto also takes 1/0)
  kUint,         // integer within [min, max]
  kInt,          // signed integer within [min, max]
  kString,       // rest of the line
  kPath,         // rest of the line, a file or directory
  kEnum,         // one word out of `choices`
  kDuration,     // N followed by h d w m y
  kListener,     // `listener PORT [ADDRESS]`: starts a listener block
  kSpecial,      // raw rest of line handed to the setter
  kUnsupported,  // recognised mosquitto option Midge does not store (see Applied)
};

// Whether Midge does what the option asks. Every row says so; `--help-config` and the README
// list are generated from it (tests/unit/config checks the README).
enum class Applied : uint8_t {
  kYes,     // stored and acted upon
  kWarn,    // accepted; a start-up warning names file, line and option
  kRefuse,  // ignoring it would weaken security: the broker refuses to start
};

enum class Scope : uint8_t {
  kGlobal,
  kListener,  // most recent `listener`, else mosquitto's default listener
  kSecurity,  // global, or per listener when per_listener_settings is true
  kBridge,    // belongs to a `connection` block (unsupported for now)
};

enum Flag : uint8_t {
  kNoFlags = 0,
  kReloadable = 1 << 0,      // mosquitto re-reads it on SIGHUP
  kMakesDefault = 1 << 1,    // before any `listener`, using it creates the default listener
  kNeedsListener = 1 << 2,   // error before any `listener` line (mosquitto: mount_point)
  kMidgeExtension = 1 << 3,  // not a mosquitto option
};

// A converted value: bool for kBool, int64_t for numbers and durations, string otherwise.
using Value = std::variant<bool, int64_t, std::string>;
// Stores a value; returns an error message (without file:line) on failure.
using Setter = std::optional<std::string> (*)(detail::ParseState&, const Value&);
// Renders the current value of the option for a config and a listener (used for defaults).
using Shower = std::string (*)(const Config&, const Listener&);

struct Option {
  std::string_view name;  // a trailing '*' matches any suffix (auth_opt_*)
  Kind kind;
  Scope scope;
  uint8_t flags;
  int64_t min;
  int64_t max;
  std::string_view choices;  // kEnum: words separated by '|'
  std::string_view help;
  Setter set;    // nullptr for kUnsupported
  Shower show;   // nullptr when there is no stored default
  Applied applied = Applied::kYes;
  std::string_view why;    // kWarn/kRefuse: what the user loses, e.g. "retained messages are not saved"
  std::string_view inert;  // kWarn/kRefuse: the value that asks for what Midge does anyway ("false")
};

std::span<const Option> option_table();
// Exact name first, then wildcard rows; nullptr when unknown.
const Option* find_option(std::string_view name);

// The message for a line `name value...` using an option Midge does not apply (kWarn or kRefuse),
// or nullopt when it is applied or `value` (the first word given) is its inert value. `name` is the
// name as written (it differs from o.name for wildcard rows).
std::optional<std::string> not_applied_message(const Option& o, std::string_view name, std::string_view value);

}  // namespace midge::config
