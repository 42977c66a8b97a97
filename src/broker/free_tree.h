// Frees a tree of nodes owned through `children` maps without recursion: a
// topic or filter may have 32768 levels (review M9), too deep for the stack.
// Used by the destructors of TopicTree, RetainedStore and SharedSubscriptions.
#pragma once

#include <memory>
#include <utility>
#include <vector>

namespace midge::broker {

template <typename Node>
void free_tree(std::unique_ptr<Node> root) {
  std::vector<std::unique_ptr<Node>> stack;
  if (root) stack.push_back(std::move(root));
  while (!stack.empty()) {
    std::unique_ptr<Node> node = std::move(stack.back());
    stack.pop_back();
    for (auto& [level, child] : node->children) {
      if (child) stack.push_back(std::move(child));
    }
  }
}

}  // namespace midge::broker
