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
// payload bytes that hold it (README, "Memory limits"). A packet larger
// than kSize is read into a block of exactly its size (make).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace midge::broker {

class alignas(16) InputBlock {
 public:
  static constexpr size_t kSize = 64 * 1024;
  static constexpr size_t kBorrowMin = 16 * 1024;

  // This thread's block, ready to be written: the current one if nothing
  // else holds it, else a fresh one (from the thread's small cache). With
  // `carry` (bytes inside the current block: a packet the last read split),
  // those bytes are first moved to its start.
  static InputBlock& writable(std::string_view carry = {});

  // A block of `size` bytes of its own, for one packet larger than kSize
  // (refs 1, held by the caller; never the thread's current block).
  static InputBlock* make(size_t size);

  char* data() { return reinterpret_cast<char*>(this + 1); }
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  size_t size() const { return size_; }
  bool contains(std::string_view s) const {
    return !s.empty() && s.data() >= data() && s.data() + s.size() <= data() + size_;
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

  // Bytes written so far, for the owner of a block of its own (make).
  uint32_t filled = 0;

 private:
  explicit InputBlock(size_t size) : size_(static_cast<uint32_t>(size)) {}
  static InputBlock* allocate(size_t size);
  static void free(InputBlock* b);
  friend struct InputBlockCache;
  mutable std::atomic<uint32_t> refs_{1};
  const uint32_t size_;
  // The bytes follow (data()); they are not zeroed: they are read into.
};

}  // namespace midge::broker
