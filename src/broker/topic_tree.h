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
  // The session's ACL lets it read only part of what the filter matches:
  // each delivery asks Session::access (Coverage::kSome).
  bool check_read = false;
  // The retained store's stamp when this subscription's retained messages
  // were replayed (RetainedStore::match; 0: never). A retained message put
  // before then (Message::retain_stamp at most this) was in that replay, so
  // its live copy, still on its way from another worker, is not delivered
  // again (Broker::route).
  uint64_t replayed_through = 0;
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
  // `session`'s subscription to `filter`, or null; valid until the tree changes.
  SubscriptionEntry* entry(std::string_view filter, const Session* session);

  // Calls visit(const SubscriptionEntry&) for every subscription matching
  // the topic name, per MQTT 4.7 ('$' topics are not matched by a leading
  // wildcard [MQTT-4.7.2-1]).
  //
  // The nodes a topic reaches are remembered (a direct-mapped cache keyed
  // by the whole topic), so a topic published again costs one hash instead
  // of one lookup per level. Nodes are created and removed only by
  // subscribe/unsubscribe, which invalidate the cache; entries are read
  // live, so a subscription added to an existing node needs no invalidation.
  template <typename Visit>
  void match(std::string_view topic, Visit&& visit) {
    if (cache_.empty()) cache_.resize(kCacheSlots);
    const uint64_t h = util::hash_bytes(topic);
    CachedMatch& slot = cache_[h & (kCacheSlots - 1)];
    if (slot.generation != generation_ || slot.topic != topic) {
      slot.nodes.clear();
      collect(topic, slot.nodes);
      slot.topic.assign(topic);
      slot.generation = generation_;
    }
    for (const Node* node : slot.nodes) {
      for (const SubscriptionEntry& e : node->entries) visit(e);
    }
  }
  size_t size() const { return count_; }

 private:
  struct Node {
    util::StringMap<std::unique_ptr<Node>> children;
    std::vector<SubscriptionEntry> entries;
    Node* plus = nullptr;   // cached children["+"]
    Node* hash = nullptr;   // cached children["#"]
    Node* parent = nullptr;
    std::string_view level;  // this node's key in parent->children
    bool empty() const { return children.empty() && entries.empty(); }
  };

  using Reached = std::vector<const Node*>;

  // Appends every node whose subscriptions match `topic` to `out`. Uses an
  // explicit stack: a topic may have 32768 levels (no recursion whose depth
  // a client controls).
  void collect(std::string_view topic, Reached& out);
  Node* find(std::string_view filter) const;
  void prune(Node* node);

  struct CachedMatch {
    std::string topic;
    uint64_t generation = 0;
    Reached nodes;
  };
  static constexpr size_t kCacheSlots = 1024;

  std::unique_ptr<Node> root_;
  size_t count_ = 0;
  uint64_t generation_ = 1;  // bumped when a node is created or removed
  std::vector<CachedMatch> cache_;  // allocated on first match
  struct Pending {
    const Node* node;
    std::string_view rest;
    bool top;
  };
  std::vector<Pending> stack_;  // scratch for collect()
};

}  // namespace midge::broker
