// Test doubles for the broker's outputs: a Link that records the bytes the
// broker writes (decoded back into packets with the real codec) and its
// close() calls, and a Router that records what leaves the worker.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker/broker.h"
#include "protocol/codec.h"

namespace midge::broker::fakes {

class FakeLink : public Link {
 public:
  std::string& out() override { return out_; }
  void commit() override { ++commits; }
  size_t pending_bytes() const override { return track_output ? out_.size() : pending; }
  void close() override { ++closes; }

  // Decodes and removes every packet written since the last call, with the
  // version the broker set on this link.
  std::vector<protocol::Packet> take() {
    std::vector<protocol::Packet> packets;
    std::string_view data = out_;
    while (!data.empty()) {
      protocol::Packet packet;
      const protocol::DecodeResult r = protocol::decode(data, version, packet);
      if (r.status != protocol::DecodeStatus::kPacket) {
        ADD_FAILURE() << "broker wrote bytes that do not decode: " << r.message;
        break;
      }
      packets.push_back(std::move(packet));
      data.remove_prefix(r.consumed);
    }
    out_.clear();
    return packets;
  }

  std::string out_;
  size_t pending = 0;  // what pending_bytes() reports
  bool track_output = false;  // report the bytes not yet taken instead
  int commits = 0;
  int closes = 0;
};

class FakeRouter : public Router {
 public:
  bool broadcast(const MessagePtr& message, bool /*durable*/) override {
    broadcasts.push_back(message);
    return false;  // no other worker has subscribers
  }
  void deliver_shared(const SharedMember& member, const MessagePtr& message, bool) override {
    shared.push_back({member, message});
  }

  struct Shared {
    SharedMember member;
    MessagePtr message;
  };
  std::vector<MessagePtr> broadcasts;
  std::vector<Shared> shared;
};

// A Journal that records each call as a line ("put_delivery c 3 m1") and
// commits by moving the lines to `committed`; `fail` makes commits fail.
class FakeJournal : public Journal {
 public:
  void put_retained(const Message& m, const RetainSource*) override {
    log("put_retained " + std::string(m.topic) + " " + std::string(m.payload));
  }
  void erase_retained(std::string_view topic) override { log("erase_retained " + std::string(topic)); }
  void put_session(const Session& s, unsigned worker) override {
    log("put_session " + s.client_id + (s.link ? " online" : " offline") + " w" + std::to_string(worker));
  }
  void erase_session(std::string_view id) override { log("erase_session " + std::string(id)); }
  void put_subscription(std::string_view id, std::string_view filter, const SessionSubscription& s) override {
    log("put_subscription " + std::string(id) + " " + std::string(filter) + " q" + std::to_string(s.options.max_qos));
  }
  void erase_subscription(std::string_view id, std::string_view filter) override {
    log("erase_subscription " + std::string(id) + " " + std::string(filter));
  }
  void put_delivery(std::string_view id, uint64_t seq, const Delivery& d, uint16_t packet_id) override {
    log("put_delivery " + std::string(id) + " " + std::to_string(seq) + " " + std::string(d.message->payload) +
        (packet_id ? " id" + std::to_string(packet_id) : ""));
  }
  void put_inflight(std::string_view id, uint64_t seq, uint16_t packet_id, bool released) override {
    log("put_inflight " + std::string(id) + " " + std::to_string(seq) + " id" + std::to_string(packet_id) +
        (released ? " released" : ""));
  }
  void erase_delivery_message(std::string_view id, uint64_t seq) override {
    log("erase_delivery_message " + std::string(id) + " " + std::to_string(seq));
  }
  void erase_delivery(std::string_view id, uint64_t seq, bool with_state) override {
    log("erase_delivery " + std::string(id) + " " + std::to_string(seq) + (with_state ? " +state" : ""));
  }
  void put_incoming(std::string_view id, uint16_t packet_id) override {
    log("put_incoming " + std::string(id) + " " + std::to_string(packet_id));
  }
  void erase_incoming(std::string_view id, uint16_t packet_id) override {
    log("erase_incoming " + std::string(id) + " " + std::to_string(packet_id));
  }
  void put_transit(unsigned origin, uint64_t id, const Message& m, const std::vector<Receiver>&) override {
    log("put_transit " + std::to_string(origin) + " " + std::to_string(id) + " " + std::string(m.payload));
  }
  void put_shared_transit(unsigned origin, uint64_t id, const Message& m, Receiver r,
                          const SharedTarget& target) override {
    log("put_shared_transit " + std::to_string(origin) + " " + std::to_string(id) + " " + std::string(m.payload) +
        " -> " + std::to_string(r.worker) + ":" + std::string(target.client_id));
  }
  void erase_transits(unsigned origin, uint64_t up_to) override {
    log("erase_transits " + std::to_string(origin) + " " + std::to_string(up_to));
  }
  void put_marker(unsigned receiver, unsigned origin, uint64_t seq) override {
    log("put_marker " + std::to_string(receiver) + " " + std::to_string(origin) + " " + std::to_string(seq));
  }
  size_t size() const override { return pending.size(); }
  bool commit() override {
    if (fail) {
      pending.clear();
      ok = false;
      return false;
    }
    committed.insert(committed.end(), pending.begin(), pending.end());
    pending.clear();
    ok = true;
    return true;
  }
  bool healthy() const override { return ok; }
  std::string error() const override { return ok ? "" : "injected"; }

  // Every line recorded since the last call (pending and committed).
  std::vector<std::string> take() {
    std::vector<std::string> all = committed;
    all.insert(all.end(), pending.begin(), pending.end());
    committed.clear();
    pending.clear();
    return all;
  }

  std::vector<std::string> pending, committed;
  bool fail = false;
  bool ok = true;

 private:
  void log(std::string line) { pending.push_back(std::move(line)); }
};

}  // namespace midge::broker::fakes
