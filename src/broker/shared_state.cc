#include "broker/shared_state.h"
#include "broker/free_tree.h"

#include <algorithm>
#include <utility>

namespace midge::broker {
namespace {
std::string group_key(const std::string& group, const std::string& filter) {
  std::string key = group;
  key.push_back('\0');
  key += filter;
  return key;
}
}  // namespace

SharedSubscriptions::SharedSubscriptions() : root_(std::make_unique<Node>()) {}

// Frees the filter tree without recursion (a filter may have 32768 levels).
SharedSubscriptions::~SharedSubscriptions() {
  free_tree(std::move(root_));
}

// Round robin from group.next, preferring an online member other than `skip`.
const SharedMember& SharedSubscriptions::choose(Group& group, const std::string* skip) {
  const size_t n = group.members.size();
  const size_t start = group.next.fetch_add(1, std::memory_order_relaxed);
  size_t chosen = start % n;
  for (size_t i = 0; i < n; ++i) {
    const SharedMember& m = group.members[(start + i) % n];
    if (m.online && (!skip || m.client_id != *skip)) {
      chosen = (start + i) % n;
      break;
    }
  }
  return group.members[chosen];
}

SharedSubscriptions::Node* SharedSubscriptions::node_for(std::string_view filter) {
  Node* node = root_.get();
  while (true) {
    const size_t slash = filter.find('/');
    const std::string_view level = filter.substr(0, slash);
    auto it = node->children.find(level);
    if (it == node->children.end()) {
      it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
      it->second->parent = node;
      it->second->level = it->first;
    }
    node = it->second.get();
    if (slash == std::string_view::npos) return node;
    filter.remove_prefix(slash + 1);
  }
}

bool SharedSubscriptions::add(const std::string& group, const std::string& filter,
                              const SharedMember& member, size_t max_groups) {
  std::unique_lock lock(mutex_);
  std::string key = group_key(group, filter);
  auto it = groups_.find(key);
  if (it == groups_.end()) {
    if (groups_.size() >= max_groups) return false;
    auto owned = std::make_unique<Group>();
    owned->key = key;
    node_for(filter)->groups.push_back(owned.get());
    it = groups_.emplace(std::move(key), std::move(owned)).first;
    groups_count_.fetch_add(1, std::memory_order_relaxed);
  }
  Group& g = *it->second;
  SharedMember stored = member;
  stored.group_key = g.key;
  for (SharedMember& m : g.members) {
    if (m.client_id == member.client_id) {
      m = std::move(stored);
      return true;
    }
  }
  g.members.push_back(std::move(stored));
  groups_of_client_[member.client_id].push_back(&g);
  return true;
}

// Takes an empty group out of the filter tree, pruning empty nodes.
void SharedSubscriptions::unlink(Group* group, std::string_view filter) {
  Node* node = root_.get();
  while (node) {
    const size_t slash = filter.find('/');
    auto it = node->children.find(filter.substr(0, slash));
    node = it == node->children.end() ? nullptr : it->second.get();
    if (!node || slash == std::string_view::npos) break;
    filter.remove_prefix(slash + 1);
  }
  if (!node) return;
  std::erase(node->groups, group);
  while (node != root_.get() && node->groups.empty() && node->children.empty()) {
    Node* parent = node->parent;
    parent->children.erase(parent->children.find(node->level));
    node = parent;
  }
}

bool SharedSubscriptions::remove(const std::string& group, const std::string& filter,
                                 const std::string& client_id) {
  std::unique_lock lock(mutex_);
  auto it = groups_.find(group_key(group, filter));
  if (it == groups_.end()) return false;
  Group* g = it->second.get();
  auto& members = g->members;
  auto pos = std::find_if(members.begin(), members.end(),
                          [&](const SharedMember& m) { return m.client_id == client_id; });
  if (pos == members.end()) return false;
  members.erase(pos);
  if (auto mine = groups_of_client_.find(client_id); mine != groups_of_client_.end()) {
    std::erase(mine->second, g);
    if (mine->second.empty()) groups_of_client_.erase(mine);
  }
  if (members.empty()) {
    unlink(g, filter);
    groups_.erase(it);
    groups_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  return true;
}

// Touches only the groups this client belongs to.
void SharedSubscriptions::set_online(const std::string& client_id, bool online) {
  if (empty()) return;
  std::unique_lock lock(mutex_);
  auto mine = groups_of_client_.find(client_id);
  if (mine == groups_of_client_.end()) return;
  for (Group* g : mine->second) {
    for (SharedMember& m : g->members) {
      if (m.client_id == client_id) m.online = online;
    }
  }
}

std::optional<SharedMember> SharedSubscriptions::pick_other(const SharedMember& gone) {
  std::shared_lock lock(mutex_);
  auto it = groups_.find(gone.group_key);
  if (it == groups_.end()) return std::nullopt;
  Group& g = *it->second;
  const SharedMember& m = choose(g, &gone.client_id);
  if (m.client_id == gone.client_id) return std::nullopt;  // the only member left
  return m;
}

}  // namespace midge::broker
