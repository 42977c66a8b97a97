// Log lines in Mosquitto's shape ("1700000000: message") to the
// destinations of `log_dest`: stderr (default), stdout, file PATH, syslog,
// none. Control characters in a line are written as \xNN. Log files are
// opened without following symbolic links. Thread-safe; logging is off the
// hot path.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

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
  std::string configure(const std::vector<std::string>& dests, bool timestamps, const std::string& time_format = "");
  void log(const std::string& line);
  // Re-opens log files (after rotation, on SIGHUP).
  void reopen();
  // Lines are buffered (one write per batch, not per line, which matters at
  // thousands of connections per second); the server flushes every 100 ms.
  void flush();

 private:
  std::string timestamp() const;
  void flush_locked();

  std::mutex mutex_;
  std::string time_format_;
  bool to_stderr_ = true;
  bool to_stdout_ = false;
  bool to_syslog_ = false;
  bool timestamps_ = true;
  bool stderr_buffered_ = false;
  std::vector<std::pair<std::string, FILE*>> files_;  // guarded by mutex_
};

}  // namespace midge::server
