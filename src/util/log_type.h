// The message types of `log_type` (Mosquitto's), as bits of a mask: the
// logger writes a line only when its type is in the configured mask.
#pragma once

#include <cstdint>
#include <string_view>

namespace midge::util {

enum class LogType : uint8_t {
  kError = 1 << 0,
  kWarning = 1 << 1,
  kNotice = 1 << 2,
  kInformation = 1 << 3,
  kSubscribe = 1 << 4,
  kUnsubscribe = 1 << 5,
  kWebsockets = 1 << 6,
  kDebug = 1 << 7,
};

constexpr uint32_t log_bit(LogType t) { return static_cast<uint32_t>(t); }

// Mosquitto's default: error, warning, notice and information.
constexpr uint32_t kDefaultLogTypes = log_bit(LogType::kError) | log_bit(LogType::kWarning) |
                                      log_bit(LogType::kNotice) | log_bit(LogType::kInformation);
constexpr uint32_t kAllLogTypes = 0xff;

// The bits of one `log_type` word ("all" = every type, "none" = 0); 0 for an unknown word too.
constexpr uint32_t log_types_of(std::string_view word) {
  if (word == "error") return log_bit(LogType::kError);
  if (word == "warning") return log_bit(LogType::kWarning);
  if (word == "notice") return log_bit(LogType::kNotice);
  if (word == "information") return log_bit(LogType::kInformation);
  if (word == "subscribe") return log_bit(LogType::kSubscribe);
  if (word == "unsubscribe") return log_bit(LogType::kUnsubscribe);
  if (word == "websockets") return log_bit(LogType::kWebsockets);
  if (word == "debug") return log_bit(LogType::kDebug);
  if (word == "all") return kAllLogTypes;
  return 0;
}

// A line whose type the caller did not give: "Error: ..." and "Warning: ..." by their prefix,
// anything else is information.
constexpr LogType log_type_of_line(std::string_view line) {
  if (line.starts_with("Error")) return LogType::kError;
  if (line.starts_with("Warning")) return LogType::kWarning;
  return LogType::kInformation;
}

}  // namespace midge::util
