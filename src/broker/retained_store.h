// Retained messages, shared by all workers. Written by whichever worker
// receives a retained PUBLISH, read when a subscription is made. Guarded by a
// reader/writer lock: retained traffic is rare next to ordinary publishes,
// and no ordinary publish takes this lock.
#pragma once

#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "broker/message.h"

namespace midge::broker {

class RetainedStore {
 public:
  RetainedStore();
  ~RetainedStore();

  // Stores `message` under its topic, or removes the topic's retained
  // message when the payload is empty [MQTT-3.3.1-6], [MQTT-3.3.1-7].
  void put(const MessagePtr& message);

  // Calls visit(MessagePtr) for every retained message matching `filter`
  // (a valid, non-shared topic filter). Expired messages are skipped and
  // not removed (removal happens in `expire`).
  void match(std::string_view filter, TimePoint now,
             const std::function<void(const MessagePtr&)>& visit) const;

  size_t count() const;
  size_t bytes() const;

 private:
  struct Node {
    std::unordered_map<std::string, std::unique_ptr<Node>> children;
    MessagePtr message;
  };
  void walk(const Node& node, std::string_view rest, int depth, TimePoint now,
            const std::function<void(const MessagePtr&)>& visit) const;
  void walk_all(const Node& node, int depth, TimePoint now,
                const std::function<void(const MessagePtr&)>& visit) const;

  mutable std::shared_mutex mutex_;
  std::unique_ptr<Node> root_;  // guarded by mutex_
  size_t count_ = 0;            // guarded by mutex_
  size_t bytes_ = 0;            // guarded by mutex_
};

}  // namespace midge::broker
