#include "net/out_queue.h"

#include <algorithm>
#include <utility>

namespace midge::net {

namespace {
// The written prefix of the inline buffer is dropped once it is at least
// this long and half of the buffer: a client always a little behind does not
// keep every byte ever sent to it, and small writes do not move bytes.
constexpr size_t kCompactMin = 4096;
}  // namespace

void OutQueue::append_shared(broker::MessagePtr owner, std::string_view data) {
  if (data.empty()) return;
  if (!refs_) refs_ = std::make_unique<Refs>();
  refs_->list.push_back(Ref{refs_->base + buf_.size(), data.data(), data.size(), std::move(owner)});
  refs_->bytes += data.size();
}

size_t OutQueue::gather(iovec* iov, size_t max) const {
  size_t k = 0;
  size_t pos = start_;
  if (refs_) {
    for (const Ref& r : refs_->list) {
      if (k == max) return k;
      const size_t at = static_cast<size_t>(r.at - refs_->base);
      if (at > pos) {
        iov[k++] = iovec{const_cast<char*>(buf_.data() + pos), at - pos};
        pos = at;
        if (k == max) return k;
      }
      iov[k++] = iovec{const_cast<char*>(r.data), r.len};
    }
  }
  if (k < max && buf_.size() > pos) iov[k++] = iovec{const_cast<char*>(buf_.data() + pos), buf_.size() - pos};
  return k;
}

void OutQueue::consume(size_t n) {
  Refs* refs = refs_.get();
  while (n > 0) {
    const size_t take = std::min(n, inline_end(refs) - start_);
    start_ += take;
    n -= take;
    if (n == 0 || !refs || refs->list.empty()) break;
    Ref& r = refs->list.front();
    const size_t t = std::min(n, r.len);
    r.data += t;
    r.len -= t;
    refs->bytes -= t;
    n -= t;
    if (r.len == 0) refs->list.pop_front();  // releases the message
  }
  if (empty()) {
    drained();
    return;
  }
  if (refs && refs->list.empty()) refs_.reset();
  if (start_ >= kCompactMin && start_ * 2 >= buf_.size()) {
    buf_.erase(0, start_);
    if (refs_) refs_->base += start_;
    start_ = 0;
  }
}

void OutQueue::move_to(OutQueue& to) {
  size_t pos = start_;
  if (refs_) {
    for (Ref& r : refs_->list) {
      const size_t at = static_cast<size_t>(r.at - refs_->base);
      to.buf_.append(buf_, pos, at - pos);
      pos = at;
      to.append_shared(std::move(r.owner), std::string_view(r.data, r.len));
    }
  }
  to.buf_.append(buf_, pos, std::string::npos);
  drained();
}

// A buffer past kKeepCapacity is kept while its fills use a quarter of it
// or more (a subscriber that gets hundreds of KiB every turn would otherwise
// reallocate and fault in its buffer at every turn), and freed at the first
// smaller fill: after a burst, at the latest when the keep alive's PINGRESP
// is written.
void OutQueue::drained() {
  const size_t filled = buf_.size();
  buf_.clear();
  start_ = 0;
  refs_.reset();
  if (buf_.capacity() > kKeepCapacity && filled < buf_.capacity() / 4) std::string().swap(buf_);
}

void OutQueue::release() {
  drained();
  std::string().swap(buf_);
}

}  // namespace midge::net
