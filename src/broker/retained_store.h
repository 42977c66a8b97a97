// Retained messages, shared by all workers. Written by whichever worker
// receives a retained PUBLISH, read when a subscription is made. Guarded by a
// reader/writer lock: retained traffic is rare next to ordinary publishes,
// and no ordinary publish takes this lock.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "broker/authorizer.h"
#include "broker/message.h"
#include "util/string_hash.h"

namespace midge::broker {

// Who published a retained message, kept with check_retain_source so that
// its write access can be checked again when the message is sent.
struct RetainSource {
  std::unique_ptr<const std::string> username;  // null: anonymous
  const Authorizer* authorizer = nullptr;       // its rules (they live as long as the broker)
  // per_listener_settings: the port of the listener whose rules those are
  // (kept in the store, so that a restart finds them again); 0: the broker's.
  uint16_t listener_port = 0;
};

class RetainedStore {
 public:
  using Visit = std::function<bool(const MessagePtr&, const RetainSource*)>;

  RetainedStore();
  ~RetainedStore();

  // Stores `message` under its topic, or removes the topic's retained
  // message when the payload is empty [MQTT-3.3.1-6], [MQTT-3.3.1-7].
  // `source`: null unless check_retain_source asks for it.
  void put(const MessagePtr& message, std::shared_ptr<const RetainSource> source = nullptr);

  // Calls visit(MessagePtr) for every retained message matching `filter`
  // (a valid, non-shared topic filter) until it returns false. Expired
  // messages are skipped here and removed by `expire`. Returns the stamp
  // of the last message stored before this walk (Message::retain_stamp):
  // every message with a stamp up to it that was still retained was visited.
  uint64_t match(std::string_view filter, TimePoint now, const Visit& visit) const;

  // Removes the messages whose expiry interval has passed [MQTT-3.3.2-5].
  // Cheap when nothing is due (no lock).
  // `removed` (optional) sees each message before it goes.
  void expire(TimePoint now, const std::function<void(const Message&)>& removed = nullptr);

  size_t count() const;
  size_t bytes() const;

 private:
  struct Node;
  // Deadlines of the retained messages with an expiry interval; each Node
  // holds the iterator of its own entry, so an overwritten message leaves
  // nothing behind.
  using Deadlines = std::multimap<TimePoint, Node*>;
  struct Node {
    util::StringMap<std::unique_ptr<Node>> children;
    MessagePtr message;
    std::shared_ptr<const RetainSource> source;
    Node* parent = nullptr;
    std::string_view level;  // this node's key in parent->children
    Deadlines::iterator deadline;
    bool has_deadline = false;
  };
  void clear_message(Node& node);
  void prune(Node* node);
  void walk(std::string_view filter, TimePoint now, const Visit& visit) const;

  mutable std::shared_mutex mutex_;
  std::unique_ptr<Node> root_;  // guarded by mutex_
  Deadlines deadlines_;         // guarded by mutex_
  std::atomic<TimePoint::rep> next_deadline_;
  size_t count_ = 0;            // guarded by mutex_
  uint64_t stamp_ = 0;          // guarded by mutex_: the last Message::retain_stamp
  size_t bytes_ = 0;            // guarded by mutex_
};

}  // namespace midge::broker
