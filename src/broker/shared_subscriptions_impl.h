// Template part of SharedSubscriptions (included by shared_state.h).
#pragma once

#include "protocol/topic.h"

namespace midge::broker {

template <typename Visit>
void SharedSubscriptions::pick(std::string_view topic, Visit&& visit) {
  std::lock_guard lock(mutex_);
  for (auto& [key, group] : groups_) {
    if (group.members.empty() || !protocol::topic_matches(group.filter, topic)) continue;
    const size_t n = group.members.size();
    size_t chosen = group.next % n;
    for (size_t i = 0; i < n; ++i) {
      const size_t index = (group.next + i) % n;
      if (group.members[index].online) {
        chosen = index;
        break;
      }
    }
    group.next = chosen + 1;
    visit(group.members[chosen]);
  }
}

}  // namespace midge::broker
