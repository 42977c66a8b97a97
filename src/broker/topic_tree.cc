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
  }
  return removed;
}

}  // namespace midge::broker
