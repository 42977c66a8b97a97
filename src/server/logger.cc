#include "server/logger.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace midge::server {
namespace {

// O_NOFOLLOW: started as root, Midge must not append through a symbolic link that the owner of the
// log directory planted there (security review M7).
FILE* open_log_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return nullptr;
  FILE* f = ::fdopen(fd, "a");
  if (!f) {
    ::close(fd);
    return nullptr;
  }
  std::setvbuf(f, nullptr, _IOFBF, 1 << 16);
  return f;
}

}  // namespace

// Longest part of a line that is logged (before escaping).
constexpr size_t kMaxLogLine = 1000;

std::string escape_log_line(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (char c : line) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b != 0x7f) {
      out += c;
      continue;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

Logger::~Logger() {
  flush();
  for (auto& [path, f] : files_) {
    if (f) std::fclose(f);
  }
}

std::string Logger::configure(const std::vector<std::string>& dests, bool timestamps, const std::string& time_format) {
  // The new files are opened first: one that cannot be opened leaves the
  // logger as it was (a reload on SIGHUP keeps logging where it did).
  std::vector<std::pair<std::string, FILE*>> files;
  bool to_stderr = dests.empty(), to_stdout = false, to_syslog = false;
  for (const std::string& d : dests) {
    if (d == "stderr") {
      to_stderr = true;
    } else if (d == "stdout") {
      to_stdout = true;
    } else if (d == "syslog") {
      to_syslog = true;
    } else if (d.rfind("file ", 0) == 0) {
      const std::string path = d.substr(5);
      FILE* f = open_log_file(path);
      if (!f) {
        const std::string error = "cannot open log file " + path + ": " + std::strerror(errno);
        for (auto& [p, opened] : files) std::fclose(opened);
        return error;
      }
      files.emplace_back(path, f);
    }
    // "none", "topic", "dlt": nothing written here (the config parser warns about topic and dlt).
  }
  std::lock_guard lock(mutex_);
  flush_locked();
  for (auto& [path, f] : files_) {
    if (f) std::fclose(f);
  }
  files_ = std::move(files);
  if (to_syslog && !to_syslog_) openlog("midge", LOG_PID, LOG_DAEMON);
  if (!to_syslog && to_syslog_) closelog();
  to_stderr_ = to_stderr;
  to_stdout_ = to_stdout;
  to_syslog_ = to_syslog;
  timestamps_ = timestamps;
  time_format_ = time_format;
  return "";
}

std::string Logger::timestamp() const {
  const std::time_t now = std::time(nullptr);
  if (time_format_.empty()) return std::to_string(static_cast<long long>(now)) + ": ";
  std::tm local{};
  localtime_r(&now, &local);
  char buf[128];
  const std::size_t n = std::strftime(buf, sizeof buf, time_format_.c_str(), &local);
  return std::string(buf, n) + ": ";
}

void Logger::log(const std::string& line) {
  // Client ids and user names reach log lines: control characters are escaped so that no client
  // can start a line of its own (security review M7), and a line is cut at kMaxLogLine bytes, as
  // Mosquitto cuts its own, so that a 64 KiB client id does not become 64 KiB of log per event.
  const std::string clean = escape_log_line(std::string_view(line).substr(0, kMaxLogLine));
  std::lock_guard lock(mutex_);  // a reload may change the format and destinations
  std::string text;
  if (timestamps_) text = timestamp();
  text += clean;
  text += '\n';
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
  if (to_syslog_) syslog(LOG_INFO, "%s", clean.c_str());
}

void Logger::flush() {
  std::lock_guard lock(mutex_);
  flush_locked();
}

void Logger::flush_locked() {
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
    f = open_log_file(path);
  }
}

}  // namespace midge::server
