#include "broker/interest.h"

#include <gtest/gtest.h>

namespace midge::broker {
namespace {

TEST(InterestTest, EmptyMatchesNothing) {
  Interest i;
  EXPECT_FALSE(i.may_match("a/b"));
  EXPECT_FALSE(i.may_match("$SYS/broker/uptime"));
}

TEST(InterestTest, ExactFilterMatchesItsTopic) {
  Interest i;
  i.add("maison/salon/temp");
  EXPECT_TRUE(i.may_match("maison/salon/temp"));
  i.remove("maison/salon/temp");
  EXPECT_FALSE(i.may_match("maison/salon/temp"));
}

TEST(InterestTest, WildcardBelowFirstLevelMatchesByFirstLevel) {
  Interest i;
  i.add("maison/+/temp");
  i.add("sport/#");
  EXPECT_TRUE(i.may_match("maison/garage/temp"));
  EXPECT_TRUE(i.may_match("sport"));  // "sport/#" matches "sport"
  EXPECT_TRUE(i.may_match("sport/tennis/score"));
  i.remove("sport/#");
  EXPECT_TRUE(i.may_match("maison/salon/hum"));  // a false positive is allowed
  i.remove("maison/+/temp");
  EXPECT_FALSE(i.may_match("maison/garage/temp"));
}

TEST(InterestTest, LeadingWildcardMatchesEverything) {
  Interest i;
  i.add("#");
  EXPECT_TRUE(i.may_match("anything/at/all"));
  i.add("+/x");
  i.remove("#");
  EXPECT_TRUE(i.may_match("other"));
  i.remove("+/x");
  EXPECT_FALSE(i.may_match("other"));
}

TEST(InterestTest, CountsOverlappingFilters) {
  Interest i;
  i.add("a/b");
  i.add("a/b");
  i.remove("a/b");
  EXPECT_TRUE(i.may_match("a/b"));
  i.remove("a/b");
  EXPECT_FALSE(i.may_match("a/b"));
}

}  // namespace
}  // namespace midge::broker
