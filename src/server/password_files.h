// The password files the broker and its listeners use (`password_file`,
// per listener with per_listener_settings): each path is read once and has
// one authenticator, shared by every listener naming it; all are re-read on
// SIGHUP.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "auth/password_authenticator.h"

namespace midge::server {

class PasswordFiles {
 public:
  using Say = std::function<void(const std::string&)>;
  explicit PasswordFiles(Say say) : say_(std::move(say)) {}
  ~PasswordFiles() { stop(); }

  // The authenticator of `path`, read on first use; null when the file
  // cannot be read (logged; Mosquitto then refuses to start, exit code 13).
  std::shared_ptr<auth::PasswordAuthenticator> get(const std::string& path);
  // SIGHUP: every file again; one that cannot be read keeps its users.
  void reload();
  // The configuration names another file where it named `from`: the same
  // authenticator reads `to` at the next reload().
  void rename(const std::string& from, const std::string& to) {
    if (auto node = files_.extract(from)) {
      node.key() = to;
      files_.insert(std::move(node));
    }
  }
  bool empty() const { return files_.empty(); }
  // Before the workers go: no verdict may reach a destroyed worker.
  void stop();

 private:
  Say say_;
  std::map<std::string, std::shared_ptr<auth::PasswordAuthenticator>> files_;
};

}  // namespace midge::server
