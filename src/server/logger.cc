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
// log directory planted there (security review M7). `created`: the file did not exist before.
FILE* open_log_file(const std::string& path, bool& created) {
  constexpr int kFlags = O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
  int fd = ::open(path.c_str(), kFlags | O_EXCL, 0644);
  created = fd >= 0;
  if (fd < 0 && errno == EEXIST) fd = ::open(path.c_str(), kFlags, 0644);
  if (fd < 0) return nullptr;
  FILE* f = ::fdopen(fd, "a");
  if (!f) {
    ::close(fd);
    return nullptr;
  }
  std::setvbuf(f, nullptr, _IOFBF, 1 << 16);
  return f;
}

int syslog_priority(util::LogType type) {
  switch (type) {
    case util::LogType::kError: return LOG_ERR;
    case util::LogType::kWarning: return LOG_WARNING;
    case util::LogType::kNotice: return LOG_NOTICE;
    case util::LogType::kDebug: return LOG_DEBUG;
    default: return LOG_INFO;
  }
}

}  // namespace

// Longest part of a line that is logged (before escaping).
constexpr size_t kMaxLogLine = 1000;

std::string escape_log_line(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (char c : line) {
    const auto b = static_cast<unsigned char>(c);
    if ((b >= 0x20 && b != 0x7f) || b == '\t') {  // a tab breaks no line (Mosquitto's "\tfilter" lines)
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
  for (File& file : files_) {
    if (file.f) std::fclose(file.f);
  }
}

std::string Logger::configure(const std::vector<std::string>& dests, bool timestamps, const std::string& time_format,
                              std::optional<uint32_t> local_facility) {
  // The new files are opened first: one that cannot be opened leaves the
  // logger as it was (a reload on SIGHUP keeps logging where it did).
  std::vector<File> files;
  bool to_stderr = dests.empty(), to_stdout = false, to_syslog = false, to_topic = false;
  for (const std::string& d : dests) {
    if (d == "stderr") {
      to_stderr = true;
    } else if (d == "stdout") {
      to_stdout = true;
    } else if (d == "syslog") {
      to_syslog = true;
    } else if (d == "topic") {
      to_topic = true;
    } else if (d.rfind("file ", 0) == 0) {
      const std::string path = d.substr(5);
      bool created = false;
      FILE* f = open_log_file(path, created);
      if (!f) {
        const std::string error = "cannot open log file " + path + ": " + std::strerror(errno);
        for (File& opened : files) std::fclose(opened.f);
        return error;
      }
      files.push_back({path, f, created});
    }
    // "none", "dlt": nothing written here (the config parser warns about dlt).
  }
  std::lock_guard lock(mutex_);
  flush_locked();
  for (File& file : files_) {
    if (file.f) std::fclose(file.f);
  }
  files_ = std::move(files);
  to_topic_ = to_topic;
  static constexpr int kLocal[] = {LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
                                   LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};
  const int facility = local_facility && *local_facility < 8 ? kLocal[*local_facility] : LOG_DAEMON;
  if (to_syslog && (!to_syslog_ || facility != facility_)) openlog("midge", LOG_PID, facility);
  if (!to_syslog && to_syslog_) closelog();
  facility_ = to_syslog ? facility : -1;
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

void Logger::set_types(uint32_t types) { types_.store(types, std::memory_order_relaxed); }

void Logger::set_topic_sink(TopicSink sink) {
  std::lock_guard lock(mutex_);
  topic_sink_ = std::move(sink);
}

bool Logger::to_topic() const {
  std::lock_guard lock(mutex_);
  return to_topic_;
}

void Logger::log(util::LogType type, const std::string& line) {
  if (!wants(type)) return;
  // Client ids and user names reach log lines: control characters are escaped so that no client
  // can start a line of its own (security review M7), and a line is cut at kMaxLogLine bytes, as
  // Mosquitto cuts its own, so that a 64 KiB client id does not become 64 KiB of log per event.
  const std::string clean = escape_log_line(std::string_view(line).substr(0, kMaxLogLine));
  std::lock_guard lock(mutex_);  // a reload may change the format and destinations
  std::string text;
  if (timestamps_) text = timestamp();
  text += clean;
  if (to_topic_ && topic_sink_ && type != util::LogType::kDebug) topic_sink_(type, text);
  text += '\n';
  if (to_stderr_) {
    if (!stderr_buffered_) {
      std::setvbuf(stderr, nullptr, _IOFBF, 1 << 16);
      stderr_buffered_ = true;
    }
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
  if (to_stdout_) std::fwrite(text.data(), 1, text.size(), stdout);
  for (File& file : files_) {
    if (file.f) std::fwrite(text.data(), 1, text.size(), file.f);
  }
  if (to_syslog_) syslog(syslog_priority(type), "%s", clean.c_str());
}

void Logger::flush() {
  std::lock_guard lock(mutex_);
  flush_locked();
}

void Logger::flush_locked() {
  if (to_stderr_) std::fflush(stderr);
  if (to_stdout_) std::fflush(stdout);
  for (File& file : files_) {
    if (file.f) std::fflush(file.f);
  }
}

void Logger::reopen() {
  std::vector<std::string> failed;
  {
    std::lock_guard lock(mutex_);
    flush_locked();
    for (File& file : files_) {
      bool created = false;
      FILE* f = open_log_file(file.path, created);
      if (!f) {
        failed.push_back(file.path + ": " + std::strerror(errno));
        continue;
      }
      if (file.f) std::fclose(file.f);
      file.f = f;
      file.created = created;
    }
  }
  for (const std::string& why : failed) log("Error: cannot reopen log file " + why + "; writing to the previous one.");
}

void Logger::hand_over(uid_t uid, gid_t gid) {
  std::lock_guard lock(mutex_);
  for (File& file : files_) {
    if (file.f && file.created && ::fchown(::fileno(file.f), uid, gid) != 0) file.created = false;
  }
}

}  // namespace midge::server
