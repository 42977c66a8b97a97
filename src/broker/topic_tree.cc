#include "broker/topic_tree.h"

#include <algorithm>

namespace midge::broker {

TopicTree::TopicTree() : root_(std::make_unique<Node>()) {}
TopicTree::~TopicTree() = default;

bool TopicTree::subscribe(std::string_view filter, const SubscriptionEntry& entry) {
  Node* node = root_.get();
  while (true) {
    const size_t slash = filter.find('/');
    const std::string_view level = filter.substr(0, slash);
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
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
      existing = entry;
      return false;
    }
  }
  node->entries.push_back(entry);
  ++count_;
  return true;
}

bool TopicTree::unsubscribe(std::string_view filter, const Session* session) {
  return remove(*root_, filter, session);
}

// Removes the entry and prunes nodes left empty on the way back up.
bool TopicTree::remove(Node& node, std::string_view rest, const Session* session) {
  const size_t slash = rest.find('/');
  const std::string_view level = rest.substr(0, slash);
  auto it = node.children.find(level);
  if (it == node.children.end()) return false;
  Node& child = *it->second;
  bool removed = false;
  if (slash == std::string_view::npos) {
    auto pos = std::find_if(child.entries.begin(), child.entries.end(),
                            [&](const SubscriptionEntry& e) { return e.session == session; });
    if (pos != child.entries.end()) {
      *pos = child.entries.back();
      child.entries.pop_back();
      --count_;
      removed = true;
    }
  } else {
    removed = remove(child, rest.substr(slash + 1), session);
  }
  if (child.empty()) {
    if (level == "+") node.plus = nullptr;
    if (level == "#") node.hash = nullptr;
    node.children.erase(it);
    ++generation_;
  }
  return removed;
}

void TopicTree::match_level(const Node& node, std::string_view rest, int depth, bool dollar,
                            Reached& out) {
  // '$' topics are not matched by a leading wildcard [MQTT-4.7.2-1].
  const bool wild_ok = !(depth == 0 && dollar);
  // "a/#" also matches "a" [MQTT-4.7.1-2]: '#' at this node matches the
  // parent level and everything below.
  if (node.hash && wild_ok) out.push_back(node.hash);
  const size_t slash = rest.find('/');
  const std::string_view level = rest.substr(0, slash);
  const bool last = slash == std::string_view::npos;
  const std::string_view next = last ? std::string_view{} : rest.substr(slash + 1);
  if (auto it = node.children.find(level); it != node.children.end()) {
    descend(*it->second, next, last, depth, dollar, out);
  }
  if (node.plus && wild_ok) descend(*node.plus, next, last, depth, dollar, out);
}

void TopicTree::descend(const Node& child, std::string_view next, bool last, int depth,
                        bool dollar, Reached& out) {
  if (last) {
    out.push_back(&child);
    if (child.hash) out.push_back(child.hash);
  } else {
    match_level(child, next, depth + 1, dollar, out);
  }
}

}  // namespace midge::broker
