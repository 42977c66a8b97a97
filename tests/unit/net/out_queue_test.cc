#include "net/out_queue.h"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "broker/message.h"
#include "net/free_watch.h"

// Unit tests of net::OutQueue. Liveness of shared payloads is observed with
// FreeWatch (free_watch.h: the block's return to the allocator); under ASan
// the reads of slices after other queues let go are checked as well.
namespace midge::net {
namespace {

using broker::Message;
using broker::MessageFields;
using broker::MessagePtr;

// A message with an `n`-byte payload in a pattern that depends on `seed`:
// a byte out of place or from the wrong message shows.
MessagePtr make_message(size_t n, unsigned seed) {
  std::string payload(n, '\0');
  for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(seed * 131 + i * 7 + (i >> 8));
  MessageFields f;
  f.topic = "big/topic";
  f.payload = payload;
  return Message::create(f);
}

std::string_view part(const MessagePtr& m, size_t off, size_t len) { return m->payload.substr(off, len); }

// Inline bytes that differ from any payload pattern and from each other.
std::string inline_bytes(size_t n, char tag) {
  std::string s(n, tag);
  for (size_t i = 0; i < n; i += 5) s[i] = static_cast<char>('0' + i % 10);
  return s;
}

// The whole unwritten stream, as one unlimited write would send it. An
// iovec is never empty.
std::string stream(const OutQueue& q) {
  std::vector<iovec> iov(2 * q.shared_slices() + 1);
  const size_t k = q.gather(iov.data(), iov.size());
  std::string out;
  for (size_t i = 0; i < k; ++i) {
    EXPECT_GT(iov[i].iov_len, 0u) << "iovec " << i;
    out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  }
  EXPECT_EQ(out.size(), q.size());
  return out;
}

// A sequence of appends to replay on fresh queues, with the stream it
// makes and the stream offsets where its slices end.
struct Script {
  struct Piece {
    std::string bytes;  // inline, when message is null
    MessagePtr message;
    std::string_view slice;
  };
  std::vector<Piece> pieces;
  std::string expected;
  std::vector<size_t> slice_ends;

  Script& add(std::string bytes) {
    expected += bytes;
    pieces.push_back(Piece{std::move(bytes), nullptr, {}});
    return *this;
  }
  Script& add(const MessagePtr& m, std::string_view slice) {
    expected += slice;
    slice_ends.push_back(expected.size());
    pieces.push_back(Piece{{}, m, slice});
    return *this;
  }
  void fill(OutQueue& q) const {
    for (const Piece& p : pieces) {
      if (p.message) {
        q.append_shared(p.message->share(), p.slice);
      } else {
        q.bytes() += p.bytes;
      }
    }
  }
  // Slices not written completely once `written` bytes are.
  size_t slices_left(size_t written) const {
    size_t n = 0;
    for (size_t end : slice_ends) n += end > written ? 1 : 0;
    return n;
  }
};

// Every kind of neighbourhood: a slice first, slices back to back, inline
// bytes between, a long inline run (past the compaction threshold), inline
// bytes last.
Script mixed_script(const std::vector<MessagePtr>& m) {
  Script s;
  s.add(m[0], part(m[0], 0, 1500))
      .add(m[1], part(m[1], 0, 1024))
      .add(m[2], part(m[2], 100, 1))
      .add(inline_bytes(7, 'a'))
      .add(m[0], part(m[0], 1500, 1100))
      .add(inline_bytes(5000, 'b'))
      .add(m[1], part(m[1], 1024, 2000))
      .add(inline_bytes(1, 'c'))
      .add(m[2], part(m[2], 0, 1200))
      .add(m[2], part(m[2], 1200, 800))
      .add(inline_bytes(300, 'd'));
  return s;
}

std::vector<MessagePtr> messages(size_t count, size_t size) {
  std::vector<MessagePtr> out;
  for (size_t i = 0; i < count; ++i) out.push_back(make_message(size, static_cast<unsigned>(i + 1)));
  return out;
}

TEST(OutQueueTest, EmptyQueue) {
  OutQueue q;
  iovec iov[4];
  EXPECT_EQ(q.size(), 0u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.shared_slices(), 0u);
  EXPECT_EQ(q.gather(iov, 4), 0u);
  q.consume(0);
  EXPECT_TRUE(q.empty());
  auto m = make_message(2000, 1);
  q.append_shared(m, std::string_view());  // an empty slice is not queued
  EXPECT_EQ(q.shared_slices(), 0u);
  EXPECT_EQ(q.gather(iov, 4), 0u);
}

TEST(OutQueueTest, GatheredStreamIsInlineAndSlicesInOrder) {
  const auto m = messages(3, 4096);
  const Script s = mixed_script(m);
  OutQueue q;
  s.fill(q);
  EXPECT_EQ(q.size(), s.expected.size());
  EXPECT_EQ(q.shared_slices(), s.slice_ends.size());
  EXPECT_EQ(stream(q), s.expected);
  // One iovec per slice and per inline run: nothing is merged or split.
  std::vector<iovec> iov(64);
  EXPECT_EQ(q.gather(iov.data(), iov.size()), 11u);
  EXPECT_EQ(iov[0].iov_base, m[0]->payload.data());  // sent from the block, not copied
  EXPECT_EQ(iov[1].iov_base, m[1]->payload.data());
  EXPECT_EQ(iov[2].iov_base, m[2]->payload.data() + 100);

  OutQueue only_slices;
  only_slices.append_shared(m[1], part(m[1], 10, 20));
  only_slices.append_shared(m[0], part(m[0], 30, 40));
  EXPECT_EQ(stream(only_slices), std::string(part(m[1], 10, 20)) + std::string(part(m[0], 30, 40)));

  OutQueue only_inline;
  only_inline.bytes() = "abc";
  EXPECT_EQ(stream(only_inline), "abc");
  EXPECT_EQ(only_inline.gather(iov.data(), iov.size()), 1u);
}

// A write can stop after any byte: consume(k) for every k, then the rest.
TEST(OutQueueTest, PartialWriteAtEveryBoundary) {
  const auto m = messages(3, 4096);
  const Script s = mixed_script(m);
  const size_t total = s.expected.size();
  for (size_t k = 0; k <= total; ++k) {
    OutQueue q;
    s.fill(q);
    q.consume(k);
    ASSERT_EQ(q.size(), total - k) << "after " << k;
    ASSERT_EQ(q.shared_slices(), s.slices_left(k)) << "after " << k;
    ASSERT_EQ(stream(q), s.expected.substr(k)) << "after " << k;
    // The second write ends on a different boundary each time.
    const size_t second = (total - k) / 3;
    q.consume(second);
    ASSERT_EQ(stream(q), s.expected.substr(k + second)) << "after " << k << "+" << second;
    q.consume(q.size());
    ASSERT_TRUE(q.empty());
    ASSERT_EQ(q.shared_slices(), 0u);
  }
}

TEST(OutQueueTest, OneByteWritesAndAppendsBetweenThem) {
  const auto m = messages(3, 4096);
  const Script s = mixed_script(m);
  OutQueue q;
  s.fill(q);
  std::string expected = s.expected;
  size_t written = 0;
  while (!q.empty()) {
    q.consume(1);
    ++written;
    if (written % 997 == 0 && written < 20000) {  // more output arrives while the rest waits
      q.bytes() += "hdr";
      q.append_shared(m[1], part(m[1], written % 1000, 1024));
      expected += "hdr" + std::string(part(m[1], written % 1000, 1024));
    }
    if (written % 101 == 0) {
      ASSERT_EQ(stream(q), expected.substr(written)) << "after " << written;
    }
  }
  EXPECT_EQ(written, expected.size());
  EXPECT_EQ(q.shared_slices(), 0u);
}

// A random mix of appends, writes of any size and hand-overs (move_to),
// checked after every step against a plain string.
TEST(OutQueueTest, RandomOperationsMatchAPlainString) {
  const auto m = messages(4, 70000);
  std::mt19937 rng(20261129);
  auto below = [&rng](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  OutQueue q;
  std::string model;
  std::vector<size_t> ends;  // offsets in `model` where the unwritten slices end
  for (int step = 0; step < 4000; ++step) {
    switch (rng() % 6) {
      case 0:
      case 1: {
        const std::string b = inline_bytes(rng() % 8 == 0 ? 3000 + below(3000) : below(40), 'x');
        q.bytes() += b;
        model += b;
        break;
      }
      case 2: {
        const MessagePtr& msg = m[below(m.size())];
        const size_t off = below(msg->payload.size());
        const std::string_view sl = part(msg, off, below(rng() % 4 == 0 ? 70000 : 3000));
        q.append_shared(msg, sl);
        model += sl;
        if (!sl.empty()) ends.push_back(model.size());
        break;
      }
      case 3:
      case 4: {
        const size_t n = rng() % 3 == 0 ? model.size() : below(model.size() + 1);
        q.consume(n);
        model.erase(0, n);
        std::erase_if(ends, [n](size_t e) { return e <= n; });
        for (size_t& e : ends) e -= n;
        break;
      }
      case 5: {
        OutQueue to;
        to.bytes() = "ws";  // a frame header already queued
        q.move_to(to);
        EXPECT_EQ(q.size(), 0u);
        EXPECT_EQ(q.shared_slices(), 0u);
        model.insert(0, "ws");
        for (size_t& e : ends) e += 2;
        std::swap(q, to);
        break;
      }
    }
    ASSERT_EQ(q.size(), model.size()) << "step " << step;
    ASSERT_EQ(q.shared_slices(), ends.size()) << "step " << step;
    ASSERT_EQ(stream(q), model) << "step " << step;
  }
}

// More slices than one sendmsg takes: gather stops at `max`, and repeated
// gather/consume (whole and partial writes) yields the whole stream.
TEST(OutQueueTest, MoreSlicesThanOneWriteTakes) {
  const auto m = messages(3, 2048);
  for (bool with_headers : {true, false}) {
    Script s;
    for (size_t i = 0; i < 3 * OutQueue::kMaxIov + 17; ++i) {
      if (with_headers) s.add(inline_bytes(2 + i % 5, 'h'));
      s.add(m[i % 3], part(m[i % 3], i % 1000, 1024));
    }
    OutQueue q;
    s.fill(q);
    for (size_t max : {size_t{1}, size_t{2}, size_t{3}}) {
      std::vector<iovec> iov(max);
      ASSERT_EQ(q.gather(iov.data(), max), max);
    }
    std::string out;
    std::vector<iovec> iov(OutQueue::kMaxIov);
    for (int turn = 0; !q.empty(); ++turn) {
      const size_t k = q.gather(iov.data(), OutQueue::kMaxIov);
      ASSERT_GT(k, 0u);
      ASSERT_LE(k, OutQueue::kMaxIov);
      size_t len = 0;
      for (size_t i = 0; i < k; ++i) len += iov[i].iov_len;
      if (q.size() > len) {
        ASSERT_EQ(k, OutQueue::kMaxIov);  // a short gather only at the end
      }
      // The kernel takes all of it, or stops inside some slice.
      const size_t n = turn % 2 == 0 ? len : len / 3 + 1;
      size_t copy = n;
      for (size_t i = 0; copy > 0; ++i) {
        const size_t c = std::min(copy, iov[i].iov_len);
        out.append(static_cast<const char*>(iov[i].iov_base), c);
        copy -= c;
      }
      q.consume(n);
    }
    EXPECT_EQ(out, s.expected) << "with_headers " << with_headers;
    EXPECT_EQ(q.shared_slices(), 0u);
  }
}

TEST(OutQueueTest, FreeWatchSeesAMessageFreed) {
  auto m = make_message(2000, 7);
  FreeWatch watch(m.get());
  EXPECT_FALSE(watch.freed());
  m.reset();
  EXPECT_TRUE(watch.freed());  // else the observation below would prove nothing
}

// One payload delivered to several connections: the block lives until the
// last queue has written (or dropped) its slice, whatever the order.
TEST(OutQueueTest, SharedPayloadFreedAfterTheLastQueue) {
  auto m = make_message(5000, 3);
  const std::string payload(m->payload);
  FreeWatch watch(m.get());
  std::vector<OutQueue> queues(4);
  for (size_t i = 0; i < queues.size(); ++i) {
    queues[i].bytes() = "header" + std::to_string(i);
    queues[i].append_shared(m->share(), m->payload);
    queues[i].bytes() += "next";
  }
  m.reset();  // the broker drops its own reference after routing
  EXPECT_FALSE(watch.freed());

  queues[0].consume(queues[0].size());  // written entirely
  EXPECT_FALSE(watch.freed());
  queues[1].release();  // connection closed
  EXPECT_FALSE(watch.freed());
  queues[2].consume(7 + 2500);  // stops in the middle of the payload
  EXPECT_FALSE(watch.freed());

  // A WebSocket connection moves its slices into the wire queue.
  OutQueue wire;
  wire.bytes() = "frame";
  queues[3].move_to(wire);
  EXPECT_FALSE(watch.freed());
  EXPECT_EQ(queues[3].shared_slices(), 0u);

  // What is left is still readable (ASan would report a freed block here).
  EXPECT_EQ(stream(queues[2]), payload.substr(2500) + "next");
  EXPECT_EQ(stream(wire), "frameheader3" + payload + "next");

  queues[2].consume(queues[2].size() - 4);  // the payload's last byte
  EXPECT_FALSE(watch.freed());               // still in `wire`
  wire.consume(5 + 7 + payload.size() - 1);
  EXPECT_FALSE(watch.freed());  // one payload byte left
  EXPECT_EQ(stream(wire), payload.substr(payload.size() - 1) + "next");
  wire.consume(1);
  EXPECT_TRUE(watch.freed());
  EXPECT_EQ(stream(wire), "next");
}

// QoS 1 retransmission: the same message queued again (a DUP resend) while
// the first copy is partly written. Every split point of the first copy.
TEST(OutQueueTest, ResendAfterAPartialWrite) {
  auto m = make_message(3000, 9);
  const std::string payload(m->payload);
  const std::string first = "pub1" + payload;
  const std::string again = "dup1" + payload;
  for (size_t k = 0; k <= first.size(); ++k) {
    OutQueue q;
    {
      FreeWatch watch(m.get());
      MessagePtr held = m->share();  // the in-flight window's reference
      q.bytes() = "pub1";
      q.append_shared(held->share(), held->payload);
      q.consume(k);
      q.bytes() += "dup1";
      q.append_shared(held->share(), held->payload);
      ASSERT_EQ(q.shared_slices(), k >= 4 + payload.size() ? 1u : 2u);
      ASSERT_EQ(stream(q), first.substr(k) + again) << "split " << k;
      held.reset();  // PUBACK: the window lets go, the queue still holds it
      q.consume(q.size() - 1);
      ASSERT_EQ(stream(q), payload.substr(payload.size() - 1));
      ASSERT_FALSE(watch.freed());
      q.consume(1);
      ASSERT_TRUE(q.empty());
      ASSERT_FALSE(watch.freed());  // `m` still holds it
    }
  }
  FreeWatch watch(m.get());
  m.reset();
  EXPECT_TRUE(watch.freed());
}

TEST(OutQueueTest, MoveToAppendsTheStreamAndEmptiesTheSource) {
  const auto m = messages(3, 4096);
  const Script s = mixed_script(m);
  for (size_t k : {size_t{0}, size_t{1}, size_t{1500}, size_t{1600}, size_t{4000}, s.expected.size() - 1}) {
    OutQueue from;
    s.fill(from);
    from.consume(k);
    OutQueue to;
    to.bytes() = "queued";
    to.append_shared(m[2], part(m[2], 0, 1500));
    to.bytes() += "hdr";
    const std::string before = stream(to);
    from.move_to(to);
    EXPECT_EQ(from.size(), 0u);
    EXPECT_TRUE(from.empty());
    EXPECT_EQ(from.shared_slices(), 0u);
    iovec iov[2];
    EXPECT_EQ(from.gather(iov, 2), 0u);
    EXPECT_EQ(to.shared_slices(), 1 + s.slices_left(k));
    EXPECT_EQ(stream(to), before + s.expected.substr(k)) << "moved after " << k;
    // The source is usable again afterwards.
    from.bytes() = "again";
    EXPECT_EQ(stream(from), "again");
  }
}

// After a burst the queue gives its memory back once written out.
TEST(OutQueueTest, DrainedQueueKeepsNoBurstMemory) {
  const auto m = messages(2, 8192);
  for (bool slice_last : {true, false}) {
    OutQueue q;
    for (int i = 0; i < 2000; ++i) {
      q.bytes() += inline_bytes(600, 'p');  // small packets coalesced
      q.append_shared(m[i % 2], part(m[i % 2], 0, 1024 + i));
    }
    if (!slice_last) q.bytes() += "tail";
    ASSERT_GT(q.bytes().capacity(), OutQueue::kKeepCapacity);
    std::vector<iovec> iov(OutQueue::kMaxIov);
    while (!q.empty()) {
      const size_t k = q.gather(iov.data(), iov.size());
      size_t len = 0;
      for (size_t i = 0; i < k; ++i) len += iov[i].iov_len;
      q.consume(std::min<size_t>(len, 200000));  // the socket takes 200 kB a time
    }
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.shared_slices(), 0u);
    EXPECT_LE(q.bytes().capacity(), OutQueue::kKeepCapacity) << "slice_last " << slice_last;
  }
  OutQueue r;
  r.bytes() = inline_bytes(1 << 20, 'r');
  r.append_shared(m[0], m[0]->payload);
  r.consume(100);
  r.release();
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.shared_slices(), 0u);
  EXPECT_LE(r.bytes().capacity(), OutQueue::kKeepCapacity);
}

}  // namespace
}  // namespace midge::net
