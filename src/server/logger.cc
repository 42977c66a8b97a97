#include "server/logger.h"

#include <syslog.h>

#include <ctime>

namespace midge::server {

Logger::~Logger() {
  flush();
  for (auto& [path, f] : files_) {
    if (f) std::fclose(f);
  }
}

std::string Logger::configure(const std::vector<std::string>& dests, bool timestamps) {
  std::lock_guard lock(mutex_);
  timestamps_ = timestamps;
  if (dests.empty()) return "";
  to_stderr_ = false;
  for (const std::string& d : dests) {
    if (d == "stderr") {
      to_stderr_ = true;
    } else if (d == "stdout") {
      to_stdout_ = true;
    } else if (d == "syslog") {
      to_syslog_ = true;
      openlog("midge", LOG_PID, LOG_DAEMON);
    } else if (d.rfind("file ", 0) == 0) {
      const std::string path = d.substr(5);
      FILE* f = std::fopen(path.c_str(), "a");
      if (!f) return "cannot open log file " + path;
      std::setvbuf(f, nullptr, _IOFBF, 1 << 16);
      files_.emplace_back(path, f);
    }
    // "none", "topic", "dlt": nothing written here.
  }
  return "";
}

void Logger::log(const std::string& line) {
  std::string text;
  if (timestamps_) text = std::to_string(static_cast<long long>(std::time(nullptr))) + ": ";
  text += line;
  text += '\n';
  std::lock_guard lock(mutex_);
  if (to_stderr_) {
    if (!stderr_buffered_) {
      std::setvbuf(stderr, nullptr, _IOFBF, 1 << 16);
      stderr_buffered_ = true;
    }
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
  if (to_stdout_) std::fwrite(text.data(), 1, text.size(), stdout);
  for (auto& [path, f] : files_) {
    if (f) std::fwrite(text.data(), 1, text.size(), f);
  }
  if (to_syslog_) syslog(LOG_INFO, "%s", line.c_str());
}

void Logger::flush() {
  std::lock_guard lock(mutex_);
  if (to_stderr_) std::fflush(stderr);
  if (to_stdout_) std::fflush(stdout);
  for (auto& [path, f] : files_) {
    if (f) std::fflush(f);
  }
}

void Logger::reopen() {
  std::lock_guard lock(mutex_);
  for (auto& [path, f] : files_) {
    if (f) std::fclose(f);
    f = std::fopen(path.c_str(), "a");
    if (f) std::setvbuf(f, nullptr, _IOFBF, 1 << 16);
  }
}

}  // namespace midge::server
