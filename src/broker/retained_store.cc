#include "broker/retained_store.h"
#include "broker/free_tree.h"

#include <limits>
#include <mutex>
#include <utility>
#include <vector>

namespace midge::broker {
namespace {
constexpr TimePoint::rep kNoDeadline = std::numeric_limits<TimePoint::rep>::max();
}

RetainedStore::RetainedStore() : root_(std::make_unique<Node>()), next_deadline_(kNoDeadline) {}

// Frees the tree without recursion: a topic may have 32768 levels.
RetainedStore::~RetainedStore() {
  free_tree(std::move(root_));
}

void RetainedStore::put(const MessagePtr& message, std::shared_ptr<const RetainSource> source) {
  std::unique_lock lock(mutex_);
  Node* node = root_.get();
  std::string_view rest = message->topic;
  const bool removing = message->payload.empty();
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view level = rest.substr(0, slash);
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      if (removing) return;  // nothing retained there
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
      it->second->parent = node;
      it->second->level = it->first;
    }
    node = it->second.get();
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  clear_message(*node);
  if (removing) {
    prune(node);
    return;
  }
  // The only writer: the publishing worker has not handed it on yet.
  const_cast<Message*>(message.get())->retain_stamp = ++stamp_;
  node->message = message;
  node->source = std::move(source);
  ++count_;
  bytes_ += message->payload.size();
  if (message->expires_at) {
    node->deadline = deadlines_.emplace(*message->expires_at, node);
    node->has_deadline = true;
    next_deadline_.store(deadlines_.begin()->first.time_since_epoch().count(),
                         std::memory_order_relaxed);
  }
}

void RetainedStore::clear_message(Node& node) {
  if (!node.message) return;
  --count_;
  bytes_ -= node.message->payload.size();
  node.message.reset();
  node.source.reset();
  if (node.has_deadline) {
    deadlines_.erase(node.deadline);
    node.has_deadline = false;
  }
}

// Removes `node` and its ancestors while they hold nothing.
void RetainedStore::prune(Node* node) {
  while (node != root_.get() && !node->message && node->children.empty()) {
    Node* parent = node->parent;
    parent->children.erase(parent->children.find(node->level));
    node = parent;
  }
}

void RetainedStore::expire(TimePoint now, const std::function<void(const Message&)>& removed) {
  if (next_deadline_.load(std::memory_order_relaxed) > now.time_since_epoch().count()) return;
  std::unique_lock lock(mutex_);
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    Node* node = deadlines_.begin()->second;
    if (removed) removed(*node->message);
    clear_message(*node);  // erases the deadline too
    prune(node);
  }
  next_deadline_.store(deadlines_.empty() ? kNoDeadline
                                          : deadlines_.begin()->first.time_since_epoch().count(),
                       std::memory_order_relaxed);
}

uint64_t RetainedStore::match(std::string_view filter, TimePoint now, const Visit& visit) const {
  std::shared_lock lock(mutex_);
  walk(filter, now, visit);
  return stamp_;
}

// Iterative (a filter may have 32768 levels): a stack of nodes with the part
// of the filter still to match; an empty optional rest means "everything
// below" (after '#').
void RetainedStore::walk(std::string_view filter, TimePoint now, const Visit& visit) const {
  struct Step {
    const Node* node;
    std::string_view rest;
    bool all;  // matching everything below `node` (after '#')
    bool top;  // `node` is the root
  };
  auto live = [now](const Node& n) { return n.message && !n.message->expired(now); };
  std::vector<Step> stack{{root_.get(), filter, false, true}};
  while (!stack.empty()) {
    const Step step = stack.back();
    stack.pop_back();
    const Node& node = *step.node;
    if (step.all) {
      for (const auto& [name, child] : node.children) {
        if (step.top && !name.empty() && name.front() == '$') continue;  // [MQTT-4.7.2-1]
        if (live(*child) && !visit(child->message, child->source.get())) return;
        stack.push_back({child.get(), {}, true, false});
      }
      continue;
    }
    const size_t slash = step.rest.find('/');
    const std::string_view level = step.rest.substr(0, slash);
    const bool last = slash == std::string_view::npos;
    const std::string_view next = last ? std::string_view{} : step.rest.substr(slash + 1);
    if (level == "#") {
      // "a/#" matches "a" itself [MQTT-4.7.1-2] and everything below it.
      if (!step.top && live(node) && !visit(node.message, node.source.get())) return;
      stack.push_back({&node, {}, true, step.top});
      continue;
    }
    auto enter = [&](const Node& child) {
      if (!last) {
        stack.push_back({&child, next, false, false});
        return true;
      }
      return !live(child) || visit(child.message, child.source.get());
    };
    if (level == "+") {
      for (const auto& [name, child] : node.children) {
        if (step.top && !name.empty() && name.front() == '$') continue;  // [MQTT-4.7.2-1]
        if (!enter(*child)) return;
      }
    } else if (auto it = node.children.find(level); it != node.children.end()) {
      if (!enter(*it->second)) return;
    }
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
