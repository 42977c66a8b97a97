#include "net/transport.h"

namespace midge::net {
namespace {

// `upper` inside `lower`: what lower un-wraps, upper un-wraps again; what
// upper queues (its handshake answers, frames) lower wraps at once, so the
// only bytes held are in lower's wire.
class Stacked final : public Transport {
 public:
  Stacked(std::unique_ptr<Transport> upper, std::unique_ptr<Transport> lower)
      : upper_(std::move(upper)), lower_(std::move(lower)) {}

  Result feed(std::string_view data, std::string& payload) override {
    middle_.clear();
    const Result down = lower_->feed(data, middle_);
    Result up = Result::kOk;
    if (!middle_.empty()) up = upper_->feed(middle_, payload);
    if (middle_.capacity() > 256 * 1024) std::string().swap(middle_);
    const bool ending = down != Result::kOk || up != Result::kOk;
    if (!upper_->wire().empty() || ending) lower_->push(upper_->wire(), up != Result::kOk);
    if (up == Result::kError) failed_upper_ = true;
    return down != Result::kOk ? down : up;
  }
  void push(OutQueue& out, bool closing) override {
    upper_->push(out, closing);
    lower_->push(upper_->wire(), closing);
  }
  OutQueue& wire() override { return lower_->wire(); }
  const OutQueue& wire() const override { return lower_->wire(); }
  std::string error() const override { return failed_upper_ ? upper_->error() : lower_->error(); }
  std::optional<std::string> peer_identity(PeerIdentity kind) const override { return lower_->peer_identity(kind); }
  bool established() const override { return lower_->established() && upper_->established(); }

 private:
  std::unique_ptr<Transport> upper_;
  std::unique_ptr<Transport> lower_;
  std::string middle_;  // lower's output of one feed
  bool failed_upper_ = false;
};

}  // namespace

std::unique_ptr<Transport> stack_transports(std::unique_ptr<Transport> upper, std::unique_ptr<Transport> lower) {
  return std::make_unique<Stacked>(std::move(upper), std::move(lower));
}

}  // namespace midge::net
