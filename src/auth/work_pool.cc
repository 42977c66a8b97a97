#include "auth/work_pool.h"

#include <pthread.h>
#include <signal.h>

namespace midge::auth {

WorkPool::WorkPool(unsigned threads, size_t max_queued) : max_queued_(max_queued) {
  // The threads start with every signal blocked: a process signal (SIGHUP,
  // SIGTERM) must reach the thread that waits for it, never take its
  // default action (ending the process) on one of these.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back(util::kSmallStack, [this] { run(); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

WorkPool::~WorkPool() { stop(); }

bool WorkPool::try_post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(task));
  }
  ready_.notify_one();
  return true;
}

void WorkPool::stop() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  ready_.notify_all();
  for (util::Thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void WorkPool::run() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace midge::auth
