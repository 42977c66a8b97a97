// The users of a `password_file` (mosquitto_passwd format), loaded once and
// then only read: one instance is shared by every worker thread through
// SharedState and replaced as a whole on SIGHUP, never modified in place.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "auth/password_hash.h"

namespace midge::auth {

class PasswordFile {
 public:
  // Reads `path`. A file that cannot be read is an error ("Unable to open
  // pwfile ..."); bad lines are not: like Mosquitto 2.0.11 they are skipped
  // and reported in `problems` as full log lines ("Error: FILE:LINE: ...").
  // Returns null and sets `error` when the file cannot be read.
  static std::unique_ptr<PasswordFile> load(const std::string& path, std::vector<std::string>& problems,
                                            std::string& error);
  // Same rules on text in memory; `name` is used in the messages.
  static std::unique_ptr<PasswordFile> parse(std::string_view text, const std::string& name,
                                             std::vector<std::string>& problems);

  PasswordFile();
  PasswordFile(const PasswordFile&) = delete;
  PasswordFile& operator=(const PasswordFile&) = delete;

  // True when `username` is in the file and `password` matches its hash.
  // Thread-safe; slow (one PBKDF2: tens of milliseconds with mosquitto
  // 2.1's 210000 iterations). An unknown user costs the same as a wrong
  // password: a dummy hash of the file's usual kind is checked instead, so
  // response times do not tell which users exist. Successes are
  // remembered (see verified_).
  bool verify(std::string_view username, std::string_view password) const;
  // True when this user and password were verified before: a keyed digest
  // and a set lookup, cheap enough for a worker thread. False says nothing.
  bool remembered(std::string_view username, std::string_view password) const;
  // Hash iterations computed by verify() so far ($6$ counts 1): lets tests
  // check that every failure path does the same work.
  uint64_t hash_work() const { return hash_work_.load(std::memory_order_relaxed); }

  size_t size() const { return users_.size(); }
  bool contains(std::string_view username) const { return users_.count(std::string(username)) != 0; }
  // A fingerprint of the user's entry (salt and hash), never 0; 0 when the
  // user is not in the file. Tells a reload whether the entry changed.
  uint64_t stamp(std::string_view username) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  struct DigestHash {
    size_t operator()(const Digest& d) const;
  };
  Digest digest(std::string_view username, std::string_view password) const;
  void choose_dummy();

  std::unordered_map<std::string, PasswordHash> users_;
  // Checked for unknown users: the kind and iteration count most entries
  // have, a random salt and hash that no password matches.
  PasswordHash dummy_;
  mutable std::atomic<uint64_t> hash_work_{0};
  // Cache of successful verifications. Keyed with a random per-instance key
  // so that the digests are useless outside this process; bounded, and
  // dropped with the instance when the file is reloaded.
  static constexpr size_t kMaxVerified = 4096;
  std::array<unsigned char, 32> cache_key_{};
  mutable std::mutex mutex_;
  mutable std::unordered_set<Digest, DigestHash> verified_;  // guarded by mutex_
};

}  // namespace midge::auth
