// Monotonic time as used by the broker. The broker never reads a clock
// itself: every event carries `now`, so tests drive time by hand.
#pragma once

#include <chrono>

namespace midge {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A TimePoint that may be absent, in 8 bytes instead of std::optional's 16
// (TimePoint::min() stands for none): sessions hold several, and idle
// sessions are most of what a broker holds. Used like std::optional.
class MaybeTime {
 public:
  MaybeTime() = default;
  MaybeTime(TimePoint t) : t_(t) {}  // NOLINT: converts like std::optional
  explicit operator bool() const { return t_ != TimePoint::min(); }
  TimePoint operator*() const { return t_; }
  void reset() { t_ = TimePoint::min(); }

 private:
  TimePoint t_ = TimePoint::min();
};

}  // namespace midge
