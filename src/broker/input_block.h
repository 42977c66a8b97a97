// A reference-counted buffer that a connection reads its socket into, so
// that a large payload which arrived whole in one read can be routed
// without copying it: its Message points into the block and holds a
// reference on it (Message::create_borrowed), and every subscriber's output
// queue sends the payload from there.
//
// Each worker thread reads into its current block (InputBlock::writable).
// When a read left messages holding it, the next read takes a fresh block
// and the held one lives until its last message is freed, on whatever
// thread. Only payloads of at least kBorrowMin bytes are borrowed, so a
// held block of kSize bytes is at most kSize / kBorrowMin = 4 times the
// payload bytes that hold it (README, "Memory limits").
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace midge::broker {

class InputBlock {
 public:
  static constexpr size_t kSize = 64 * 1024;
  static constexpr size_t kBorrowMin = 16 * 1024;

  // This thread's block, ready to be written: the current one if nothing
  // else holds it, else a fresh one (from the thread's small cache). With
  // `carry` (bytes inside the current block: a packet the last read split),
  // those bytes are first moved to its start.
  static InputBlock& writable(std::string_view carry = {});

  char* data() { return bytes_; }
  const char* data() const { return bytes_; }
  static constexpr size_t size() { return kSize; }
  bool contains(std::string_view s) const {
    return s.data() >= bytes_ && s.data() + s.size() <= bytes_ + kSize && !s.empty();
  }

  void retain() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() const;

  // The block whose bytes this thread is decoding, while a Decoding guard
  // says so (null otherwise): where a PUBLISH becomes a Message, a payload
  // inside it is borrowed.
  static const InputBlock* decoding();
  class Decoding {
   public:
    explicit Decoding(const InputBlock* block);
    ~Decoding();
    Decoding(const Decoding&) = delete;
    Decoding& operator=(const Decoding&) = delete;

   private:
    const InputBlock* outer_;
  };

  // Blocks alive in the whole process (held, current or cached), for tests
  // and the memory bound.
  static size_t live();

 private:
  InputBlock() {}  // user-provided: the bytes are not zeroed (read into first)
  friend struct InputBlockCache;
  mutable std::atomic<uint32_t> refs_{1};
  char bytes_[kSize];
};

}  // namespace midge::broker
