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

}  // namespace midge
