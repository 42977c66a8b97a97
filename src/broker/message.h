// An application message as routed by the broker: immutable once published
// and shared by every subscriber it is delivered to, across workers.
//
// One allocation per message: the Message header and its bytes (topic,
// payload, pre-encoded v5 properties, publisher id) live in a single block,
// reference-counted in place (MessagePtr). std::make_shared plus the
// strings took three allocations per message on the publish path.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "broker/input_block.h"
#include "util/time.h"

namespace midge::broker {

class Message;

// Intrusive, thread-safe reference to a const Message.
class MessagePtr {
 public:
  MessagePtr() = default;
  MessagePtr(std::nullptr_t) {}  // NOLINT(google-explicit-constructor)
  MessagePtr(const MessagePtr& o) : m_(o.m_) { retain(); }
  MessagePtr(MessagePtr&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  MessagePtr& operator=(const MessagePtr& o) {
    MessagePtr copy(o);
    std::swap(m_, copy.m_);
    return *this;
  }
  MessagePtr& operator=(MessagePtr&& o) noexcept {
    MessagePtr moved(std::move(o));
    std::swap(m_, moved.m_);
    return *this;
  }
  ~MessagePtr() { release(); }

  const Message* get() const { return m_; }
  const Message& operator*() const { return *m_; }
  const Message* operator->() const { return m_; }
  explicit operator bool() const { return m_ != nullptr; }
  void reset() { MessagePtr().swap(*this); }
  void swap(MessagePtr& o) noexcept { std::swap(m_, o.m_); }
  bool operator==(const MessagePtr& o) const { return m_ == o.m_; }

 private:
  friend class Message;
  explicit MessagePtr(Message* m) : m_(m) {}  // adopts one reference
  inline void retain() const;
  inline void release();
  Message* m_ = nullptr;
};

struct MessageFields {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  // v5 properties forwarded unchanged, pre-encoded once
  // (protocol::encode_pass_through_properties).
  std::string_view pass_through;
  // Absolute expiry from the v5 Message Expiry Interval; none = never.
  std::optional<TimePoint> expires_at;
  // Publishing client, for v5 No Local [MQTT-3.8.3-3]; empty for the broker.
  std::string_view origin_client_id;
};

class Message {
 public:
  static MessagePtr create(const MessageFields& fields);
  // The same, except that the payload is not copied: it stays where it
  // lies, inside `block` (block.contains(fields.payload)), which the
  // message holds until it is freed.
  static MessagePtr create_borrowed(const MessageFields& fields, const InputBlock& block);
  // One more reference to this message (alive, held by a MessagePtr).
  MessagePtr share() const {
    refs_.fetch_add(1, std::memory_order_relaxed);
    return MessagePtr(const_cast<Message*>(this));
  }

  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  // Its deliveries deferred by its publisher's worker and not yet written
  // or acknowledged (Broker::defer_delivery; only that worker touches it).
  mutable uint32_t deferred_copies = 0;
  std::string_view pass_through;
  std::optional<TimePoint> expires_at;
  std::string_view origin_client_id;
  // Set by RetainedStore::put, under its lock, before the message reaches
  // another thread: the order in which retained messages were stored
  // (SubscriptionEntry::replayed_through); 0 for a message never retained.
  uint64_t retain_stamp = 0;

  // Bytes of its own allocation (a borrowed payload lies in its block).
  size_t footprint() const {
    return sizeof(Message) + topic.size() + (backing_ ? 0 : payload.size()) + pass_through.size() +
           origin_client_id.size();
  }
  // The input block its payload lies in; null when the message holds it.
  const InputBlock* backing() const { return backing_; }
  bool expired(TimePoint now) const { return expires_at && *expires_at <= now; }

 private:
  friend class MessagePtr;
  Message() = default;
  static void destroy(Message* m);
  static MessagePtr place(const MessageFields& fields, const InputBlock* block);
  const InputBlock* backing_ = nullptr;
  mutable std::atomic<uint32_t> refs_{1};
};

inline void MessagePtr::retain() const {
  if (m_) m_->refs_.fetch_add(1, std::memory_order_relaxed);
}

inline void MessagePtr::release() {
  if (m_ && m_->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) Message::destroy(m_);
  m_ = nullptr;
}

}  // namespace midge::broker
