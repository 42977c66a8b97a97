// An access control list in Mosquitto's acl_file format (mosquitto.conf(5)):
//
//   # comment
//   topic [read|write|readwrite|deny] FILTER   (no access word: readwrite)
//   user NAME                                  (the topic lines after it are NAME's)
//   pattern [read|write|readwrite|deny] FILTER (every client; %c = client id, %u = user name)
//
// Topic lines before any user line belong to anonymous clients. A user
// named twice gets the lines of both places. Immutable once parsed; a
// reload parses a new one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace midge::auth {

struct AclRule {
  static constexpr uint8_t kDeny = 0;
  static constexpr uint8_t kRead = 1;
  static constexpr uint8_t kWrite = 2;
  std::string filter;
  uint8_t access = kDeny;  // kRead | kWrite bits; kDeny = none, and wins
};

class AclFile {
 public:
  // Null on failure, with `error` naming the file and line ("FILE:LINE: ...").
  // `warnings` gets lines worth logging (a pattern without %c or %u).
  static std::shared_ptr<const AclFile> load(const std::string& path, std::string& error,
                                             std::vector<std::string>& warnings);
  static std::shared_ptr<const AclFile> parse(std::string_view text, const std::string& name,
                                              std::string& error, std::vector<std::string>& warnings);

  // The topic lines of a user (null: the anonymous clients'), deny lines
  // first; null when the file has none.
  const std::vector<AclRule>* rules_of(const std::string* username) const;
  // Pattern lines, deny lines first, %c and %u not yet substituted.
  const std::vector<AclRule>& patterns() const { return patterns_; }
  size_t size() const { return lines_; }

 private:
  std::vector<AclRule> anonymous_;
  std::unordered_map<std::string, std::vector<AclRule>> users_;
  std::vector<AclRule> patterns_;
  size_t lines_ = 0;  // rules in all
};

}  // namespace midge::auth
