#include "auth/acl_authorizer.h"

#include <array>
#include <optional>
#include <span>

#include "protocol/topic.h"
#include "util/string_hash.h"

namespace midge::auth {

namespace {

using broker::Access;
using broker::Coverage;

uint8_t bit_of(Access access) { return access == Access::kRead ? AclRule::kRead : AclRule::kWrite; }

// The first rule that matches `topic` and denies or grants `bit` decides.
std::optional<bool> decide(std::span<const AclRule> rules, std::string_view topic, uint8_t bit) {
  for (const AclRule& r : rules) {
    if (!protocol::topic_matches(r.filter, topic)) continue;
    if (r.access == AclRule::kDeny) return false;
    if ((r.access & bit) != 0) return true;
  }
  return std::nullopt;
}

// The same decision for every topic of a filter at once, rule by rule: a
// rule that matches all of what is still undecided ends the walk; one that
// matches part of it leaves the answer mixed.
class CoverageWalk {
 public:
  explicit CoverageWalk(std::string_view filter) : filter_(filter) {}
  // True when `rule` decided the rest.
  bool step(const AclRule& rule) {
    const bool allow = rule.access != AclRule::kDeny;
    if (allow && (rule.access & AclRule::kRead) == 0) return false;  // says nothing about reading
    if (!protocol::filters_overlap(rule.filter, filter_)) return false;
    if (protocol::filter_covers(rule.filter, filter_)) {
      result_ = allow ? (partial_ ? Coverage::kSome : Coverage::kAll) : rest_denied();
      return true;
    }
    partial_ = true;
    any_allowed_ = any_allowed_ || allow;
    return false;
  }
  Coverage rest_denied() const { return any_allowed_ ? Coverage::kSome : Coverage::kNone; }
  Coverage result() const { return result_; }

 private:
  std::string_view filter_;
  bool partial_ = false;
  bool any_allowed_ = false;
  Coverage result_ = Coverage::kNone;
};

bool has_wildcard(std::string_view s) { return s.find_first_of("+#") != std::string_view::npos; }

// A pattern with %c and %u replaced; nullopt when it cannot apply to this
// client: %u for an anonymous client, or a value holding '/', which would
// reach into other levels than the pattern names.
std::optional<std::string> substitute(std::string_view pattern, std::string_view client_id,
                                      const std::string* username) {
  std::string out;
  out.reserve(pattern.size() + client_id.size());
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size() && (pattern[i + 1] == 'c' || pattern[i + 1] == 'u')) {
      const bool is_user = pattern[i + 1] == 'u';
      if (is_user && !username) return std::nullopt;
      const std::string_view value = is_user ? std::string_view(*username) : client_id;
      if (value.find('/') != std::string_view::npos) return std::nullopt;
      out.append(value);
      ++i;
      continue;
    }
    out.push_back(pattern[i]);
  }
  return out;
}

class AclClientAccess final : public broker::ClientAccess {
 public:
  AclClientAccess(const AclAuthorizer& owner, std::shared_ptr<const AclFile> file, std::string_view client_id,
                  const std::string* username)
      : owner_(owner), file_(std::move(file)), client_id_(client_id) {
    if (username) username_ = std::make_unique<const std::string>(*username);
    if (const std::vector<AclRule>* rules = file_->rules_of(username_.get())) user_rules_ = *rules;
    if (file_->patterns().empty()) return;
    // As Mosquitto: a '+' or '#' in the name would turn a pattern into a
    // wildcard over other clients' topics, so patterns give such a client
    // nothing at all.
    patterns_refused_ = has_wildcard(client_id_) || (username_ && has_wildcard(*username_));
    if (patterns_refused_) return;
    for (const AclRule& p : file_->patterns()) {
      if (std::optional<std::string> filter = substitute(p.filter, client_id_, username_.get())) {
        patterns_.push_back(AclRule{std::move(*filter), p.access});
      }
    }
  }

  bool allows(std::string_view topic, Access access) override {
    const uint8_t bit = bit_of(access);
    // Long topics are not kept: a client could otherwise make its cache hold
    // 16 topics of 64 KiB each.
    if (user_rules_.size() + patterns_.size() <= kUncachedRules || topic.size() > kMaxCachedTopic) {
      return evaluate(topic, bit);
    }
    Slot& slot = slot_for(topic);
    if ((slot.known & bit) == 0) {
      slot.known |= bit;
      if (evaluate(topic, bit)) slot.allowed |= bit;
    }
    return (slot.allowed & bit) != 0;
  }

  Coverage readable(std::string_view filter) override {
    CoverageWalk walk(filter);
    for (const AclRule& r : user_rules_) {
      if (walk.step(r)) return walk.result();
    }
    if (patterns_refused_) return walk.rest_denied();
    for (const AclRule& r : patterns_) {
      if (walk.step(r)) return walk.result();
    }
    return walk.rest_denied();
  }

  std::unique_ptr<broker::ClientAccess> renewed() const override {
    return owner_.access_for(client_id_, username_.get());
  }

 private:
  // Below this many rules, deciding costs less than the cache lookup.
  static constexpr size_t kUncachedRules = 4;
  static constexpr size_t kMaxCachedTopic = 256;  // bytes: the cache holds at most 16 x 256
  struct Slot {
    std::string topic;
    uint8_t known = 0;  // AclRule bits decided for `topic`
    uint8_t allowed = 0;
  };
  static constexpr size_t kSlots = 16;

  bool evaluate(std::string_view topic, uint8_t bit) const {
    if (std::optional<bool> d = decide(user_rules_, topic, bit)) return *d;
    if (patterns_refused_) return false;
    return decide(patterns_, topic, bit).value_or(false);
  }

  // A direct-mapped cache of decisions by topic (allocated on first use).
  Slot& slot_for(std::string_view topic) {
    if (!cache_) cache_ = std::make_unique<std::array<Slot, kSlots>>();
    Slot& slot = (*cache_)[util::hash_bytes(topic) & (kSlots - 1)];
    if (slot.topic != topic) {
      slot.topic.assign(topic);
      slot.known = 0;
      slot.allowed = 0;
    }
    return slot;
  }

  const AclAuthorizer& owner_;
  std::shared_ptr<const AclFile> file_;  // keeps user_rules_ alive
  std::string client_id_;
  std::unique_ptr<const std::string> username_;
  std::span<const AclRule> user_rules_;
  std::vector<AclRule> patterns_;
  bool patterns_refused_ = false;
  std::unique_ptr<std::array<Slot, kSlots>> cache_;
};

}  // namespace

std::unique_ptr<broker::ClientAccess> AclAuthorizer::access_for(std::string_view client_id,
                                                                const std::string* username) const {
  return std::make_unique<AclClientAccess>(*this, rules_.load(), client_id, username);
}

}  // namespace midge::auth
