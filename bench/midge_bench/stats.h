// Counting what arrived: per (receiver, publisher) sequence tracking for
// lost / duplicated / out-of-order counts, and a log-linear latency
// histogram (about 1.5% resolution) for percentiles.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace midge::bench {

// The fixed header of every benchmark payload (little-endian), followed by
// padding up to the payload size.
struct PayloadHeader {
  uint32_t publisher = 0;
  uint32_t seq = 0;
  int64_t sent_ns = 0;
};
inline constexpr size_t kPayloadHeaderSize = 16;

void write_header(const PayloadHeader& h, char* out);
bool read_header(const char* data, size_t size, PayloadHeader& h);

// Messages one receiver got from one publisher.
class SeqTrack {
 public:
  // Returns false for a duplicate.
  bool add(uint32_t seq);
  uint64_t unique() const { return unique_; }
  uint64_t duplicated() const { return duplicated_; }
  uint64_t out_of_order() const { return out_of_order_; }
  // One past the highest sequence number seen: how far this publisher's
  // stream got, even when some messages before it were lost.
  uint64_t reached() const { return static_cast<uint64_t>(max_seq_ + 1); }

 private:
  std::vector<uint64_t> seen_;
  uint64_t unique_ = 0;
  uint64_t duplicated_ = 0;
  uint64_t out_of_order_ = 0;
  int64_t max_seq_ = -1;
};

class Histogram {
 public:
  void add(int64_t ns);
  uint64_t count() const { return count_; }
  // q in [0, 1]; returns nanoseconds (0 when empty).
  int64_t percentile(double q) const;
  void merge(const Histogram& other);

 private:
  static constexpr int kSub = 64;  // sub-buckets per power of two
  static size_t index(uint64_t v);
  static uint64_t value_at(size_t index);
  std::array<uint64_t, 64 * kSub> buckets_{};
  uint64_t count_ = 0;
};

// One scenario's result: an ordered list of key/value pairs printed as a
// table row and as one JSON line with stable keys.
class Report {
 public:
  void add(const std::string& key, const std::string& text_value);  // JSON string
  void add(const std::string& key, int64_t value);
  void add(const std::string& key, uint64_t value) { add(key, static_cast<int64_t>(value)); }
  void add(const std::string& key, int value) { add(key, static_cast<int64_t>(value)); }
  void add(const std::string& key, double value);
  std::string json() const;
  std::string table() const;

 private:
  struct Field {
    std::string key;
    std::string text;  // as printed in the table
    std::string json;  // as written in JSON
  };
  std::vector<Field> fields_;
};

// CPU seconds (user + system, all threads) used so far by process `pid`
// (0 = this process); -1 when unknown.
double cpu_seconds(int pid);

// VmRSS of a process in kB from /proc/PID/status; -1 when unknown.
int64_t rss_kb(int pid);

// Raises this process's soft limit of open descriptors to the hard one:
// each connection holds one.
void raise_fd_limit();

}  // namespace midge::bench
