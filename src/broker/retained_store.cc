#include "broker/retained_store.h"

#include <mutex>
#include <vector>

namespace midge::broker {

RetainedStore::RetainedStore() : root_(std::make_unique<Node>()) {}
RetainedStore::~RetainedStore() = default;

void RetainedStore::put(const MessagePtr& message) {
  std::unique_lock lock(mutex_);
  std::vector<std::pair<Node*, std::string>> path;
  Node* node = root_.get();
  std::string_view rest = message->topic;
  const bool removing = message->payload.empty();
  while (true) {
    const size_t slash = rest.find('/');
    std::string level(rest.substr(0, slash));
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      if (removing) return;  // nothing retained there
      it = node->children.emplace(level, std::make_unique<Node>()).first;
    }
    path.emplace_back(node, std::move(level));
    node = it->second.get();
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (node->message) {
    --count_;
    bytes_ -= node->message->payload.size();
  }
  if (removing) {
    node->message.reset();
    // prune empty nodes bottom-up
    for (auto it = path.rbegin(); it != path.rend(); ++it) {
      auto child = it->first->children.find(it->second);
      if (child->second->message || !child->second->children.empty()) break;
      it->first->children.erase(child);
    }
    return;
  }
  node->message = message;
  ++count_;
  bytes_ += message->payload.size();
}

void RetainedStore::match(std::string_view filter, TimePoint now,
                          const std::function<void(const MessagePtr&)>& visit) const {
  std::shared_lock lock(mutex_);
  walk(*root_, filter, 0, now, visit);
}

void RetainedStore::walk(const Node& node, std::string_view rest, int depth, TimePoint now,
                         const std::function<void(const MessagePtr&)>& visit) const {
  const size_t slash = rest.find('/');
  const std::string_view level = rest.substr(0, slash);
  const bool last = slash == std::string_view::npos;
  const std::string_view next = last ? std::string_view{} : rest.substr(slash + 1);
  if (level == "#") {
    // "a/#" matches "a" itself [MQTT-4.7.1-2] and everything below it.
    if (depth > 0 && node.message && !node.message->expired(now)) visit(node.message);
    walk_all(node, depth, now, visit);
    return;
  }
  auto step = [&](const Node& child) {
    if (last) {
      if (child.message && !child.message->expired(now)) visit(child.message);
    } else {
      walk(child, next, depth + 1, now, visit);
    }
  };
  if (level == "+") {
    for (const auto& [name, child] : node.children) {
      if (depth == 0 && !name.empty() && name.front() == '$') continue;  // [MQTT-4.7.2-1]
      step(*child);
    }
    return;
  }
  auto it = node.children.find(std::string(level));
  if (it != node.children.end()) step(*it->second);
}

void RetainedStore::walk_all(const Node& node, int depth, TimePoint now,
                             const std::function<void(const MessagePtr&)>& visit) const {
  for (const auto& [name, child] : node.children) {
    if (depth == 0 && !name.empty() && name.front() == '$') continue;  // [MQTT-4.7.2-1]
    if (child->message && !child->message->expired(now)) visit(child->message);
    walk_all(*child, depth + 1, now, visit);
  }
}

size_t RetainedStore::count() const {
  std::shared_lock lock(mutex_);
  return count_;
}

size_t RetainedStore::bytes() const {
  std::shared_lock lock(mutex_);
  return bytes_;
}

}  // namespace midge::broker
