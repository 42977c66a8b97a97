// Topic names and topic filters (MQTT 5.0 section 4.7, 3.1.1 section 4.7).
#pragma once

#include <cstddef>
#include <string_view>

namespace midge::protocol {

// True when `s` contains '+' or '#'. (A plain loop: find_first_of calls
// memchr once per character, which dominated the publish path.)
inline bool has_wildcard(std::string_view s) {
  for (const char c : s) {
    if (c == '+' || c == '#') return true;
  }
  return false;
}

// Mosquitto's limit, which Midge shares: at most 200 '/' (201 levels) in a
// topic name or filter. More is a Malformed Packet (the specification sets
// no limit; the topic tree walks levels without recursion either way).
constexpr size_t kMaxTopicSeparators = 200;
inline bool has_too_many_levels(std::string_view s) {
  if (s.size() <= kMaxTopicSeparators) return false;
  size_t slashes = 0;
  for (const char c : s) slashes += c == '/';
  return slashes > kMaxTopicSeparators;
}

// Well-formed UTF-8 without U+0000, surrogates or overlong forms
// [MQTT-1.5.4-1], [MQTT-1.5.4-2].
bool is_valid_utf8(std::string_view s);

// A topic name for PUBLISH: non-empty, valid UTF-8, no '+' or '#'
// [MQTT-3.3.2-2], at most 65535 bytes.
bool is_valid_topic_name(std::string_view topic);

// A topic filter: non-empty, valid UTF-8; '#' only as the whole last level;
// '+' only as a whole level [MQTT-4.7.1-1], [MQTT-4.7.1-2]. "$share/G/F"
// shared filters are valid when G is non-empty without wildcards and F is a
// valid filter [MQTT-4.8.2-1], [MQTT-4.8.2-2].
bool is_valid_topic_filter(std::string_view filter);

// Splits "$share/group/filter" into group and filter; false if `filter` is
// not a shared subscription.
bool split_shared_filter(std::string_view filter, std::string_view& group,
                         std::string_view& inner);

// True when `topic` (a topic name) matches `filter` (a non-shared topic
// filter), including the rules that '+' and '#' at the first level do not
// match topics starting with '$' [MQTT-4.7.2-1] and that "a/#" matches "a".
bool topic_matches(std::string_view filter, std::string_view topic);

// Filter algebra for access rules (both arguments valid, non-shared
// filters; '$' topics as in topic_matches):
// true when some topic name matches both filters;
bool filters_overlap(std::string_view a, std::string_view b);
// true when every topic name that matches `inner` also matches `outer`.
bool filter_covers(std::string_view outer, std::string_view inner);

}  // namespace midge::protocol
