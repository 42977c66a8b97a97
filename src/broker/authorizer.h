// The question the broker asks for every PUBLISH, SUBSCRIBE and delivery:
// may this client write or read this topic? The broker owns where the
// question is asked (handle_publish, subscribe_one, route, wills, retained
// replays); how it is answered belongs to an implementation wired by the
// server (today auth::AclAuthorizer, a mosquitto acl_file).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace midge::broker {

enum class Access : uint8_t { kRead = 1, kWrite = 2 };

// How much of what a topic filter matches a client may read.
enum class Coverage : uint8_t {
  kNone,  // no topic: the subscription is refused (0x80 / v5 0x87)
  kSome,  // some topics: each delivery is checked
  kAll,   // every topic: deliveries need no check
};

// The rules of one client, resolved when it connects (its user's lines,
// patterns with its client id and user name). Owned by its session, so used
// by one worker thread only: an implementation may keep a cache in it.
class ClientAccess {
 public:
  virtual ~ClientAccess() = default;
  // `topic` is a topic name.
  virtual bool allows(std::string_view topic, Access access) = 0;
  // `filter` is a valid, non-shared topic filter.
  virtual Coverage readable(std::string_view filter) = 0;
  // The same client under the rules in force now (after a reload).
  virtual std::unique_ptr<ClientAccess> renewed() const = 0;
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // Called on a worker thread at CONNECT; thread-safe. `username` is null
  // for an anonymous client.
  virtual std::unique_ptr<ClientAccess> access_for(std::string_view client_id,
                                                   const std::string* username) const = 0;
};

}  // namespace midge::broker
