#include "protocol/topic.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace midge::protocol {
namespace {

using namespace std::string_view_literals;

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

// MQTT 5.0 / 3.1.1 section 4.7 examples, the tutorial's "maison" cases and
// the '$' rules [MQTT-4.7.2-1].
const MatchCase kMatchCases[] = {
    {"maison/+/temp", "maison/salon/temp", true},
    {"maison/+/temp", "maison/garage/temp", true},
    {"maison/+/temp", "maison/salon/hum", false},
    {"maison/+/temp", "jardin/temp", false},
    {"maison/#", "maison/rdc/salon/hum", true},
    {"maison/#", "annexe/couloir/hum", false},
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/#", "sport", true},
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"a/+", "a/", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+", "finance", true},
    {"+/", "a/", true},
    {"#", "a/b/c", true},
    {"#", "/", true},
    {"a/b", "a/b", true},
    {"a/b", "a/b/c", false},
    {"a/b/c", "a/b", false},
    {"a/b", "A/b", false},
    {"a//b", "a//b", true},
    {"a/+/b", "a//b", true},
    {"a/#", "a", true},
    {"a/#", "a/", true},
    {"a/#", "ab", false},
    {"+/#", "a", true},
    // Topics starting with '$' are not matched by a leading wildcard.
    {"#", "$SYS/broker/uptime", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"+", "$SYS", false},
    {"a/#", "a/$b", true},
    {"a/+", "a/$b", true},
};

TEST(TopicMatches, Table) {
  for (const auto& c : kMatchCases) {
    EXPECT_EQ(topic_matches(c.filter, c.topic), c.matches) << c.filter << " vs " << c.topic;
  }
}

TEST(TopicFilter, Valid) {
  for (const char* f : {"#",
                        "+",
                        "a",
                        "a/b",
                        "a/+",
                        "a/#",
                        "+/+",
                        "+/#",
                        "/",
                        "//",
                        "/#",
                        "a//b",
                        "$SYS/#",
                        "$share/g/#",
                        "$share/g/a/+/b",
                        "$share/group-1/+",
                        "$share",
                        "$sharex/a",
                        "maison/+/temp",
                        "\xC3\xA9t\xC3\xA9/+"}) {
    EXPECT_TRUE(is_valid_topic_filter(f)) << f;
  }
}

TEST(TopicFilter, Invalid) {
  for (const char* f : {"",           "a/#/b",      "a+/b",           "a/b+",      "#/a",
                        "+a",         "a#",         "a/#b",           "##",        "++",
                        "$share/g",   "$share/",    "$share//a",      "$share/g/", "$share/g+/a",
                        "$share/#/a", "$share/+/a", "$share/g/a/#/b", "\xC0\x80",  "a\xFF"}) {
    EXPECT_FALSE(is_valid_topic_filter(f)) << f;
  }
  EXPECT_FALSE(is_valid_topic_filter("a\0b"sv));
  EXPECT_FALSE(is_valid_topic_filter(std::string(65536, 'a')));
  EXPECT_TRUE(is_valid_topic_filter(std::string(65535, 'a')));
}

TEST(TopicName, ValidAndInvalid) {
  for (const char* t : {"a", "a/b", "/", "$SYS/x", "a b", "sport/tennis/player1"}) {
    EXPECT_TRUE(is_valid_topic_name(t)) << t;
  }
  for (const char* t : {"", "a/+", "#", "a/#", "+", "a+b", "\xED\xA0\x80"}) {
    EXPECT_FALSE(is_valid_topic_name(t)) << t;
  }
  EXPECT_FALSE(is_valid_topic_name("a\0"sv));
}

TEST(SplitSharedFilter, Parts) {
  std::string_view group;
  std::string_view inner;
  ASSERT_TRUE(split_shared_filter("$share/g/a/b", group, inner));
  EXPECT_EQ(group, "g");
  EXPECT_EQ(inner, "a/b");
  ASSERT_TRUE(split_shared_filter("$share/grp/#", group, inner));
  EXPECT_EQ(group, "grp");
  EXPECT_EQ(inner, "#");
  EXPECT_FALSE(split_shared_filter("$share/g", group, inner));
  EXPECT_FALSE(split_shared_filter("a/b", group, inner));
  EXPECT_FALSE(split_shared_filter("$SHARE/g/a", group, inner));
}

struct Utf8Case {
  std::string_view text;
  bool valid;
};

TEST(Utf8, Table) {
  const Utf8Case cases[] = {
      {"", true},
      {"hello", true},
      {"caf\xC3\xA9", true},        // U+00E9
      {"\xE2\x82\xAC", true},       // U+20AC
      {"\xF0\x9F\x98\x80", true},   // U+1F600
      {"\xF4\x8F\xBF\xBF", true},   // U+10FFFF
      {"\xED\x9F\xBF", true},       // U+D7FF
      {"\xEE\x80\x80", true},       // U+E000
      {"\x01\x1F\x7F", true},       // control characters: only SHOULD NOT
      {"\xC2\x80\xC2\x9F", true},   // U+0080, U+009F: SHOULD NOT
      {"\xEF\xBF\xBF", true},       // U+FFFF non-character: SHOULD NOT
      {"a\0b"sv, false},            // U+0000 [MQTT-1.5.4-2]
      {"\xED\xA0\x80", false},      // U+D800 surrogate [MQTT-1.5.4-1]
      {"\xED\xBF\xBF", false},      // U+DFFF surrogate
      {"\xC0\x80", false},          // overlong U+0000
      {"\xC1\xBF", false},          // overlong
      {"\xE0\x80\xAF", false},      // overlong '/'
      {"\xE0\x9F\xBF", false},      // overlong
      {"\xF0\x8F\xBF\xBF", false},  // overlong
      {"\xF4\x90\x80\x80", false},  // U+110000
      {"\xF5\x80\x80\x80", false},  // invalid lead
      {"\xFF", false},
      {"\x80", false},                             // lone continuation
      {"\xC3", false},                             // truncated
      {"\xE2\x82", false},                         // truncated
      {"\xF0\x9F\x98", false},                     // truncated
      {"\xC3\x28", false},                         // bad continuation
      {"abcdefghijklmnop\xC3\xA9qrstuvwx", true},  // through the 8-byte fast path
      {"abcdefghijklm\0pqrstuvwx"sv, false},
      {"abcdefghijklmnop\xFFqrstuvwx", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(is_valid_utf8(c.text), c.valid) << testing::PrintToString(std::string(c.text));
  }
}

TEST(FilterAlgebra, Overlap) {
  EXPECT_TRUE(filters_overlap("a/b", "a/b"));
  EXPECT_TRUE(filters_overlap("a/+", "+/b"));
  EXPECT_TRUE(filters_overlap("#", "a/b/c"));
  EXPECT_TRUE(filters_overlap("a", "a/#"));        // "a/#" matches "a"
  EXPECT_TRUE(filters_overlap("a/#", "a/b/+/d"));
  EXPECT_TRUE(filters_overlap("$SYS/#", "$SYS/broker/+"));
  EXPECT_FALSE(filters_overlap("a/b", "a/c"));
  EXPECT_FALSE(filters_overlap("a/+", "a/b/c"));
  EXPECT_FALSE(filters_overlap("a", "a/+"));
  EXPECT_FALSE(filters_overlap("#", "$SYS/#"));    // [MQTT-4.7.2-1]
  EXPECT_FALSE(filters_overlap("+/x", "$SYS/x"));
  EXPECT_FALSE(filters_overlap("sensors/#", "actuators/#"));
}

TEST(FilterAlgebra, Covers) {
  EXPECT_TRUE(filter_covers("#", "a/b"));
  EXPECT_TRUE(filter_covers("#", "+/b/#"));
  EXPECT_TRUE(filter_covers("a/#", "a"));
  EXPECT_TRUE(filter_covers("a/#", "a/#"));
  EXPECT_TRUE(filter_covers("a/+", "a/b"));
  EXPECT_TRUE(filter_covers("a/+/c", "a/+/c"));
  EXPECT_TRUE(filter_covers("$SYS/#", "$SYS/broker/+"));
  EXPECT_FALSE(filter_covers("a/+", "a/#"));
  EXPECT_FALSE(filter_covers("a/b", "a/+"));
  EXPECT_FALSE(filter_covers("a", "a/#"));
  EXPECT_FALSE(filter_covers("a/b", "a/b/c"));
  EXPECT_FALSE(filter_covers("#", "$SYS/#"));
  EXPECT_FALSE(filter_covers("+/#", "$SYS/x"));
  EXPECT_FALSE(filter_covers("sensors/#", "#"));
}

}  // namespace
}  // namespace midge::protocol
