#include "broker/shared_state.h"

#include <algorithm>

namespace midge::broker {
namespace {
std::string group_key(const std::string& group, const std::string& filter) {
  std::string key = group;
  key.push_back('\0');
  key += filter;
  return key;
}
}  // namespace

bool SharedSubscriptions::add(const std::string& group, const std::string& filter,
                              const SharedMember& member) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = groups_.try_emplace(group_key(group, filter));
  if (inserted) {
    it->second.filter = filter;
    groups_count_.fetch_add(1, std::memory_order_relaxed);
  }
  for (SharedMember& m : it->second.members) {
    if (m.client_id == member.client_id) {
      m = member;
      return false;
    }
  }
  it->second.members.push_back(member);
  return true;
}

bool SharedSubscriptions::remove(const std::string& group, const std::string& filter,
                                 const std::string& client_id) {
  std::lock_guard lock(mutex_);
  auto it = groups_.find(group_key(group, filter));
  if (it == groups_.end()) return false;
  auto& members = it->second.members;
  auto pos = std::find_if(members.begin(), members.end(),
                          [&](const SharedMember& m) { return m.client_id == client_id; });
  if (pos == members.end()) return false;
  members.erase(pos);
  if (members.empty()) {
    groups_.erase(it);
    groups_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  return true;
}

void SharedSubscriptions::set_online(const std::string& client_id, bool online) {
  if (empty()) return;
  std::lock_guard lock(mutex_);
  for (auto& [key, group] : groups_) {
    for (SharedMember& m : group.members) {
      if (m.client_id == client_id) m.online = online;
    }
  }
}

}  // namespace midge::broker
