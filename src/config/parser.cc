// Line reader for the mosquitto.conf dialect: splits lines, converts values as the option table
// says, follows include_dir, then resolves mosquitto's default listener and checks listeners.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <utility>

#include "config/option_table.h"
#include "config/parse_state.h"

namespace midge::config {
namespace {

namespace fs = std::filesystem;
using detail::ParseState;

std::string_view trim(std::string_view s) {
  std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  std::size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Splits "word rest..." at the first blank; `rest` is trimmed.
std::string_view split_word(std::string_view s, std::string_view* rest) {
  std::size_t end = s.find_first_of(" \t");
  if (end == std::string_view::npos) {
    *rest = {};
    return s;
  }
  *rest = trim(s.substr(end));
  return s.substr(0, end);
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string choices_text(std::string_view choices) {
  std::string out(choices);
  std::string result;
  for (char c : out) result += c == '|' ? std::string(", ") : std::string(1, c);
  return result;
}

std::optional<std::string> to_bool(std::string_view word, Value* out) {
  // mosquitto 2.0.11 also takes 1 and 0 (but not "TRUE" or "yes").
  if (word == "true" || word == "1") *out = true;
  else if (word == "false" || word == "0") *out = false;
  else return "invalid value " + quoted(word) + " (expected true or false)";
  return std::nullopt;
}

std::optional<std::string> to_number(const Option& o, std::string_view word, Value* out) {
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), n);
  std::string range = std::to_string(o.min) + ".." + std::to_string(o.max);
  if (ec == std::errc::result_out_of_range) return "value " + std::string(word) + " out of range (" + range + ")";
  if (ec != std::errc{} || ptr != word.data() + word.size()) {
    return "invalid value " + quoted(word) + " (expected an integer in " + range + ")";
  }
  if (n < o.min || n > o.max) return "value " + std::string(word) + " out of range (" + range + ")";
  *out = n;
  return std::nullopt;
}

// persistent_client_expiration: a positive count followed by h, d, w, m (30 days) or y (365 days).
std::optional<std::string> to_duration(std::string_view word, Value* out) {
  const std::string bad = "invalid duration " + quoted(word) + " (expected a number followed by h, d, w, m or y)";
  if (word.size() < 2) return bad;
  int64_t unit = 0;
  switch (word.back()) {
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    case 'm': unit = 30 * 86400; break;
    case 'y': unit = 365 * 86400; break;
    default: return bad;
  }
  std::string_view digits = word.substr(0, word.size() - 1);
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ptr != digits.data() + digits.size() || n < 0 || (ec != std::errc{} && ec != std::errc::result_out_of_range)) return bad;
  if (ec == std::errc{} && n == 0) return bad;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  *out = ec != std::errc{} || n > kMax / unit ? kMax : n * unit;  // cut to the row's maximum by convert()
  return std::nullopt;
}

// A duration longer than the row allows is cut to the maximum with a warning (mosquitto accepts any
// length; Midge keeps expiry times in 64-bit nanoseconds, security review L6).
std::optional<std::string> to_bounded_duration(const Option& o, std::string_view word, ParseState& st, Value* out) {
  if (auto e = to_duration(word, out)) return e;
  if (std::get<int64_t>(*out) > o.max) {
    *out = o.max;
    st.warn("option " + quoted(o.name) + ": " + quoted(word) + " is longer than Midge's maximum of " +
            std::to_string(o.max / (365 * 86400)) + " years, which is used instead");
  }
  return std::nullopt;
}

bool is_single_word(Kind k) {
  return k == Kind::kBool || k == Kind::kUint || k == Kind::kInt || k == Kind::kEnum || k == Kind::kDuration;
}

// Turns the text after the option name into a Value, as the row's kind says.
std::optional<std::string> convert(const Option& o, std::string_view rest, ParseState& st, Value* out) {
  if (!is_single_word(o.kind)) {
    *out = std::string(rest);
    return std::nullopt;
  }
  std::string_view extra;
  std::string_view word = split_word(rest, &extra);
  // mosquitto reads one word and ignores the rest; we keep that but say so (a "# comment" is silent).
  if (!extra.empty() && extra.front() != '#') {
    st.warn("extra argument " + quoted(extra) + " for option " + quoted(o.name) + " ignored");
  }
  switch (o.kind) {
    case Kind::kBool: return to_bool(word, out);
    case Kind::kDuration: return to_bounded_duration(o, word, st, out);
    case Kind::kEnum:
      if (!o.choices.empty()) {
        std::string_view c = o.choices;
        bool found = false;
        while (!found) {
          std::size_t bar = c.find('|');
          found = c.substr(0, bar) == word;
          if (bar == std::string_view::npos) break;
          c.remove_prefix(bar + 1);
        }
        if (!found) return "invalid value " + quoted(word) + " (expected one of " + choices_text(o.choices) + ")";
      }
      *out = std::string(word);
      return std::nullopt;
    default: return to_number(o, word, out);
  }
}

// Listener-scoped options before any `listener` line go to mosquitto's default listener.
std::optional<std::string> apply_scope(const Option& o, ParseState& st) {
  if (o.scope == Scope::kSecurity) st.security_seen = true;
  if (o.scope != Scope::kListener || o.kind == Kind::kListener || st.current) return std::nullopt;
  if (o.flags & kNeedsListener) return "a 'listener' line must come before this option";
  if (o.flags & kMakesDefault) st.use_default();
  return std::nullopt;
}

// An option Midge does not apply: a warning, or an error when ignoring it would weaken security.
std::optional<std::string> check_applied(ParseState& st, const Option& o, std::string_view name, std::string_view rest) {
  std::string_view unused;
  std::optional<std::string> message = not_applied_message(o, name, split_word(rest, &unused));
  if (!message || o.applied == Applied::kRefuse) return message;
  st.warn(*message);
  return std::nullopt;
}

std::optional<Error> parse_line(ParseState& st, std::string_view text) {
  auto fail = [&](const std::string& msg) { return Error{st.file, st.line, msg}; };
  std::string_view rest;
  std::string_view name = split_word(text, &rest);
  const Option* o = find_option(name);
  if (!o) return fail("unknown option " + quoted(name));
  if (auto e = apply_scope(*o, st)) return fail("option " + quoted(name) + ": " + *e);
  if (o->kind == Kind::kUnsupported) {
    if (auto e = check_applied(st, *o, name, rest)) return fail(*e);
    return std::nullopt;
  }
  if (rest.empty()) return fail("option " + quoted(name) + " needs a value");
  Value value;
  if (auto e = convert(*o, rest, st, &value)) return fail("option " + quoted(name) + ": " + *e);
  if (auto e = check_applied(st, *o, name, rest)) return fail(*e);
  if (auto e = o->set(st, value)) {
    if (st.nested) {
      Error nested = std::move(*st.nested);
      st.nested.reset();
      return nested;
    }
    return fail("option " + quoted(name) + ": " + *e);
  }
  if (o->kind == Kind::kPath) st.config.paths.push_back({std::string(name), std::get<std::string>(value), st.file, st.line});
  return std::nullopt;
}

std::optional<Error> parse_text(ParseState& st, std::string_view text, const std::string& name) {
  std::string saved_file = std::exchange(st.file, name);
  int saved_line = std::exchange(st.line, 0);
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++st.line;
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    if (auto e = parse_line(st, line)) return e;
  }
  st.file = std::move(saved_file);
  st.line = saved_line;
  return std::nullopt;
}

std::optional<std::string> read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "unable to open config file: " + std::string(std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return std::nullopt;
}

std::string canonical(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

std::optional<Error> parse_file(ParseState& st, const std::string& path) {
  std::string key = canonical(path);
  if (std::find(st.open_files.begin(), st.open_files.end(), key) != st.open_files.end()) {
    return Error{st.file, st.line, "config file '" + path + "' is already being parsed (include loop)"};
  }
  std::string text;
  if (auto e = read_file(path, &text)) return Error{path, 0, *e};
  st.open_files.push_back(key);
  auto err = parse_text(st, text, path);
  st.open_files.pop_back();
  return err;
}

// mosquitto's include_dir order: alphabetical ignoring case, and for the same letter the upper
// case first (00.conf 01.conf A.conf a.conf B.conf b.conf).
bool include_order(const std::string& a, const std::string& b) {
  std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    auto ca = static_cast<unsigned char>(a[i]);
    auto cb = static_cast<unsigned char>(b[i]);
    int la = std::tolower(ca), lb = std::tolower(cb);
    if (la != lb) return la < lb;
    if (ca != cb) return ca < cb;
  }
  return a.size() < b.size();
}

void check_duplicates(const Config& c, std::optional<Error>* out) {
  for (std::size_t j = 0; j < c.listeners.size() && !*out; ++j) {
    for (std::size_t i = 0; i < j; ++i) {
      const Listener& a = c.listeners[i];
      const Listener& b = c.listeners[j];
      if (a.port != b.port || a.address != b.address) continue;
      std::string where = a.port == 0 ? "unix socket " + a.address
                                      : "port " + std::to_string(a.port) +
                                            (a.address.empty() ? " (all interfaces)" : " address " + a.address);
      *out = Error{b.file, b.line,
                   "listener on " + where + " is already declared at " + a.file + ":" + std::to_string(a.line)};
      return;
    }
  }
}

std::string where(const Listener& l) { return l.file + ":" + std::to_string(l.line); }

template <class T>
void hoist(T& global, const std::optional<T>& v) {
  if (v) global = *v;
}

// per_listener_settings: allow_anonymous and password_file apply per listener; the other security
// settings Midge has once. A configuration whose listeners all have the same ones is accepted (they
// become the global ones); any other is refused, so that a setting meant for one listener never
// applies to another (review L11).
template <class G, class L>
std::optional<Error> same_on_every_listener(Config& c, L Listener::*field, const char* name, G Config::*global) {
  const Listener& first = c.listeners.front();
  for (const Listener& l : c.listeners) {
    if (l.*field == first.*field) continue;
    return Error{l.file, l.line,
                 "per_listener_settings: this listener's " + std::string(name) + " differs from the listener's at " +
                     where(first) + "; Midge applies one set of security settings to every listener " +
                     "(per-listener security is not implemented yet)"};
  }
  hoist(c.*global, first.*field);
  return std::nullopt;
}

std::optional<Error> check_per_listener_security(Config& c) {
  if (!c.per_listener_settings || c.listeners.empty()) return std::nullopt;
  // allow_anonymous and password_file are applied per listener (server.cc, listener_access).
  if (auto e = same_on_every_listener(c, &Listener::allow_zero_length_clientid, "allow_zero_length_clientid",
                                      &Config::allow_zero_length_clientid)) {
    return e;
  }
  return same_on_every_listener(c, &Listener::auto_id_prefix, "auto_id_prefix", &Config::auto_id_prefix);
}

// Listener options Midge applies to the whole broker: the lowest value wins, with a warning at
// every listener that asked for more.
template <class T>
void lowest_on_every_listener(Config& c, T Listener::*field, const char* name, T Config::*global) {
  if (c.listeners.empty()) return;  // local-only mode: the value given before any listener
  T low = c.listeners.front().*field;
  for (const Listener& l : c.listeners) low = std::min(low, l.*field);
  c.*global = low;
  for (const Listener& l : c.listeners) {
    if (l.*field == low) continue;
    c.warnings.push_back(where(l) + ": option '" + name + "' " + std::to_string(l.*field) +
                         " is not applied: Midge applies the lowest " + name + " of all listeners, " +
                         std::to_string(low) + ", to every listener");
  }
}

bool any_tls_option(const Listener& l) {
  return !l.certfile.empty() || !l.keyfile.empty() || !l.psk_hint.empty() || !l.cafile.empty() ||
         !l.capath.empty() || !l.crlfile.empty() || !l.ciphers.empty() || !l.ciphers_tls13.empty() ||
         !l.dhparamfile.empty() || !l.tls_version.empty() || l.require_certificate || l.use_identity_as_username ||
         l.use_subject_as_username;
}

// TLS options that make no working TLS listener stop the start: a client
// configured for TLS must never meet a plaintext listener. (The files
// themselves are read when the listener opens.)
std::optional<Error> check_tls(const Config& c) {
  for (const Listener& l : c.listeners) {
    if (!any_tls_option(l)) continue;
    const char* problem = nullptr;
    if (l.certfile.empty() != l.keyfile.empty()) {
      problem = "certfile and keyfile must be given together";
    } else if (l.certfile.empty() && l.psk_hint.empty()) {
      problem = "TLS options need certfile and keyfile (or psk_hint); without them this listener would accept "
                "plaintext connections";
    } else if (l.require_certificate && l.cafile.empty() && l.capath.empty()) {
      problem = "require_certificate needs cafile or capath to verify client certificates";
    } else if (l.use_identity_as_username && l.use_subject_as_username) {
      problem = "use_identity_as_username and use_subject_as_username cannot both be true";
    }
    if (problem) return Error{l.file, l.line, std::string("listener ") + std::to_string(l.port) + ": " + problem};
  }
  return std::nullopt;
}

std::optional<Error> finish(ParseState& st) {
  Config& c = st.config;
  const Listener& d = st.default_listener;
  if (st.default_used) {
    c.listeners.push_back(d);  // mosquitto opens the default listener after the others
  } else if (c.per_listener_settings && c.listeners.empty()) {
    // Local-only mode has no listener to hold per-listener security: keep it at config level.
    if (d.allow_anonymous) c.allow_anonymous = d.allow_anonymous;
    if (!d.password_file.empty()) c.password_file = d.password_file;
    if (!d.acl_file.empty()) c.acl_file = d.acl_file;
    if (d.allow_zero_length_clientid) c.allow_zero_length_clientid = *d.allow_zero_length_clientid;
    if (d.auto_id_prefix) c.auto_id_prefix = *d.auto_id_prefix;
  } else if (c.per_listener_settings && !st.default_security_at.empty()) {
    // They belong to the default listener, which is not opened: Midge fails closed, and says so.
    c.warnings.push_back(st.default_security_at +
                         ": security options before the first 'listener' line apply to no listener "
                         "(per_listener_settings is true and the default listener is not opened)");
  }
  c.local_only = c.listeners.empty();
  std::optional<Error> err;
  check_duplicates(c, &err);
  if (!err) err = check_per_listener_security(c);
  if (!err) err = check_tls(c);
  lowest_on_every_listener(c, &Listener::max_topic_alias, "max_topic_alias", &Config::max_topic_alias);
  return err;
}

std::variant<Config, Error> result(ParseState& st, std::optional<Error> err) {
  if (!err) err = finish(st);
  if (err) return *err;
  return std::move(st.config);
}

}  // namespace

namespace detail {

std::optional<Error> include_dir(ParseState& st, const std::string& dir) {
  auto fail = [&](const std::string& msg) { return Error{st.file, st.line, "option 'include_dir': " + msg}; };
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return fail("unable to open directory '" + dir + "': " + ec.message());
  std::string key = canonical(dir);
  if (std::find(st.open_dirs.begin(), st.open_dirs.end(), key) != st.open_dirs.end()) {
    return fail("directory '" + dir + "' is already being included (include loop)");
  }
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : it) {
    std::string name = entry.path().filename().string();
    if (name.size() > 5 && name.ends_with(".conf") && entry.is_regular_file(ec)) names.push_back(name);
  }
  std::sort(names.begin(), names.end(), include_order);
  const std::string from = st.file + ":" + std::to_string(st.line);
  st.open_dirs.push_back(key);
  std::optional<Error> err;
  for (const std::string& name : names) {
    err = parse_file(st, (fs::path(dir) / name).string());
    if (err) break;
  }
  st.open_dirs.pop_back();
  if (err) err->message += " (included from " + from + ")";
  return err;
}

}  // namespace detail

std::string Config::where(std::string_view option, std::string_view value) const {
  for (const PathLine& p : paths) {
    if (p.option == option && p.value == value) return p.file + ":" + std::to_string(p.line);
  }
  return {};
}

std::string Error::to_string() const {
  if (line > 0) return file + ":" + std::to_string(line) + ": " + message;
  return file + ": " + message;
}

std::variant<Config, Error> load_file(const std::string& path) {
  ParseState st;
  return result(st, parse_file(st, path));
}

std::variant<Config, Error> parse_string(std::string_view text, const std::string& name) {
  ParseState st;
  st.open_files.push_back(canonical(name));
  return result(st, parse_text(st, text, name));
}

void apply_port_override(Config& config, uint16_t port) {
  if (!config.local_only) return;  // mosquitto 2.0 ignores -p when a listener is configured
  config.listeners.clear();
  for (auto [address, domain] : {std::pair{"127.0.0.1", "ipv4"}, std::pair{"::1", "ipv6"}}) {
    Listener l;
    l.port = port;
    l.address = address;
    l.socket_domain = domain;
    l.file = "<command line -p>";
    config.listeners.push_back(std::move(l));
  }
}

}  // namespace midge::config
