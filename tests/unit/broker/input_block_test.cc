// InputBlock and messages that borrow their payload from one: the block
// is reused while nothing holds it, replaced while something does, and
// given back when the last message that borrows from it is freed, on
// whatever thread.
#include "broker/input_block.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "broker/message.h"

namespace midge::broker {
namespace {

MessagePtr borrow(const InputBlock& block, size_t offset, size_t len, bool copy = false) {
  MessageFields f;
  f.topic = "big/topic";
  f.payload = std::string_view(block.data() + offset, len);
  f.origin_client_id = "pub";
  return copy ? Message::create(f) : Message::create_borrowed(f, block);
}

TEST(InputBlock, ReusedWhileNothingHoldsIt) {
  InputBlock& a = InputBlock::writable();
  EXPECT_EQ(&InputBlock::writable(), &a);
  // A copied message does not hold it either.
  std::memset(a.data(), 'x', InputBlock::kBorrowMin);
  MessagePtr copied = borrow(a, 0, InputBlock::kBorrowMin, /*copy=*/true);
  EXPECT_EQ(copied->backing(), nullptr);
  EXPECT_EQ(&InputBlock::writable(), &a);
}

TEST(InputBlock, BorrowedPayloadIsNotCopied) {
  InputBlock& a = InputBlock::writable();
  std::memset(a.data(), 'p', InputBlock::kSize);
  const size_t live = InputBlock::live();
  MessagePtr m = borrow(a, 100, InputBlock::kBorrowMin);
  EXPECT_EQ(m->backing(), &a);
  EXPECT_EQ(m->payload.data(), a.data() + 100);
  EXPECT_EQ(m->payload.size(), InputBlock::kBorrowMin);
  EXPECT_EQ(m->topic, "big/topic");
  EXPECT_EQ(m->origin_client_id, "pub");
  // Its own allocation leaves the payload out.
  EXPECT_LT(m->footprint(), 256u);
  // The held block is not written again: the next read gets another one.
  InputBlock& b = InputBlock::writable();
  EXPECT_NE(&b, &a);
  EXPECT_GE(InputBlock::live(), live);
  std::memset(b.data(), 'q', InputBlock::kSize);
  EXPECT_EQ(m->payload, std::string(InputBlock::kBorrowMin, 'p'));
  m.reset();  // a is free again (cached for a later read)
  EXPECT_EQ(&InputBlock::writable(), &b);
}

TEST(InputBlock, LastOfSeveralMessagesFreesIt) {
  InputBlock& a = InputBlock::writable();
  std::vector<MessagePtr> held;
  for (size_t i = 0; i < 4; ++i) held.push_back(borrow(a, i * InputBlock::kBorrowMin, InputBlock::kBorrowMin));
  MessagePtr shared = held[2];  // one more reference to one of them
  InputBlock& b = InputBlock::writable();
  ASSERT_NE(&a, &b);
  held.clear();
  // Still held by `shared`: a later read does not get `a`... 
  MessagePtr hold_b = borrow(b, 0, InputBlock::kBorrowMin);
  InputBlock& c = InputBlock::writable();
  EXPECT_NE(&c, &a);
  EXPECT_NE(&c, &b);
  EXPECT_EQ(shared->payload.data(), a.data() + 2 * InputBlock::kBorrowMin);
  // ...until it lets go: then `a` is in the cache and the next fresh block.
  shared.reset();
  hold_b.reset();
  MessagePtr hold_c = borrow(c, 0, InputBlock::kBorrowMin);
  InputBlock& d = InputBlock::writable();
  EXPECT_TRUE(&d == &a || &d == &b);
}

// A packet split at the end of a read moves to the start of the block the
// next read goes into: the same block (moved within it) when nothing holds
// it, else a fresh one (copied before the held block is let go).
TEST(InputBlock, CarriesASplitPacket) {
  InputBlock& a = InputBlock::writable();
  for (size_t i = 0; i < InputBlock::kSize; ++i) a.data()[i] = static_cast<char>(i % 251);
  const std::string tail(a.data() + InputBlock::kSize - 5000, 5000);
  InputBlock& same = InputBlock::writable(std::string_view(a.data() + InputBlock::kSize - 5000, 5000));
  EXPECT_EQ(&same, &a);
  EXPECT_EQ(std::string(a.data(), 5000), tail);

  MessagePtr held = borrow(a, 10000, InputBlock::kBorrowMin);
  const std::string held_bytes(held->payload);
  const std::string tail2(a.data() + 40000, 3000);
  InputBlock& fresh = InputBlock::writable(std::string_view(a.data() + 40000, 3000));
  EXPECT_NE(&fresh, &a);
  EXPECT_EQ(std::string(fresh.data(), 3000), tail2);
  EXPECT_EQ(held->payload, held_bytes);
}

// A burst of held blocks comes back: the thread keeps a few for its next
// reads and frees the rest.
TEST(InputBlock, BurstIsGivenBack) {
  const size_t before = InputBlock::live();
  std::vector<MessagePtr> held;
  for (int i = 0; i < 100; ++i) held.push_back(borrow(InputBlock::writable(), 0, InputBlock::kBorrowMin));
  EXPECT_GE(InputBlock::live(), before + 99);
  held.clear();
  EXPECT_LE(InputBlock::live(), before + 5);
}

// Messages freed by another thread (a subscriber's worker) give the block
// back there; a thread's cache is freed when it ends.
TEST(InputBlock, FreedOnAnotherThread) {
  const size_t before = InputBlock::live();
  std::vector<MessagePtr> held;
  for (int i = 0; i < 20; ++i) {
    InputBlock& b = InputBlock::writable();
    std::memset(b.data(), 'a' + i, InputBlock::kBorrowMin);
    held.push_back(borrow(b, 0, InputBlock::kBorrowMin));
  }
  std::thread other([held = std::move(held)]() mutable {
    for (size_t i = 0; i < held.size(); ++i) {
      EXPECT_EQ(held[i]->payload, std::string(InputBlock::kBorrowMin, static_cast<char>('a' + i)));
    }
    held.clear();
  });
  other.join();
  EXPECT_LE(InputBlock::live(), before + 1);
}

}  // namespace
}  // namespace midge::broker
