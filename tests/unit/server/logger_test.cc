// Logger: the log_type mask, the topic sink, and reopening files (SIGHUP, logrotate).
#include "server/logger.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace midge::server {
namespace {

using util::LogType;

class LoggerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/midge-logger-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/midge.log";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string dir_, path_;
};

TEST_F(LoggerTest, WritesOnlyTheConfiguredTypes) {
  Logger log;
  ASSERT_EQ(log.configure({"file " + path_}, /*timestamps=*/false), "");
  log.set_types(util::log_types_of("error") | util::log_types_of("subscribe"));
  log.log("Error: kept");
  log.log("Warning: dropped");
  log.log("information dropped");
  log.log(LogType::kNotice, "notice dropped");
  log.log(LogType::kSubscribe, "client 1 a/b");
  log.flush();
  EXPECT_EQ(read(path_), "Error: kept\nclient 1 a/b\n");
}

TEST_F(LoggerTest, DefaultTypesAreMosquittos) {
  Logger log;
  ASSERT_EQ(log.configure({"file " + path_}, false), "");
  log.log(LogType::kDebug, "debug");
  log.log(LogType::kSubscribe, "subscribe");
  log.log(LogType::kNotice, "notice");
  log.log("Warning: warning");
  log.flush();
  EXPECT_EQ(read(path_), "notice\nWarning: warning\n");
}

TEST_F(LoggerTest, TopicSinkGetsEveryLoggedLineButDebug) {
  Logger log;
  ASSERT_EQ(log.configure({"topic"}, false), "");
  log.set_types(util::kAllLogTypes);
  std::vector<std::pair<LogType, std::string>> got;
  log.set_topic_sink([&](LogType t, const std::string& line) { got.emplace_back(t, line); });
  log.log("Error: e");
  log.log(LogType::kDebug, "d");
  log.log(LogType::kUnsubscribe, "c a/b");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], std::make_pair(LogType::kError, std::string("Error: e")));
  EXPECT_EQ(got[1], std::make_pair(LogType::kUnsubscribe, std::string("c a/b")));
  log.set_types(util::log_types_of("error"));
  log.log(LogType::kUnsubscribe, "not logged, not published");
  EXPECT_EQ(got.size(), 2u);
}

TEST_F(LoggerTest, ReopenAfterRotationWritesANewFile) {
  Logger log;
  ASSERT_EQ(log.configure({"file " + path_}, false), "");
  log.log("before");
  log.flush();
  ASSERT_EQ(::rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  log.reopen();
  log.log("after");
  log.flush();
  EXPECT_EQ(read(path_ + ".1"), "before\n");
  EXPECT_EQ(read(path_), "after\n");
}

TEST_F(LoggerTest, AFileThatCannotBeReopenedKeepsThePreviousOne) {
  Logger log;
  ASSERT_EQ(log.configure({"file " + path_}, false), "");
  log.log("first");
  log.flush();
  ASSERT_EQ(::rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  ASSERT_EQ(::mkdir(path_.c_str(), 0755), 0);  // a directory where the new file would go
  log.reopen();
  log.log("second");
  log.flush();
  const std::string kept = read(path_ + ".1");
  EXPECT_NE(kept.find("first\n"), std::string::npos);
  EXPECT_NE(kept.find("Error: cannot reopen log file " + path_), std::string::npos) << kept;
  EXPECT_NE(kept.find("second\n"), std::string::npos) << kept;
}

}  // namespace
}  // namespace midge::server
