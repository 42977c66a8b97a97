// Helpers for the store tests: a temporary directory, messages, and a
// RecoveryVisitor that collects everything load() hands over.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "broker/message.h"
#include "broker/store.h"

namespace midge::store::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "midge-store-test-XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline broker::MessagePtr message(std::string_view topic, std::string_view payload, uint8_t qos = 1,
                                  std::optional<TimePoint> expires_at = std::nullopt) {
  broker::MessageFields f;
  f.topic = topic;
  f.payload = payload;
  f.qos = qos;
  f.retain = false;
  f.pass_through = std::string_view("\x03\x00\x04text", 7);
  f.origin_client_id = "publisher";
  f.expires_at = expires_at;
  return broker::Message::create(f);
}

struct Loaded {
  std::vector<broker::StoredRetained> retained;
  std::vector<broker::StoredSession> sessions;
  std::vector<broker::StoredTransit> transits;
  std::vector<std::tuple<unsigned, unsigned, uint64_t>> markers;
  std::vector<std::string> problems;

  broker::RecoveryVisitor visitor() {
    broker::RecoveryVisitor v;
    v.retained = [this](broker::StoredRetained&& r) { retained.push_back(std::move(r)); };
    v.session = [this](broker::StoredSession&& s) { sessions.push_back(std::move(s)); };
    v.transit = [this](broker::StoredTransit&& t) { transits.push_back(std::move(t)); };
    v.marker = [this](unsigned r, unsigned o, uint64_t s) { markers.emplace_back(r, o, s); };
    v.problem = [this](const std::string& p) { problems.push_back(p); };
    return v;
  }
  const broker::StoredSession* session(std::string_view id) const {
    for (const auto& s : sessions) {
      if (s.client_id == id) return &s;
    }
    return nullptr;
  }
  std::string all_problems() const {
    std::string out;
    for (const auto& p : problems) out += p + "\n";
    return out;
  }
};

}  // namespace midge::store::testing
