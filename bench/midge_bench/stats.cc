#include "midge_bench/stats.h"

#include <bit>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <sys/resource.h>
#include <unistd.h>

namespace midge::bench {

namespace {
void put_u32(uint32_t v, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(v >> (8 * i));
}
uint32_t get_u32(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(in[i])} << (8 * i);
  return v;
}
}  // namespace

void write_header(const PayloadHeader& h, char* out) {
  put_u32(h.publisher, out);
  put_u32(h.seq, out + 4);
  const auto ts = static_cast<uint64_t>(h.sent_ns);
  put_u32(static_cast<uint32_t>(ts), out + 8);
  put_u32(static_cast<uint32_t>(ts >> 32), out + 12);
}

bool read_header(const char* data, size_t size, PayloadHeader& h) {
  if (size < kPayloadHeaderSize) return false;
  h.publisher = get_u32(data);
  h.seq = get_u32(data + 4);
  h.sent_ns = static_cast<int64_t>(uint64_t{get_u32(data + 8)} |
                                   (uint64_t{get_u32(data + 12)} << 32));
  return true;
}

bool SeqTrack::add(uint32_t seq) {
  const size_t word = seq / 64;
  if (word >= seen_.size()) seen_.resize(std::max(word + 1, seen_.size() * 2), 0);
  const uint64_t bit = uint64_t{1} << (seq % 64);
  if (seen_[word] & bit) {
    ++duplicated_;
    return false;
  }
  seen_[word] |= bit;
  ++unique_;
  if (static_cast<int64_t>(seq) < max_seq_) {
    ++out_of_order_;
  } else {
    max_seq_ = seq;
  }
  return true;
}

size_t Histogram::index(uint64_t v) {
  if (v < kSub) return static_cast<size_t>(v);
  const int msb = 63 - std::countl_zero(v);            // >= 6
  const int shift = msb - 5;                            // keep 6 significant bits
  const uint64_t sub = (v >> shift) & (kSub / 2 - 1);  // 5 bits below the msb
  return static_cast<size_t>(kSub + (shift - 1) * (kSub / 2) + static_cast<int>(sub));
}

uint64_t Histogram::value_at(size_t i) {
  if (i < kSub) return i;
  const size_t k = i - kSub;
  const int shift = static_cast<int>(k / (kSub / 2)) + 1;
  const uint64_t sub = k % (kSub / 2);
  // Middle of the bucket.
  return ((uint64_t{kSub / 2} + sub) << shift) + (uint64_t{1} << (shift - 1));
}

void Histogram::add(int64_t ns) {
  const uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
  size_t i = index(v);
  if (i >= buckets_.size()) i = buckets_.size() - 1;
  ++buckets_[i];
  ++count_;
}

int64_t Histogram::percentile(double q) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank && buckets_[i] > 0) return static_cast<int64_t>(value_at(i));
  }
  return static_cast<int64_t>(value_at(buckets_.size() - 1));
}

void Histogram::merge(const Histogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
}

void Report::add(const std::string& key, const std::string& text_value) {
  std::string j = "\"";
  for (char c : text_value) {
    if (c == '"' || c == '\\') j += '\\';
    j += c;
  }
  j += '"';
  fields_.push_back({key, text_value, j});
}

void Report::add(const std::string& key, int64_t value) {
  fields_.push_back({key, std::to_string(value), std::to_string(value)});
}

void Report::add(const std::string& key, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", std::isfinite(value) ? value : 0.0);
  char tbuf[64];
  if (std::fabs(value) >= 1000) {
    std::snprintf(tbuf, sizeof tbuf, "%.0f", value);
  } else {
    std::snprintf(tbuf, sizeof tbuf, "%.3g", value);
  }
  fields_.push_back({key, tbuf, buf});
}

std::string Report::json() const {
  std::string s = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (i) s += ",";
    s += "\"" + fields_[i].key + "\":" + fields_[i].json;
  }
  return s + "}";
}

std::string Report::table() const {
  std::string head;
  std::string row;
  for (const Field& f : fields_) {
    const size_t w = std::max(f.key.size(), f.text.size()) + 1;
    head += std::string(w - f.key.size(), ' ') + f.key;
    row += std::string(w - f.text.size(), ' ') + f.text;
  }
  return head + "\n" + row + "\n";
}

double cpu_seconds(int pid) {
  if (pid == 0) {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  }
  if (pid < 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(f, text)) return -1;
  // Fields after the command name (which may hold spaces) start at ')'.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::strtod(field.c_str(), nullptr);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

int64_t rss_kb(int pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

}  // namespace midge::bench
