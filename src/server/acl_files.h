// The ACL files the broker and its listeners use (`acl_file`, per listener
// with per_listener_settings): each path is read once and has one
// authorizer, shared by every listener naming it; all are re-read on
// SIGHUP.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "auth/acl_authorizer.h"

namespace midge::server {

class AclFiles {
 public:
  using Say = std::function<void(const std::string&)>;
  explicit AclFiles(Say say) : say_(std::move(say)) {}

  // The authorizer of `path`, read on first use; null when the file cannot
  // be read or has an invalid line (logged with the file and line: the
  // broker then refuses to start, as Mosquitto).
  std::shared_ptr<auth::AclAuthorizer> get(const std::string& path);
  // SIGHUP: every file again; one that cannot be read or parsed keeps its
  // rules (logged). Returns true when some file was replaced: the workers
  // must then renew their sessions' rules (Broker::renew_access).
  bool reload();
  // The configuration names another file where it named `from`: the same
  // authorizer reads `to` at the next reload().
  void rename(const std::string& from, const std::string& to) {
    if (auto node = files_.extract(from)) {
      node.key() = to;
      files_.insert(std::move(node));
    }
  }
  bool empty() const { return files_.empty(); }

 private:
  Say say_;
  std::map<std::string, std::shared_ptr<auth::AclAuthorizer>> files_;
};

}  // namespace midge::server
