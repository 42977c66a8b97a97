// Writer of the Prometheus text exposition format 0.0.4: metric families
// (HELP and TYPE lines, then their samples), label values escaped, histograms
// with cumulative buckets. Pure; the caller keeps each family's samples
// together and the names valid ([a-zA-Z_:][a-zA-Z0-9_:]*).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace midge::net {

class PrometheusText {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;
  enum class Type { kCounter, kGauge, kHistogram };

  // Starts a family: its HELP and TYPE lines.
  void family(std::string_view name, Type type, std::string_view help);
  // One sample of the current family.
  void sample(std::string_view name, Labels labels, uint64_t value);
  void sample(std::string_view name, Labels labels, int64_t value);
  void sample(std::string_view name, Labels labels, double value);
  // A histogram's samples: NAME_bucket{le=...} (cumulative, +Inf last),
  // NAME_sum and NAME_count (the +Inf bucket). `bounds`: upper bounds in the
  // family's unit; `counts`: per bucket, one more than `bounds`.
  void histogram(std::string_view name, Labels labels, std::span<const double> bounds,
                 std::span<const uint64_t> counts, double sum);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

  // For tests and callers building label values: `"` `\` and newline escaped.
  static std::string escape_label(std::string_view value);
  // A label value in snake case ("Keep Alive timeout" -> "keep_alive_timeout").
  static std::string snake_case(std::string_view text);

 private:
  void begin_sample(std::string_view name, Labels labels, std::string_view extra_name = {},
                    std::string_view extra_value = {});
  void end_sample(std::string_view value);
  std::string out_;
};

}  // namespace midge::net
