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
  bool broadcast(const MessagePtr& message) override {
    broadcasts.push_back(message);
    return false;  // no other worker has subscribers
  }
  void deliver_shared(const SharedMember& member, const MessagePtr& message) override {
    shared.push_back({member, message});
  }

  struct Shared {
    SharedMember member;
    MessagePtr message;
  };
  std::vector<MessagePtr> broadcasts;
  std::vector<Shared> shared;
};

}  // namespace midge::broker::fakes
