#include "auth/acl_file.h"

#include <algorithm>
#include <optional>

#include "auth/text_file.h"
#include "protocol/topic.h"

namespace midge::auth {

namespace {

constexpr std::string_view kBlanks = " \t\r\n\v\f";

std::string_view trim(std::string_view s) {
  const size_t first = s.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlanks) - first + 1);
}

// Splits off the first word of `s` (already trimmed); `s` keeps the rest.
std::string_view take_word(std::string_view& s) {
  const size_t end = s.find_first_of(kBlanks);
  const std::string_view word = s.substr(0, end);
  s = end == std::string_view::npos ? std::string_view() : trim(s.substr(end));
  return word;
}

std::optional<uint8_t> parse_access(std::string_view word) {
  if (word == "read") return AclRule::kRead;
  if (word == "write") return AclRule::kWrite;
  if (word == "readwrite") return AclRule::kRead | AclRule::kWrite;
  if (word == "deny") return AclRule::kDeny;
  return std::nullopt;
}

// Deny lines first: any deny line that matches decides, whatever its place
// in the file (as Mosquitto).
void deny_first(std::vector<AclRule>& rules) {
  std::stable_partition(rules.begin(), rules.end(), [](const AclRule& r) { return r.access == AclRule::kDeny; });
}

// One "topic" or "pattern" line's access and filter, from what follows the
// keyword. As Mosquitto, a single word is the filter (readwrite), so
// "topic read" grants readwrite on the topic "read".
std::string parse_rule(std::string_view rest, AclRule& rule) {
  if (rest.empty()) return "topic or pattern line without a topic";
  const std::string_view first = take_word(rest);
  if (rest.empty()) {
    rule.access = AclRule::kRead | AclRule::kWrite;
    rule.filter = first;
  } else {
    const std::optional<uint8_t> access = parse_access(first);
    if (!access) return "invalid access \"" + std::string(first) + "\" (read, write, readwrite or deny)";
    rule.access = *access;
    rule.filter = rest;
  }
  std::string_view group, inner;
  if (!protocol::is_valid_topic_filter(rule.filter) || protocol::split_shared_filter(rule.filter, group, inner)) {
    return "invalid topic filter \"" + rule.filter + "\"";
  }
  return {};
}

}  // namespace

std::shared_ptr<const AclFile> AclFile::load(const std::string& path, std::string& error,
                                             std::vector<std::string>& warnings) {
  struct stat st {};
  const std::optional<std::string> text = read_text_file(path, "acl_file", error, st);
  if (!text) return nullptr;
  return parse(*text, path, error, warnings);
}

std::shared_ptr<const AclFile> AclFile::parse(std::string_view text, const std::string& name, std::string& error,
                                              std::vector<std::string>& warnings) {
  auto file = std::make_shared<AclFile>();
  std::vector<AclRule>* current = &file->anonymous_;
  size_t number = 0;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = trim(text.substr(0, eol));
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    ++number;
    if (line.empty() || line[0] == '#') continue;
    const std::string where = name + ":" + std::to_string(number) + ": ";
    const std::string_view keyword = take_word(line);
    if (keyword == "user") {
      if (line.empty()) {
        error = where + "user line without a user name.";
        return nullptr;
      }
      current = &file->users_[std::string(line)];
      continue;
    }
    if (keyword != "topic" && keyword != "pattern") {
      error = where + "invalid line \"" + std::string(keyword) + "...\" (topic, pattern, user or # comment).";
      return nullptr;
    }
    AclRule rule;
    if (std::string problem = parse_rule(line, rule); !problem.empty()) {
      error = where + problem + ".";
      return nullptr;
    }
    if (keyword == "pattern") {
      if (rule.filter.find("%c") == std::string::npos && rule.filter.find("%u") == std::string::npos) {
        warnings.push_back("Warning: " + where + "pattern \"" + rule.filter + "\" contains neither %c nor %u.");
      }
      file->patterns_.push_back(std::move(rule));
    } else {
      current->push_back(std::move(rule));
    }
    ++file->lines_;
  }
  deny_first(file->anonymous_);
  deny_first(file->patterns_);
  for (auto& [user, rules] : file->users_) deny_first(rules);
  return file;
}

const std::vector<AclRule>* AclFile::rules_of(const std::string* username) const {
  if (!username) return anonymous_.empty() ? nullptr : &anonymous_;
  auto it = users_.find(*username);
  return it == users_.end() ? nullptr : &it->second;
}

}  // namespace midge::auth
