// Template part of SharedSubscriptions (included by shared_state.h).
#pragma once

#include <mutex>
#include <shared_mutex>
#include <vector>

#include "protocol/topic.h"

namespace midge::broker {

// Visits the groups whose filter matches `topic`, walking the filter tree
// with an explicit stack (a topic may have 32768 levels).
template <typename Visit>
void SharedSubscriptions::match(std::string_view topic, Visit&& visit) const {
  struct Step {
    const Node* node;
    std::string_view rest;
    bool top;
  };
  const bool dollar = !topic.empty() && topic.front() == '$';
  std::vector<Step> stack{{root_.get(), topic, true}};
  while (!stack.empty()) {
    const Step step = stack.back();
    stack.pop_back();
    const bool wild_ok = !(step.top && dollar);  // [MQTT-4.7.2-1]
    const size_t slash = step.rest.find('/');
    const bool last = slash == std::string_view::npos;
    const std::string_view next = last ? std::string_view{} : step.rest.substr(slash + 1);
    auto child = [&](std::string_view level) -> const Node* {
      auto it = step.node->children.find(level);
      return it == step.node->children.end() ? nullptr : it->second.get();
    };
    // "a/#" also matches "a" [MQTT-4.7.1-2].
    if (const Node* hash = wild_ok ? child("#") : nullptr) {
      for (Group* g : hash->groups) visit(*g);
    }
    const Node* exact = child(step.rest.substr(0, slash));
    const Node* plus = wild_ok ? child("+") : nullptr;
    for (const Node* n : {exact, plus}) {
      if (!n) continue;
      if (!last) {
        stack.push_back({n, next, false});
        continue;
      }
      for (Group* g : n->groups) visit(*g);
      auto below = n->children.find("#");
      if (below != n->children.end()) {
        for (Group* g : below->second->groups) visit(*g);
      }
    }
  }
}

template <typename Visit>
void SharedSubscriptions::pick(std::string_view topic, Visit&& visit) {
  std::shared_lock lock(mutex_);
  match(topic, [&](Group& group) {
    if (!group.members.empty()) visit(choose(group, nullptr));
  });
}

}  // namespace midge::broker
