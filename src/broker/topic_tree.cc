#include "broker/topic_tree.h"
#include "broker/free_tree.h"

#include <algorithm>
#include <utility>

namespace midge::broker {

TopicTree::TopicTree() : root_(std::make_unique<Node>()) {}

// Frees the tree without recursion: a filter may have 32768 levels.
TopicTree::~TopicTree() {
  free_tree(std::move(root_));
}

bool TopicTree::subscribe(std::string_view filter, const SubscriptionEntry& entry) {
  Node* node = root_.get();
  while (true) {
    const size_t slash = filter.find('/');
    const std::string_view level = filter.substr(0, slash);
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
      it->second->parent = node;
      it->second->level = it->first;
      ++generation_;
      if (level == "+") node->plus = it->second.get();
      if (level == "#") node->hash = it->second.get();
    }
    node = it->second.get();
    if (slash == std::string_view::npos) break;
    filter.remove_prefix(slash + 1);
  }
  for (SubscriptionEntry& existing : node->entries) {
    if (existing.session == entry.session) {
      const uint64_t replayed = existing.replayed_through;  // its replay's live copies may still come
      existing = entry;
      existing.replayed_through = std::max(replayed, entry.replayed_through);
      return false;
    }
  }
  node->entries.push_back(entry);
  ++count_;
  return true;
}

TopicTree::Node* TopicTree::find(std::string_view filter) const {
  Node* node = root_.get();
  while (true) {
    const size_t slash = filter.find('/');
    auto it = node->children.find(filter.substr(0, slash));
    if (it == node->children.end()) return nullptr;
    node = it->second.get();
    if (slash == std::string_view::npos) return node;
    filter.remove_prefix(slash + 1);
  }
}

SubscriptionEntry* TopicTree::entry(std::string_view filter, const Session* session) {
  Node* node = find(filter);
  if (!node) return nullptr;
  for (SubscriptionEntry& e : node->entries) {
    if (e.session == session) return &e;
  }
  return nullptr;
}

bool TopicTree::unsubscribe(std::string_view filter, const Session* session) {
  Node* node = find(filter);
  if (!node) return false;
  auto pos = std::find_if(node->entries.begin(), node->entries.end(),
                          [&](const SubscriptionEntry& e) { return e.session == session; });
  if (pos == node->entries.end()) return false;
  *pos = node->entries.back();
  node->entries.pop_back();
  --count_;
  prune(node);
  return true;
}

// Removes `node` and its ancestors while they are empty.
void TopicTree::prune(Node* node) {
  while (node != root_.get() && node->empty()) {
    Node* parent = node->parent;
    if (parent->plus == node) parent->plus = nullptr;
    if (parent->hash == node) parent->hash = nullptr;
    parent->children.erase(parent->children.find(node->level));
    ++generation_;
    node = parent;
  }
}

void TopicTree::collect(std::string_view topic, Reached& out) {
  // '$' topics are not matched by a leading wildcard [MQTT-4.7.2-1].
  const bool dollar = !topic.empty() && topic.front() == '$';
  stack_.clear();
  stack_.push_back({root_.get(), topic, true});
  while (!stack_.empty()) {
    const Pending p = stack_.back();
    stack_.pop_back();
    const bool wild_ok = !(p.top && dollar);
    // "a/#" also matches "a" [MQTT-4.7.1-2]: '#' at this node matches the
    // parent level and everything below.
    if (p.node->hash && wild_ok) out.push_back(p.node->hash);
    const size_t slash = p.rest.find('/');
    const bool last = slash == std::string_view::npos;
    const std::string_view next = last ? std::string_view{} : p.rest.substr(slash + 1);
    auto it = p.node->children.find(p.rest.substr(0, slash));
    const Node* exact = it == p.node->children.end() ? nullptr : it->second.get();
    const Node* plus = wild_ok ? p.node->plus : nullptr;
    // The exact level first, then '+', as a recursive walk would.
    if (last) {
      for (const Node* child : {exact, plus}) {
        if (!child) continue;
        out.push_back(child);
        if (child->hash) out.push_back(child->hash);
      }
    } else {
      if (plus) stack_.push_back({plus, next, false});
      if (exact) stack_.push_back({exact, next, false});
    }
  }
}

}  // namespace midge::broker
