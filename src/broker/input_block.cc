#include "broker/input_block.h"

#include <cstring>
#include <new>
#include <utility>
#include <vector>

namespace midge::broker {
namespace {

// Free blocks each thread keeps for its next reads: a turn that routed
// large payloads to slow sockets may leave several blocks held at once, and
// they come back together when the sockets drain.
constexpr size_t kCached = 4;

std::atomic<size_t> g_live{0};

// False once this thread's cache is destroyed (thread exit): blocks freed
// after that go straight back to the allocator.
thread_local bool t_cache_alive = false;

}  // namespace

struct InputBlockCache {
  InputBlock* current = nullptr;
  std::vector<InputBlock*> free;

  InputBlockCache() { t_cache_alive = true; }
  ~InputBlockCache() {
    t_cache_alive = false;
    if (current) current->release();
    for (InputBlock* b : free) destroy(b);
  }

  static void destroy(InputBlock* b) { InputBlock::free(b); }
  InputBlock* take() {
    if (free.empty()) return InputBlock::allocate(InputBlock::kSize);
    InputBlock* b = free.back();
    free.pop_back();
    b->refs_.store(1, std::memory_order_relaxed);
    return b;
  }
  void recycle(InputBlock* b) {
    if (free.size() < kCached) {
      free.push_back(b);
    } else {
      destroy(b);
    }
  }
};

namespace {
thread_local InputBlockCache t_input;
thread_local const InputBlock* t_decoding = nullptr;
}  // namespace

InputBlock* InputBlock::allocate(size_t size) {
  g_live.fetch_add(1, std::memory_order_relaxed);
  return new (::operator new(sizeof(InputBlock) + size)) InputBlock(size);
}

void InputBlock::free(InputBlock* b) {
  b->~InputBlock();
  ::operator delete(b);
  g_live.fetch_sub(1, std::memory_order_relaxed);
}

InputBlock* InputBlock::make(size_t size) { return allocate(size); }

const InputBlock* InputBlock::decoding() { return t_decoding; }

InputBlock::Decoding::Decoding(const InputBlock* block) : outer_(std::exchange(t_decoding, block)) {}

InputBlock::Decoding::~Decoding() { t_decoding = outer_; }

InputBlock& InputBlock::writable(std::string_view carry) {
  InputBlockCache& c = t_input;
  // acquire: whatever other threads read from the block before they let it
  // go happens before it is written again.
  if (c.current && c.current->refs_.load(std::memory_order_acquire) == 1) {
    if (!carry.empty()) std::memmove(c.current->data(), carry.data(), carry.size());
    return *c.current;
  }
  InputBlock* next = c.take();
  // Copied before the current block is let go: its messages may be all
  // that keeps it.
  if (!carry.empty()) std::memcpy(next->data(), carry.data(), carry.size());
  if (c.current) c.current->release();  // messages hold it: they free it
  c.current = next;
  return *next;
}

void InputBlock::release() const {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  auto* self = const_cast<InputBlock*>(this);
  if (t_cache_alive && size_ == kSize) {
    t_input.recycle(self);
  } else {
    InputBlockCache::destroy(self);
  }
}

size_t InputBlock::live() { return g_live.load(std::memory_order_relaxed); }

}  // namespace midge::broker
