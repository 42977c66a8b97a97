#include "protocol/topic.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "protocol/wire.h"

namespace midge::protocol {
namespace {

constexpr size_t kMaxStringLength = 65535;
constexpr std::string_view kSharePrefix = "$share/";

// Validates one multi-byte UTF-8 sequence starting at s[i] (s[i] >= 0x80)
// and returns its length, or 0 when ill-formed (RFC 3629 table 3-7: no
// overlong forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF).
size_t utf8_sequence_length(const unsigned char* s, size_t left) {
  const unsigned char b0 = s[0];
  auto cont = [&](size_t k) { return k < left && (s[k] & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3 || !cont(1) || !cont(2)) return 0;
    if (b0 == 0xE0 && s[1] < 0xA0) return 0;   // overlong
    if (b0 == 0xED && s[1] >= 0xA0) return 0;  // surrogate [MQTT-1.5.4-1]
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4 || !cont(1) || !cont(2) || !cont(3)) return 0;
    if (b0 == 0xF0 && s[1] < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && s[1] >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;  // 0x80..0xC1 (continuation or overlong lead) and 0xF5..0xFF
}

// Splits off the level starting at `pos`; returns the index of the '/' that
// ends it, or s.size() for the last level.
size_t level_end(std::string_view s, size_t pos) {
  if (pos >= s.size()) return s.size();
  const void* slash = std::memchr(s.data() + pos, '/', s.size() - pos);
  return slash ? static_cast<size_t>(static_cast<const char*>(slash) - s.data()) : s.size();
}

// Filter syntax without the $share prefix and without the UTF-8 check.
bool is_valid_plain_filter(std::string_view f) {
  if (f.empty()) return false;
  for (size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if (c != '+' && c != '#') continue;
    // A wildcard must occupy the whole level [MQTT-4.7.1-2], [MQTT-4.7.1-3].
    const bool starts_level = i == 0 || f[i - 1] == '/';
    const bool ends_level = i + 1 == f.size() || f[i + 1] == '/';
    if (!starts_level || !ends_level) return false;
    // '#' must be the last character [MQTT-4.7.1-2].
    if (c == '#' && i + 1 != f.size()) return false;
  }
  return true;
}

}  // namespace

namespace detail {

bool is_well_formed_utf8(std::string_view s, bool allow_nul) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, eight bytes at a time when no byte is 0 or >= 0x80.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      const bool high = (w & 0x8080808080808080ULL) != 0;
      const bool zero = ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL) != 0;
      if (high || (zero && !allow_nul)) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned char c = p[i];
    if (c == 0 && !allow_nul) return false;  // U+0000 [MQTT-1.5.4-2]
    if (c < 0x80) {
      ++i;
      continue;
    }
    const size_t len = utf8_sequence_length(p + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

}  // namespace detail

bool is_valid_utf8(std::string_view s) { return detail::is_well_formed_utf8(s, false); }

bool is_valid_topic_name(std::string_view topic) {
  if (topic.empty() || topic.size() > kMaxStringLength) return false;
  // [MQTT-3.3.2-2] no wildcard characters in a topic name.
  if (has_wildcard(topic)) return false;
  return is_valid_utf8(topic);
}

bool is_valid_topic_filter(std::string_view filter) {
  if (filter.empty() || filter.size() > kMaxStringLength) return false;
  if (!is_valid_utf8(filter)) return false;
  std::string_view group;
  std::string_view inner;
  if (filter.starts_with(kSharePrefix)) {
    // "$share/" must be followed by a ShareName and "/" [MQTT-4.8.2-1]; the
    // ShareName has no '/', '+' or '#' [MQTT-4.8.2-2] and is not empty.
    if (!split_shared_filter(filter, group, inner)) return false;
    if (group.empty() || has_wildcard(group)) return false;
    return is_valid_plain_filter(inner);
  }
  return is_valid_plain_filter(filter);
}

bool split_shared_filter(std::string_view filter, std::string_view& group,
                         std::string_view& inner) {
  if (!filter.starts_with(kSharePrefix)) return false;
  const size_t start = kSharePrefix.size();
  const size_t slash = filter.find('/', start);
  if (slash == std::string_view::npos) return false;
  group = filter.substr(start, slash - start);
  inner = filter.substr(slash + 1);
  return true;
}

bool topic_matches(std::string_view filter, std::string_view topic) {
  // [MQTT-4.7.2-1] a filter starting with a wildcard does not match a topic
  // starting with '$' ($SYS/...).
  if (!topic.empty() && topic[0] == '$' && !filter.empty() &&
      (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  size_t fi = 0;
  size_t ti = 0;
  for (;;) {
    const size_t fe = level_end(filter, fi);
    const size_t flen = fe - fi;
    // '#' matches the parent level and any number of child levels, so
    // "sport/#" matches "sport" as well as "sport/x/y" (4.7.1.2).
    if (flen == 1 && filter[fi] == '#') return true;
    if (ti > topic.size()) return false;  // topic has no level left
    const size_t te = level_end(topic, ti);
    const size_t tlen = te - ti;
    const bool plus = flen == 1 && filter[fi] == '+';  // any one level, even empty
    if (!plus && filter.substr(fi, flen) != topic.substr(ti, tlen)) return false;
    const bool filter_last = fe == filter.size();
    const bool topic_last = te == topic.size();
    if (filter_last) return topic_last;
    // When the topic ended here, only a trailing "/#" can still match.
    fi = fe + 1;
    ti = te + 1;  // ti == topic.size() + 1 marks "no level left"
  }
}

namespace {

// The levels of a filter, one at a time.
class Levels {
 public:
  explicit Levels(std::string_view filter) : rest_(filter) {}
  bool done() const { return done_; }
  // The next level; call only while !done().
  std::string_view next() {
    const size_t slash = rest_.find('/');
    const std::string_view level = rest_.substr(0, slash);
    if (slash == std::string_view::npos) {
      done_ = true;
    } else {
      rest_.remove_prefix(slash + 1);
    }
    return level;
  }
  // True when what is left is exactly "#", which also matches the parent
  // level ("a/#" matches "a").
  bool only_hash_left() const { return !done_ && rest_ == "#"; }

 private:
  std::string_view rest_;
  bool done_ = false;
};

bool is_wildcard(std::string_view level) { return level == "+" || level == "#"; }

// The topics of a filter whose first level is a literal starting with '$'
// all start with '$'; those of a filter starting with a wildcard never do.
bool dollar_literal(std::string_view filter) { return !filter.empty() && filter[0] == '$'; }
bool wildcard_first(std::string_view filter) {
  return filter.starts_with("#") || filter == "+" || filter.starts_with("+/");
}

}  // namespace

bool filters_overlap(std::string_view a, std::string_view b) {
  if ((dollar_literal(a) && wildcard_first(b)) || (dollar_literal(b) && wildcard_first(a))) return false;
  Levels la(a), lb(b);
  while (!la.done() && !lb.done()) {
    const std::string_view x = la.next();
    const std::string_view y = lb.next();
    if (x == "#" || y == "#") return true;
    if (x != "+" && y != "+" && x != y) return false;
  }
  if (la.done() && lb.done()) return true;
  return la.only_hash_left() || lb.only_hash_left();
}

bool filter_covers(std::string_view outer, std::string_view inner) {
  if (wildcard_first(outer) && dollar_literal(inner)) return false;
  Levels lo(outer), li(inner);
  while (!lo.done() && !li.done()) {
    const std::string_view o = lo.next();
    const std::string_view i = li.next();
    if (o == "#") return true;
    if (o == "+") {
      if (i == "#") return false;
      continue;
    }
    if (is_wildcard(i) || o != i) return false;
  }
  if (lo.done() && li.done()) return true;
  return li.done() && lo.only_hash_left();
}

}  // namespace midge::protocol
