// The question the broker asks at CONNECT: may this user in? The broker
// owns the question and its rules (anonymous clients, allow_anonymous);
// how the answer is found belongs to an implementation wired by the server
// (today auth::PasswordAuthenticator, a mosquitto_passwd file). Checks that
// cost more than a lookup (PBKDF2) answer later, from another thread, so
// that a worker never waits for them.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "broker/authorizer.h"
#include "protocol/reason_code.h"

namespace midge::broker {

// What a named client presents in its CONNECT (3.1.3.5, 3.1.3.6).
struct Credentials {
  std::string client_id;
  std::string username;                 // never empty: empty is anonymous
  std::optional<std::string> password;  // binary data in MQTT
};

class Authenticator {
 public:
  // Where a check that could not answer at once sends its verdict.
  struct Reply {
    // Called at most once, from any thread.
    std::function<void(protocol::ReasonCode)> answer = [](protocol::ReasonCode) {};
    // May be asked from any thread before the work starts: false when the
    // client has gone, and the check is skipped without an answer.
    std::function<bool()> wanted = [] { return true; };
  };

  virtual ~Authenticator() = default;
  // Called on a worker thread. Returns the verdict when it is known at once
  // (kSuccess, kNotAuthorized, kServerBusy when too many checks wait...);
  // otherwise returns nullopt and gives the verdict to `reply` later.
  virtual std::optional<protocol::ReasonCode> authenticate(Credentials who, Reply reply) = 0;
  // A value that changes when the user's entry changes or goes away (0:
  // no such user). A session remembers it at CONNECT; after a reload, a
  // client whose entry changed is disconnected (Broker::revalidate).
  virtual uint64_t credential_stamp(std::string_view username) const = 0;
};

// Who may connect through one listener, and what its clients may do, with
// per_listener_settings (without it, every listener uses the broker's:
// SharedState::authenticator, SharedState::authorizer and
// Settings::allow_anonymous).
struct AccessPolicy {
  std::shared_ptr<Authenticator> authenticator;  // null: no password file
  std::shared_ptr<Authorizer> authorizer;        // null: no acl_file, every topic allowed
  bool allow_anonymous = false;
};

}  // namespace midge::broker
