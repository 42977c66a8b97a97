// A connection's pending output as a sequence of slices, written with one
// sendmsg per call:
//  - inline bytes: packets encoded by the broker (headers, small messages,
//    acknowledgements), coalesced in one buffer;
//  - shared slices: bytes inside a broker::Message (a large payload), sent
//    from where they lie. The slice holds a reference on the message, so the
//    block lives until the last connection has written it, whatever thread
//    frees it.
// The stream is: inline bytes up to the first slice's position, the slice,
// inline bytes up to the next slice's position, ..., the remaining inline
// bytes. size() is exactly the number of bytes not yet written.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "broker/message.h"
#include "util/fifo.h"

namespace midge::net {

class OutQueue {
 public:
  // The largest gather one write takes (the kernel's UIO_MAXIOV).
  static constexpr size_t kMaxIov = 1024;
  // An emptied queue keeps at most this much buffer capacity, unless it was
  // filled to a quarter of a larger one (see drained()).
  static constexpr size_t kKeepCapacity = 64 * 1024;

  // Inline bytes are appended here, after everything queued so far.
  std::string& bytes() { return buf_; }
  // Queues `data`, which lives inside `owner`'s block, after everything
  // queued so far, without copying it.
  void append_shared(broker::MessagePtr owner, std::string_view data);

  // Bytes not yet written.
  size_t size() const { return buf_.size() - start_ + (refs_ ? refs_->bytes : 0); }
  bool empty() const { return size() == 0; }
  // Shared slices not yet written completely.
  size_t shared_slices() const { return refs_ ? refs_->list.size() : 0; }

  // Fills `iov` with the first unwritten slices, at most `max`; returns how
  // many it filled (0 when empty).
  size_t gather(iovec* iov, size_t max) const;
  // `n` bytes from the front were written (n <= size()). Releases the
  // messages whose slices are done and gives memory back once empty.
  void consume(size_t n);
  // Appends all of this queue to `to` (inline bytes copied, shared slices
  // moved without copying their bytes) and empties this one.
  void move_to(OutQueue& to);
  // Drops everything unwritten and frees the memory.
  void release();

 private:
  struct Ref {
    uint64_t at;  // inline position it follows: refs_->base + index in buf_
    const char* data;
    size_t len;
    broker::MessagePtr owner;
  };
  // Allocated only while a shared slice is queued: an idle connection pays
  // one pointer for them.
  struct Refs {
    util::Fifo<Ref> list;
    uint64_t base = 0;  // inline position of buf_[0]
    size_t bytes = 0;   // unwritten bytes of the slices
  };
  size_t inline_end(const Refs* refs) const {
    return refs && !refs->list.empty() ? static_cast<size_t>(refs->list.front().at - refs->base) : buf_.size();
  }
  void drained();

  std::string buf_;
  size_t start_ = 0;  // written prefix of buf_
  std::unique_ptr<Refs> refs_;
};

}  // namespace midge::net
