#include "tools/json_out.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace midge::tools {
namespace {

using Json = nlohmann::ordered_json;

// Shortest of %.15g / %.17g that reads back as the same double; integral
// values print as integers.
void append_number(double d, std::string& out) {
  char buf[64];
  if (std::isnan(d) || std::isinf(d)) {
    out += "null";
    return;
  }
  if (d == std::trunc(d) && std::fabs(d) < 2147483648.0) {
    std::snprintf(buf, sizeof buf, "%d", static_cast<int>(d));
  } else {
    std::snprintf(buf, sizeof buf, "%1.15g", d);
    if (std::strtod(buf, nullptr) != d) std::snprintf(buf, sizeof buf, "%1.17g", d);
  }
  out += buf;
}

void print_value(const Json& v, bool pretty, int depth, std::string& out);

void print_object(const Json& v, bool pretty, int depth, std::string& out) {
  out += '{';
  if (pretty) out += '\n';
  size_t i = 0;
  for (auto it = v.begin(); it != v.end(); ++it, ++i) {
    if (pretty) out.append(static_cast<size_t>(depth + 1), '\t');
    out += '"';
    append_json_escaped(it.key(), out);
    out += pretty ? "\":\t" : "\":";
    print_value(it.value(), pretty, depth + 1, out);
    if (i + 1 < v.size()) out += ',';
    if (pretty) out += '\n';
  }
  if (pretty) out.append(static_cast<size_t>(depth), '\t');
  out += '}';
}

void print_value(const Json& v, bool pretty, int depth, std::string& out) {
  switch (v.type()) {
    case Json::value_t::object: print_object(v, pretty, depth, out); return;
    case Json::value_t::array: {
      out += '[';
      for (size_t i = 0; i < v.size(); ++i) {
        if (i > 0) out += pretty ? ", " : ",";
        print_value(v[i], pretty, depth + 1, out);
      }
      out += ']';
      return;
    }
    case Json::value_t::string:
      out += '"';
      append_json_escaped(v.get_ref<const std::string&>(), out);
      out += '"';
      return;
    case Json::value_t::boolean: out += v.get<bool>() ? "true" : "false"; return;
    case Json::value_t::null: out += "null"; return;
    default: append_number(v.get<double>(), out); return;
  }
}

}  // namespace

void append_json_escaped(std::string_view s, std::string& out) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
}

void JsonWriter::newline_indent() {
  if (!pretty_) return;
  out_ += '\n';
  out_.append(static_cast<size_t>(depth_), '\t');
}

void JsonWriter::begin_object() {
  out_ += '{';
  ++depth_;
  first_ = true;
}

void JsonWriter::end_object() {
  --depth_;
  newline_indent();
  out_ += '}';
  first_ = false;
}

void JsonWriter::key(std::string_view name) {
  if (!first_) out_ += ',';
  first_ = false;
  newline_indent();
  out_ += '"';
  append_json_escaped(name, out_);
  out_ += pretty_ ? "\":\t" : "\":";
}

void JsonWriter::string_value(std::string_view value) {
  out_ += '"';
  append_json_escaped(value, out_);
  out_ += '"';
}

void JsonWriter::number_value(int64_t value) { out_ += std::to_string(value); }

bool JsonWriter::raw_json_value(std::string_view json) {
  Json parsed = Json::parse(json.begin(), json.end(), nullptr, false);
  if (parsed.is_discarded()) return false;
  print_value(parsed, pretty_, depth_, out_);
  return true;
}

}  // namespace midge::tools
