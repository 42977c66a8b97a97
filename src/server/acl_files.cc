#include "server/acl_files.h"

#include <vector>

#include "auth/acl_file.h"

namespace midge::server {
namespace {

std::shared_ptr<const auth::AclFile> read(const std::string& path, const AclFiles::Say& say) {
  std::string error;
  std::vector<std::string> warnings;
  std::shared_ptr<const auth::AclFile> rules = auth::AclFile::load(path, error, warnings);
  for (const std::string& w : warnings) say(w);
  if (!rules) say("Error: " + error);
  return rules;
}

}  // namespace

std::shared_ptr<auth::AclAuthorizer> AclFiles::get(const std::string& path) {
  if (auto it = files_.find(path); it != files_.end()) return it->second;
  auto rules = read(path, say_);
  if (!rules) return nullptr;
  auto authorizer = std::make_shared<auth::AclAuthorizer>(std::move(rules));
  files_.emplace(path, authorizer);
  return authorizer;
}

bool AclFiles::reload() {
  bool replaced = false;
  for (auto& [path, authorizer] : files_) {
    if (auto rules = read(path, say_)) {
      say_("Reloaded acl_file " + path + " (" + std::to_string(rules->size()) + " rules).");
      authorizer->replace(std::move(rules));
      replaced = true;
    } else {
      say_("Error: acl_file " + path + " not reloaded; keeping the previous rules.");
    }
  }
  return replaced;
}

}  // namespace midge::server
