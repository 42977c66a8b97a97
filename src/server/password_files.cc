#include "server/password_files.h"

#include <thread>
#include <vector>

#include "auth/password_file.h"

namespace midge::server {
namespace {

// Reads a password file; null (after logging why) when it cannot be read.
std::shared_ptr<const auth::PasswordFile> read(const std::string& path, const PasswordFiles::Say& say) {
  std::vector<std::string> problems;
  std::string error;
  std::shared_ptr<const auth::PasswordFile> users = auth::PasswordFile::load(path, problems, error);
  for (const std::string& p : problems) say(p);
  if (!users) say("Error: " + error);
  return users;
}

// Password hashing threads: one on small machines, so that a flood of
// CONNECTs never takes more than one core from the workers.
auth::PasswordAuthenticator::Limits hashing_limits() {
  auth::PasswordAuthenticator::Limits limits;
  limits.threads = std::thread::hardware_concurrency() >= 4 ? 2 : 1;
  return limits;
}

}  // namespace

std::shared_ptr<auth::PasswordAuthenticator> PasswordFiles::get(const std::string& path) {
  if (auto it = files_.find(path); it != files_.end()) return it->second;
  auto users = read(path, say_);
  if (!users) {
    say_("Error opening password file \"" + path + "\".");
    return nullptr;
  }
  auto authenticator = std::make_shared<auth::PasswordAuthenticator>(std::move(users), hashing_limits());
  files_.emplace(path, authenticator);
  return authenticator;
}

void PasswordFiles::reload() {
  for (auto& [path, authenticator] : files_) {
    if (auto users = read(path, say_)) {
      authenticator->replace(std::move(users));
      say_("Reloaded password file " + path + ".");
    } else {
      say_("Error: password file " + path + " not reloaded; keeping the previous users.");
    }
  }
}

void PasswordFiles::stop() {
  for (auto& [path, authenticator] : files_) authenticator->stop();
}

}  // namespace midge::server
