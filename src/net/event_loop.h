// One epoll event loop per worker thread.
//
// Why not Asio (the design's first choice): measured with strace on the
// fan-in benchmark, Asio's reactor-style async_wait re-arms the descriptor
// with epoll_ctl(EPOLL_CTL_MOD) on every wait, and every post() to the loop
// from its own thread interrupts epoll with another epoll_ctl — two extra
// syscalls per read and per turn, where a syscall costs ~1.4 us here. This
// loop registers each socket once, edge-triggered, and runs a turn as:
//   epoll_wait -> I/O handlers -> mailbox tasks -> end-of-turn work (flush)
//   -> due timers.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <vector>

#include "util/histogram.h"
#include "util/time.h"

namespace midge::net {

class EventLoop {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void on_io(uint32_t events) = 0;
  };

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Loop thread (or before run): watch `fd`, edge-triggered for `events`.
  bool add(int fd, Handler* handler, uint32_t events);
  void remove(int fd);

  // Any thread: run `task` on the loop thread during a coming turn.
  void post(std::function<void()> task);
  // Loop thread: run `task` once at the end of the current turn, after all
  // I/O of the turn (used to flush every written socket once).
  void at_end_of_turn(std::function<void()> task);
  // Loop thread: run `task` once `delay` has passed.
  void after(Duration delay, std::function<void()> task);

  void run();   // on the loop thread, until stop()
  void stop();  // any thread

  // How long each turn took, from epoll_wait's return to the end of its
  // work (the wait excluded). Written by the loop thread, read by any.
  const util::Histogram& turn_times() const { return turn_times_; }

 private:
  struct Timer {
    TimePoint when;
    uint64_t seq;
    std::function<void()> task;
    bool operator>(const Timer& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  int timeout_ms(TimePoint now);
  void drain_wakeups();
  void run_mailbox();
  void run_end_of_turn();
  void run_timers();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> sleeping_{false};

  std::mutex mailbox_mutex_;
  std::vector<std::function<void()>> mailbox_;  // guarded by mailbox_mutex_
  std::atomic<size_t> mailbox_size_{0};

  std::vector<std::function<void()>> end_of_turn_;  // loop thread only
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;  // loop thread only
  uint64_t timer_seq_ = 0;
  util::Histogram turn_times_;
};

}  // namespace midge::net
