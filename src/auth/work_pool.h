// A few threads for work too slow for an event loop (password hashing),
// with a bounded queue: when it is full, new work is refused at once, so
// a flood of CONNECTs costs the attacker refusals instead of costing every
// client an ever longer wait.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "util/thread.h"

namespace midge::auth {

class WorkPool {
 public:
  WorkPool(unsigned threads, size_t max_queued);
  ~WorkPool();  // stop()
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Any thread. False when `max_queued` tasks already wait, or after stop().
  bool try_post(std::function<void()> task);
  // Waits for the tasks running now; the ones still queued are dropped.
  void stop();

 private:
  void run();

  const size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;  // guarded by mutex_
  bool stopping_ = false;                    // guarded by mutex_
  std::vector<util::Thread> threads_;
};

}  // namespace midge::auth
