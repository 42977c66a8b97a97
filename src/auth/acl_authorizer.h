// broker::Authorizer over a Mosquitto acl_file. A client's rules are
// resolved once, at CONNECT: its user's topic lines (or the anonymous
// ones), then the pattern lines with %c and %u substituted. A topic is
// decided by the first line that matches it and either denies or grants the
// access asked, the user's lines before the patterns, deny lines first
// within each; nothing matching means no access (Mosquitto 2.0's order).
// The file is replaced as a whole on SIGHUP; a client keeps the rules it
// was given until the broker renews them.
#pragma once

#include <atomic>
#include <memory>

#include "auth/acl_file.h"
#include "broker/authorizer.h"

namespace midge::auth {

class AclAuthorizer final : public broker::Authorizer {
 public:
  explicit AclAuthorizer(std::shared_ptr<const AclFile> rules) : rules_(std::move(rules)) {}

  std::unique_ptr<broker::ClientAccess> access_for(std::string_view client_id,
                                                   const std::string* username) const override;
  // Main thread, on SIGHUP.
  void replace(std::shared_ptr<const AclFile> rules) { rules_.store(std::move(rules)); }

 private:
  std::atomic<std::shared_ptr<const AclFile>> rules_;
};

}  // namespace midge::auth
