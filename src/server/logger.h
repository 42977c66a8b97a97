// Log lines in Mosquitto's shape ("1700000000: message") to the
// destinations of `log_dest`: stderr (default), stdout, file PATH, syslog,
// topic ($SYS/broker/log/..., through a sink the server sets), none; only
// the types of `log_type`. Control characters in a line are written as
// \xNN. Log files are opened without following symbolic links. Thread-safe;
// logging is off the hot path.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/log_type.h"

namespace midge::server {

// `line` with bytes below 0x20 and 0x7f written as \xNN, so that one log call is one line.
std::string escape_log_line(std::string_view line);

class Logger {
 public:
  Logger() = default;
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // Returns an error message, or "" on success. `time_format`: strftime() format of the timestamp
  // (log_timestamp_format, local time); empty = seconds since the epoch. Replaces the previous
  // destinations (a reload); on error nothing changes.
  // `local_facility`: syslog's localN (log_facility); unset = the daemon facility.
  std::string configure(const std::vector<std::string>& dests, bool timestamps, const std::string& time_format = "",
                        std::optional<uint32_t> local_facility = std::nullopt);
  // The types written (bits of util::LogType); Mosquitto's default set until called.
  void set_types(uint32_t types);
  bool wants(util::LogType type) const { return (types_.load(std::memory_order_relaxed) & util::log_bit(type)) != 0; }
  // `log_dest topic`: each line but debug ones goes to `sink` too (the server publishes it on
  // $SYS/broker/log/...). An empty function stops it.
  using TopicSink = std::function<void(util::LogType, const std::string&)>;
  void set_topic_sink(TopicSink sink);
  bool to_topic() const;
  void log(util::LogType type, const std::string& line);
  // A line typed by its prefix ("Error: ", "Warning: "; otherwise information).
  void log(const std::string& line) { log(util::log_type_of_line(line), line); }
  // Re-opens log files (after rotation, on SIGHUP). A file that cannot be opened again keeps the
  // previous one, and the error is logged.
  void reopen();
  // Started as root, before dropping to `uid`/`gid`: the log files this process created become
  // theirs, so that a reopen on SIGHUP (logrotate) still works. Files it did not create keep
  // their owner.
  void hand_over(uid_t uid, gid_t gid);
  // Lines are buffered (one write per batch, not per line, which matters at
  // thousands of connections per second); the server flushes every 100 ms.
  void flush();

 private:
  std::string timestamp() const;
  void flush_locked();

  mutable std::mutex mutex_;
  std::string time_format_;
  std::atomic<uint32_t> types_{util::kDefaultLogTypes};
  TopicSink topic_sink_;  // guarded by mutex_
  bool to_topic_ = false;
  bool to_stderr_ = true;
  bool to_stdout_ = false;
  bool to_syslog_ = false;
  int facility_ = -1;  // of the open syslog connection
  bool timestamps_ = true;
  bool stderr_buffered_ = false;
  struct File {
    std::string path;
    FILE* f = nullptr;
    bool created = false;  // by this process (open_log_file)
  };
  std::vector<File> files_;  // guarded by mutex_
};

}  // namespace midge::server
