#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "auth/acl_authorizer.h"
#include "auth/acl_file.h"

namespace midge::auth {
namespace {

using broker::Access;
using broker::Coverage;

std::shared_ptr<const AclFile> parse_ok(std::string_view text) {
  std::string error;
  std::vector<std::string> warnings;
  auto file = AclFile::parse(text, "acl", error, warnings);
  EXPECT_TRUE(file) << error;
  return file;
}

std::string parse_error(std::string_view text) {
  std::string error;
  std::vector<std::string> warnings;
  EXPECT_FALSE(AclFile::parse(text, "acl", error, warnings));
  return error;
}

struct Client {
  AclAuthorizer authorizer;
  std::unique_ptr<broker::ClientAccess> access;
  Client(std::string_view text, std::string_view client_id, const char* user)
      : authorizer(parse_ok(text)) {
    const std::string name = user ? user : "";
    access = authorizer.access_for(client_id, user ? &name : nullptr);
  }
  bool read(std::string_view topic) { return access->allows(topic, Access::kRead); }
  bool write(std::string_view topic) { return access->allows(topic, Access::kWrite); }
};

TEST(AclFile, ErrorsNameTheLine) {
  EXPECT_EQ(parse_error("topic read a\n\ntopic maybe a/b\n"),
            "acl:3: invalid access \"maybe\" (read, write, readwrite or deny).");
  EXPECT_EQ(parse_error("frobnicate x\n"), "acl:1: invalid line \"frobnicate...\" (topic, pattern, user or # comment).");
  EXPECT_EQ(parse_error("user\n"), "acl:1: user line without a user name.");
  EXPECT_EQ(parse_error("# c\ntopic read a/#/b\n"), "acl:2: invalid topic filter \"a/#/b\".");
  EXPECT_EQ(parse_error("topic\n"), "acl:1: topic or pattern line without a topic.");
}

TEST(AclFile, AnonymousLinesComeBeforeAnyUser) {
  Client anon("topic read public/#\nuser alice\ntopic readwrite alice/#\n", "c1", nullptr);
  EXPECT_TRUE(anon.read("public/x"));
  EXPECT_FALSE(anon.write("public/x"));
  EXPECT_FALSE(anon.read("alice/x"));
  Client alice("topic read public/#\nuser alice\ntopic readwrite alice/#\n", "c2", "alice");
  EXPECT_TRUE(alice.write("alice/x"));
  EXPECT_FALSE(alice.read("public/x"));  // anonymous lines are not everyone's
  Client bob("topic read public/#\nuser alice\ntopic readwrite alice/#\n", "c3", "bob");
  EXPECT_FALSE(bob.read("alice/x"));
}

TEST(AclFile, SingleWordIsReadwriteTopic) {
  Client c("topic read\n", "c", nullptr);  // Mosquitto: the topic "read"
  EXPECT_TRUE(c.read("read"));
  EXPECT_TRUE(c.write("read"));
}

TEST(AclFile, DenyWinsWhereverItIs) {
  Client c("topic readwrite home/#\ntopic deny home/secret\n", "c", nullptr);
  EXPECT_TRUE(c.read("home/kitchen"));
  EXPECT_FALSE(c.read("home/secret"));
  EXPECT_FALSE(c.write("home/secret"));
}

TEST(AclFile, UserNamedTwiceGetsBothParts) {
  Client c("user u\ntopic read a\nuser v\ntopic read b\nuser u\ntopic write c\n", "x", "u");
  EXPECT_TRUE(c.read("a"));
  EXPECT_TRUE(c.write("c"));
  EXPECT_FALSE(c.read("b"));
}

TEST(AclFile, PatternsSubstituteClientIdAndUser) {
  const char* acl = "pattern readwrite clients/%c/#\npattern read users/%u/+\n";
  Client c(acl, "dev1", "alice");
  EXPECT_TRUE(c.write("clients/dev1/up"));
  EXPECT_FALSE(c.write("clients/dev2/up"));
  EXPECT_TRUE(c.read("users/alice/x"));
  EXPECT_FALSE(c.write("users/alice/x"));
  Client anon(acl, "dev1", nullptr);
  EXPECT_FALSE(anon.read("users//x"));  // %u never applies to anonymous clients
}

TEST(AclFile, WildcardInNameGetsNothingFromPatterns) {
  Client c("pattern readwrite clients/%c/#\n", "+", nullptr);
  EXPECT_FALSE(c.read("clients/other/x"));
  Client slash("pattern readwrite clients/%c\n", "a/b", nullptr);
  EXPECT_FALSE(slash.read("clients/a/b"));
  EXPECT_EQ(slash.access->readable("clients/#"), Coverage::kNone);
}

TEST(AclFile, DollarTopicsNeedTheirOwnLines) {
  Client c("topic read #\n", "c", nullptr);
  EXPECT_FALSE(c.read("$SYS/broker/uptime"));
  Client sys("topic read $SYS/#\n", "c", nullptr);
  EXPECT_TRUE(sys.read("$SYS/broker/uptime"));
}

TEST(AclFile, Coverage) {
  Client c("topic read sensors/+/temp\ntopic readwrite home/#\ntopic deny home/secret/#\ntopic write out/#\n", "c",
           nullptr);
  EXPECT_EQ(c.access->readable("sensors/+/temp"), Coverage::kAll);
  EXPECT_EQ(c.access->readable("sensors/a/temp"), Coverage::kAll);
  EXPECT_EQ(c.access->readable("sensors/#"), Coverage::kSome);
  EXPECT_EQ(c.access->readable("#"), Coverage::kSome);
  EXPECT_EQ(c.access->readable("home/#"), Coverage::kSome);     // the deny takes part of it
  EXPECT_EQ(c.access->readable("home/kitchen"), Coverage::kAll);
  EXPECT_EQ(c.access->readable("home/secret/x"), Coverage::kNone);
  EXPECT_EQ(c.access->readable("out/#"), Coverage::kNone);      // write only
  EXPECT_EQ(c.access->readable("other"), Coverage::kNone);
  EXPECT_EQ(c.access->readable("$SYS/#"), Coverage::kNone);
}

TEST(AclFile, ManyRulesUseTheCacheConsistently) {
  std::string acl;
  for (int i = 0; i < 50; ++i) acl += "topic read t" + std::to_string(i) + "/#\n";
  acl += "topic deny t7/x\n";
  Client c(acl, "c", nullptr);
  for (int round = 0; round < 2; ++round) {
    EXPECT_TRUE(c.read("t3/a"));
    EXPECT_FALSE(c.write("t3/a"));
    EXPECT_FALSE(c.read("t7/x"));
    EXPECT_FALSE(c.read("u/a"));
    // Past the cache's topic length the rules are evaluated each time, with the same answers.
    EXPECT_TRUE(c.read("t3/" + std::string(1000, 'x')));
    EXPECT_FALSE(c.read("u/" + std::string(1000, 'x')));
  }
}

TEST(AclAuthorizer, ReplaceAndRenew) {
  Client c("topic read a\n", "c", nullptr);
  EXPECT_TRUE(c.read("a"));
  c.authorizer.replace(parse_ok("topic read b\n"));
  EXPECT_TRUE(c.read("a"));  // the session keeps its rules until renewed
  auto renewed = c.access->renewed();
  EXPECT_FALSE(renewed->allows("a", Access::kRead));
  EXPECT_TRUE(renewed->allows("b", Access::kRead));
}

}  // namespace
}  // namespace midge::auth
