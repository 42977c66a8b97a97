#include "tools/format.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "tools/json_out.h"

namespace midge::tools {
namespace {

constexpr std::string_view kFormatCodes = "%ACDEFIjJlmpPqRrStUxX";
constexpr std::string_view kEscapes = "\\0aenrtv";

struct Spec {
  bool left = false;  // '-'
  bool zero = false;  // '0'
  int width = -1;
  int precision = -1;
};

// Parses flags, width and precision after '%'; `i` ends on the code letter.
Spec parse_spec(std::string_view f, size_t& i) {
  Spec s;
  for (; i < f.size() && (f[i] == '-' || f[i] == '0'); ++i) {
    if (f[i] == '-') s.left = true;
    else s.zero = true;
  }
  if (s.left) s.zero = false;
  for (; i < f.size() && f[i] >= '0' && f[i] <= '9'; ++i) {
    s.width = (s.width < 0 ? 0 : s.width * 10) + (f[i] - '0');
  }
  if (i < f.size() && f[i] == '.') {
    s.precision = 0;
    for (++i; i < f.size() && f[i] >= '0' && f[i] <= '9'; ++i) {
      s.precision = s.precision * 10 + (f[i] - '0');
    }
  }
  return s;
}

void pad(const Spec& s, std::string_view text, bool numeric, std::string& out) {
  if (s.precision >= 0 && !numeric && text.size() > static_cast<size_t>(s.precision)) {
    text = text.substr(0, static_cast<size_t>(s.precision));
  }
  size_t fill = s.width > 0 && text.size() < static_cast<size_t>(s.width)
                    ? static_cast<size_t>(s.width) - text.size() : 0;
  if (!s.left) out.append(fill, numeric && s.zero ? '0' : ' ');
  out += text;
  if (s.left) out.append(fill, ' ');
}

void pad_number(const Spec& s, uint64_t v, std::string& out) {
  pad(s, std::to_string(v), true, out);
}

template <typename T>
void pad_optional(const Spec& s, const std::optional<T>& v, std::string& out) {
  if (v) pad_number(s, *v, out);
}

void append_hex(std::string_view data, bool upper, std::string& out) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  for (char ch : data) {
    auto c = static_cast<unsigned char>(ch);
    out += digits[c >> 4];
    out += digits[c & 15];
  }
}

void append_strftime(const char* fmt, const timespec& ts, std::string& out) {
  tm local{};
  localtime_r(&ts.tv_sec, &local);
  char buf[256];
  size_t n = std::strftime(buf, sizeof buf, fmt, &local);
  out.append(buf, n);
}

std::string iso_time(const timespec& ts) {
  std::string s;
  append_strftime("%Y-%m-%dT%H:%M:%S%z", ts, s);
  return s;
}

// The identifiers of the properties present, ascending, one per value.
PropertyOrder identifier_order(const protocol::Properties& p) {
  PropertyOrder ids;
  if (p.payload_format_indicator) ids.push_back(0x01);
  if (p.message_expiry_interval) ids.push_back(0x02);
  if (p.content_type) ids.push_back(0x03);
  if (p.response_topic) ids.push_back(0x08);
  if (p.correlation_data) ids.push_back(0x09);
  ids.insert(ids.end(), p.subscription_identifiers.size(), 0x0B);
  if (p.topic_alias) ids.push_back(0x23);
  ids.insert(ids.end(), p.user_properties.size(), 0x26);
  return ids;
}

void append_json_user_properties(JsonWriter& w, const protocol::Properties& p) {
  w.key("user-properties");
  w.begin_object();
  for (const auto& [k, v] : p.user_properties) {
    w.key(k);
    w.string_value(v);
  }
  w.end_object();
}

// One property, by identifier; `sub_ids` counts the subscription identifiers
// printed so far. User properties are printed as one object where the first
// one came, as mosquitto_sub does.
void append_json_property(JsonWriter& w, const protocol::Properties& p, uint8_t id,
                          size_t& sub_ids, bool& user_done) {
  switch (id) {
    case 0x01:
      w.key("payload-format-indicator");
      w.number_value(*p.payload_format_indicator);
      break;
    case 0x02:
      w.key("message-expiry-interval");
      w.number_value(*p.message_expiry_interval);
      break;
    case 0x03:
      w.key("content-type");
      w.string_value(*p.content_type);
      break;
    case 0x08:
      w.key("response-topic");
      w.string_value(*p.response_topic);
      break;
    case 0x09:
      w.key("correlation-data");
      w.string_value(*p.correlation_data);
      break;
    case 0x0B:
      w.key("subscription-identifier");
      w.number_value(p.subscription_identifiers[sub_ids++]);
      break;
    case 0x23:
      w.key("topic-alias");
      w.number_value(*p.topic_alias);
      break;
    case 0x26:
      if (!user_done) append_json_user_properties(w, p);
      user_done = true;
      break;
    default: break;
  }
}

// Properties in `order` (the wire order, as mosquitto_sub prints them), or in
// identifier order when `order` does not list exactly the decoded properties.
void append_json_properties(JsonWriter& w, const protocol::Properties& p,
                            const PropertyOrder& order) {
  PropertyOrder ids = identifier_order(p);
  if (ids.empty()) return;
  PropertyOrder sorted = order;
  std::sort(sorted.begin(), sorted.end());
  if (sorted == ids) ids = order;
  w.key("properties");
  w.begin_object();
  size_t sub_ids = 0;
  bool user_done = false;
  for (uint8_t id : ids) append_json_property(w, p, id, sub_ids, user_done);
  w.end_object();
}

// %j (payload as a JSON string) and %J (payload must itself be JSON).
void append_json(const ClientConfig& c, const protocol::PublishPacket& m, const timespec& ts,
                 const PropertyOrder& order, bool raw_payload, std::string& out) {
  std::string body;
  JsonWriter w(c.pretty, body);
  w.begin_object();
  std::string tst;
  append_strftime("%Y-%m-%dT%H:%M:%S", ts, tst);
  char micro[32];
  std::snprintf(micro, sizeof micro, ".%06ldZ", ts.tv_nsec / 1000);
  tst += micro;
  append_strftime("%z", ts, tst);
  w.key("tst");
  w.string_value(tst);
  w.key("topic");
  w.string_value(m.topic);
  w.key("qos");
  w.number_value(m.qos);
  w.key("retain");
  w.number_value(m.retain ? 1 : 0);
  w.key("payloadlen");
  w.number_value(static_cast<int64_t>(m.payload.size()));
  if (m.qos > 0) {
    w.key("mid");
    w.number_value(m.packet_id);
  }
  append_json_properties(w, m.properties, order);
  w.key("payload");
  if (m.payload.empty()) {
    w.null_value();
  } else if (!raw_payload) {
    w.string_value(m.payload);
  } else if (!w.raw_json_value(m.payload)) {
    print_error(c, "Error: Message payload is not valid JSON on topic " + m.topic + ".");
    return;
  }
  w.end_object();
  out += body;
}

void append_user_properties(const protocol::Properties& p, std::string& out) {
  bool first = true;
  for (const auto& [k, v] : p.user_properties) {
    if (!first) out += ' ';
    first = false;
    out += k;
    out += ':';
    out += v;
  }
}

void append_code(const ClientConfig& c, const protocol::PublishPacket& m, const timespec& ts,
                 const PropertyOrder& order, char code, const Spec& s, std::string& out) {
  const protocol::Properties& p = m.properties;
  switch (code) {
    case '%': out += '%'; break;
    case 'A': pad_optional(s, p.topic_alias, out); break;
    case 'C': if (p.content_type) pad(s, *p.content_type, false, out); break;
    case 'D': if (p.correlation_data) out += *p.correlation_data; break;
    case 'E': pad_optional(s, p.message_expiry_interval, out); break;
    case 'F': pad_optional(s, p.payload_format_indicator, out); break;
    case 'I': pad(s, iso_time(ts), false, out); break;
    case 'j': append_json(c, m, ts, order, false, out); break;
    case 'J': append_json(c, m, ts, order, true, out); break;
    case 'l': pad_number(s, m.payload.size(), out); break;
    case 'm': pad_number(s, m.packet_id, out); break;
    case 'p': out += m.payload; break;
    case 'P': append_user_properties(p, out); break;
    case 'q': out += static_cast<char>('0' + m.qos); break;
    case 'R': if (p.response_topic) pad(s, *p.response_topic, false, out); break;
    case 'r': out += m.retain ? '1' : '0'; break;
    case 'S':
      if (!p.subscription_identifiers.empty()) pad_number(s, p.subscription_identifiers[0], out);
      break;
    case 't': pad(s, m.topic, false, out); break;
    case 'U': {
      char buf[48];
      std::snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(ts.tv_sec),
                    ts.tv_nsec);
      out += buf;
      break;
    }
    case 'x': append_hex(m.payload, false, out); break;
    case 'X': append_hex(m.payload, true, out); break;
    default: break;
  }
}

void append_time_code(char code, const timespec& ts, std::string& out) {
  if (code == '@') {
    out += '@';
  } else if (code == 'N') {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%09ld", ts.tv_nsec);
    out += buf;
  } else {
    char fmt[3] = {'%', code, '\0'};
    append_strftime(fmt, ts, out);
  }
}

void append_escape(char code, std::string& out) {
  switch (code) {
    case '\\': out += '\\'; break;
    case '0': out += '\0'; break;
    case 'a': out += '\a'; break;
    case 'e': out += '\033'; break;
    case 'n': out += '\n'; break;
    case 'r': out += '\r'; break;
    case 't': out += '\t'; break;
    case 'v': out += '\v'; break;
    default: break;
  }
}

void append_formatted(const ClientConfig& c, const protocol::PublishPacket& m,
                      const timespec& ts, const PropertyOrder& order, std::string& out) {
  std::string_view f = *c.format;
  for (size_t i = 0; i < f.size(); ++i) {
    char ch = f[i];
    if (ch == '%' && i + 1 < f.size()) {
      ++i;
      Spec s = parse_spec(f, i);
      if (i < f.size()) append_code(c, m, ts, order, f[i], s, out);
    } else if (ch == '@' && i + 1 < f.size()) {
      append_time_code(f[++i], ts, out);
    } else if (ch == '\\' && i + 1 < f.size()) {
      append_escape(f[++i], out);
    } else {
      out += ch;
    }
  }
}

}  // namespace

bool validate_format(Tool tool, const std::string& format) {
  std::string_view f = format;
  std::string error;
  for (size_t i = 0; i < f.size() && error.empty(); ++i) {
    char ch = f[i];
    if (ch != '%' && ch != '@' && ch != '\\') continue;
    if (i + 1 >= f.size()) {
      error = ch == '\\' ? "Incomplete escape specifier." : "Incomplete format specifier.";
      break;
    }
    ++i;
    if (ch == '%') {
      parse_spec(f, i);
      if (i >= f.size()) {
        error = "Incomplete format specifier.";
      } else if (kFormatCodes.find(f[i]) == std::string_view::npos) {
        error = std::string("Invalid format specifier '") + f[i] + "'.";
      }
    } else if (ch == '\\' && kEscapes.find(f[i]) == std::string_view::npos) {
      error = std::string("Invalid escape specifier '") + f[i] + "'.";
    }
  }
  if (error.empty()) return true;
  std::fprintf(stderr, "Error: %s\n\nUse '%s --help' to see usage.\n", error.c_str(),
               tool_name(tool));
  return false;
}

void format_message(const ClientConfig& config, const protocol::PublishPacket& msg,
                    const timespec& received, const PropertyOrder& order, std::string& out) {
  if (config.format) {
    append_formatted(config, msg, received, order, out);
  } else if (msg.payload.empty()) {
    // mosquitto_sub prints nothing for an empty payload, except "topic (null)"
    // with -v when lines end with a newline.
    if (config.verbose && config.eol) out += msg.topic + " (null)\n";
    return;
  } else if (config.verbose) {
    out += msg.topic;
    out += ' ';
    out += msg.payload;
  } else {
    out += msg.payload;
  }
  if (config.eol) out += '\n';
}

}  // namespace midge::tools
