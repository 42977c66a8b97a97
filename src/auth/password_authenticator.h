// broker::Authenticator over a password file: a remembered success answers
// at once on the worker; every other check (PBKDF2, or the dummy hash of an
// unknown user) runs on a small pool and answers later. The file is
// replaced as a whole on SIGHUP; a check in progress keeps the old one.
#pragma once

#include <atomic>
#include <memory>

#include "auth/password_file.h"
#include "auth/work_pool.h"
#include "broker/authenticator.h"

namespace midge::auth {

class PasswordAuthenticator final : public broker::Authenticator {
 public:
  struct Limits {
    unsigned threads = 1;
    // Checks waiting beyond these are refused with Server busy. 32 checks
    // of 210000 iterations are a few seconds of work, well within the
    // CONNECT timeout.
    size_t max_queued = 32;
  };
  PasswordAuthenticator(std::shared_ptr<const PasswordFile> users, Limits limits);

  std::optional<protocol::ReasonCode> authenticate(broker::Credentials who, Reply reply) override;
  uint64_t credential_stamp(std::string_view username) const override {
    return users_.load(std::memory_order_acquire)->stamp(username);
  }
  // Main thread, on SIGHUP.
  void replace(std::shared_ptr<const PasswordFile> users);
  // Before the workers that receive the replies go away.
  void stop() { pool_.stop(); }

 private:
  std::atomic<std::shared_ptr<const PasswordFile>> users_;
  WorkPool pool_;
};

}  // namespace midge::auth
