#include "net/prometheus.h"

#include <charconv>
#include <cmath>

namespace midge::net {
namespace {

std::string format_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest exact form
  return std::string(buf, r.ptr);
}

// HELP text: backslash and newline escaped (the format's rule for HELP).
void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

}  // namespace

std::string PrometheusText::escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string PrometheusText::snake_case(std::string_view text) {
  std::string out;
  for (char c : text) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum) {
      out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

void PrometheusText::family(std::string_view name, Type type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_help(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += type == Type::kCounter ? " counter\n" : type == Type::kGauge ? " gauge\n" : " histogram\n";
}

void PrometheusText::begin_sample(std::string_view name, Labels labels, std::string_view extra_name,
                                  std::string_view extra_value) {
  out_ += name;
  if (labels.size() == 0 && extra_name.empty()) return;
  char sep = '{';
  auto label = [&](std::string_view n, std::string_view v) {
    out_ += sep;
    out_ += n;
    out_ += "=\"";
    out_ += escape_label(v);
    out_ += '"';
    sep = ',';
  };
  for (const auto& [n, v] : labels) label(n, v);
  if (!extra_name.empty()) label(extra_name, extra_value);
  out_ += '}';
}

void PrometheusText::end_sample(std::string_view value) {
  out_ += ' ';
  out_ += value;
  out_ += '\n';
}

void PrometheusText::sample(std::string_view name, Labels labels, uint64_t value) {
  begin_sample(name, labels);
  end_sample(std::to_string(value));
}

void PrometheusText::sample(std::string_view name, Labels labels, int64_t value) {
  begin_sample(name, labels);
  end_sample(std::to_string(value));
}

void PrometheusText::sample(std::string_view name, Labels labels, double value) {
  begin_sample(name, labels);
  end_sample(format_double(value));
}

void PrometheusText::histogram(std::string_view name, Labels labels, std::span<const double> bounds,
                               std::span<const uint64_t> counts, double sum) {
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t total = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    total += counts[i];
    begin_sample(bucket, labels, "le", i < bounds.size() ? format_double(bounds[i]) : "+Inf");
    end_sample(std::to_string(total));
  }
  begin_sample(std::string(name) + "_sum", labels);
  end_sample(format_double(sum));
  begin_sample(std::string(name) + "_count", labels);
  end_sample(std::to_string(total));
}

}  // namespace midge::net
