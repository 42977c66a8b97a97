// The subscription tree of one worker: topic filters split into levels, each
// node holding the subscriptions that end there. Owned by one worker thread
// (no locks): a worker only holds the subscriptions of its own sessions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/packets.h"
#include "util/string_hash.h"

namespace midge::broker {

struct Session;

struct SubscriptionEntry {
  Session* session = nullptr;
  protocol::SubscribeOptions options;
  uint32_t subscription_id = 0;  // 0 = none
};

class TopicTree {
 public:
  TopicTree();
  ~TopicTree();
  TopicTree(const TopicTree&) = delete;
  TopicTree& operator=(const TopicTree&) = delete;

  // Adds or replaces `session`'s subscription to `filter` [MQTT-3.8.4-3].
  // Returns true when it is new.
  bool subscribe(std::string_view filter, const SubscriptionEntry& entry);
  // Returns true when the subscription existed.
  bool unsubscribe(std::string_view filter, const Session* session);

  // Calls visit(const SubscriptionEntry&) for every subscription matching
  // the topic name, per MQTT 4.7 ('$' topics are not matched by a leading
  // wildcard [MQTT-4.7.2-1]).
  template <typename Visit>
  void match(std::string_view topic, Visit&& visit) const {
    const bool dollar = !topic.empty() && topic.front() == '$';
    match_level(*root_, topic, 0, dollar, visit);
  }

  size_t size() const { return count_; }

 private:
  struct Node {
    util::StringMap<std::unique_ptr<Node>> children;
    std::vector<SubscriptionEntry> entries;
    Node* plus = nullptr;   // cached children["+"]
    Node* hash = nullptr;   // cached children["#"]
    bool empty() const { return children.empty() && entries.empty(); }
  };

  template <typename Visit>
  static void visit_entries(const Node& node, Visit& visit) {
    for (const SubscriptionEntry& e : node.entries) visit(e);
  }

  // `rest` is the remainder of the topic after the levels already matched.
  template <typename Visit>
  static void match_level(const Node& node, std::string_view rest, int depth, bool dollar,
                          Visit& visit) {
    const bool wild_ok = !(depth == 0 && dollar);
    // "a/#" also matches "a" [MQTT-4.7.1-2]: '#' at this node matches the
    // parent level and everything below.
    if (node.hash && wild_ok) visit_entries(*node.hash, visit);
    const size_t slash = rest.find('/');
    const std::string_view level = rest.substr(0, slash);
    const bool last = slash == std::string_view::npos;
    const std::string_view next = last ? std::string_view{} : rest.substr(slash + 1);
    if (auto it = node.children.find(level); it != node.children.end()) {
      descend(*it->second, next, last, depth, dollar, visit);
    }
    if (node.plus && wild_ok) descend(*node.plus, next, last, depth, dollar, visit);
  }

  template <typename Visit>
  static void descend(const Node& child, std::string_view next, bool last, int depth, bool dollar,
                      Visit& visit) {
    if (last) {
      visit_entries(child, visit);
      if (child.hash) visit_entries(*child.hash, visit);
    } else {
      match_level(child, next, depth + 1, dollar, visit);
    }
  }

  bool remove(Node& node, std::string_view rest, const Session* session);

  std::unique_ptr<Node> root_;
  size_t count_ = 0;
};

}  // namespace midge::broker
