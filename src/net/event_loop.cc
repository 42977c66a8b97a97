#include "net/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace midge::net {

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    std::perror("midge: cannot create event loop");
    std::abort();
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr marks the wake-up descriptor
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

EventLoop::~EventLoop() {
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

bool EventLoop::add(int fd, Handler* handler, uint32_t events) {
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.ptr = handler;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void EventLoop::remove(int fd) {
  epoll_event ev{};
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, &ev);
}

void EventLoop::post(std::function<void()> task) {
  {
    std::lock_guard lock(mailbox_mutex_);
    mailbox_.push_back(std::move(task));
    mailbox_size_.fetch_add(1);
  }
  // The loop announces `sleeping_` before it checks the mailbox, and we
  // check `sleeping_` after filling it (both sequentially consistent), so
  // either it sees the task or we wake it.
  if (sleeping_.load()) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
}

void EventLoop::at_end_of_turn(std::function<void()> task) { end_of_turn_.push_back(std::move(task)); }

void EventLoop::after(Duration delay, std::function<void()> task) {
  timers_.push(Timer{Clock::now() + delay, timer_seq_++, std::move(task)});
}

void EventLoop::stop() {
  stop_.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

// `now`: the end of the last turn (nothing ran since).
int EventLoop::timeout_ms(TimePoint now) {
  if (mailbox_size_.load() != 0 || !end_of_turn_.empty()) return 0;
  if (timers_.empty()) return -1;
  const auto left = timers_.top().when - now;
  if (left <= Duration::zero()) return 0;
  return static_cast<int>(std::chrono::ceil<milliseconds>(left).count());
}

void EventLoop::drain_wakeups() {
  uint64_t value = 0;
  while (::read(wake_fd_, &value, sizeof(value)) > 0) {
  }
}

void EventLoop::run_mailbox() {
  if (mailbox_size_.load() == 0) return;
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(mailbox_mutex_);
    tasks.swap(mailbox_);
    mailbox_size_.store(0);
  }
  for (auto& task : tasks) task();
}

void EventLoop::run_end_of_turn() {
  // Work added while running (a flush that closes a connection...) runs in
  // the same pass.
  while (!end_of_turn_.empty()) {
    std::vector<std::function<void()>> tasks;
    tasks.swap(end_of_turn_);
    for (auto& task : tasks) task();
  }
}

void EventLoop::run_timers() {
  const TimePoint now = Clock::now();
  while (!timers_.empty() && timers_.top().when <= now) {
    auto task = std::move(const_cast<Timer&>(timers_.top()).task);
    timers_.pop();
    task();
  }
}

void EventLoop::run() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  TimePoint turn_end = Clock::now();
  while (!stop_.load(std::memory_order_relaxed)) {
    sleeping_.store(true);
    const int timeout = timeout_ms(turn_end);
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout);
    sleeping_.store(false);
    // One clock read more per turn (the end one serves timeout_ms too).
    const TimePoint turn_start = Clock::now();
    if (n < 0 && errno != EINTR) {
      std::perror("midge: epoll_wait");
      std::abort();
    }
    for (int i = 0; i < n; ++i) {
      auto* handler = static_cast<Handler*>(events[i].data.ptr);
      if (handler) {
        handler->on_io(events[i].events);
      } else {
        drain_wakeups();
      }
    }
    run_mailbox();
    run_end_of_turn();
    run_timers();
    run_end_of_turn();
    turn_end = Clock::now();
    turn_times_.record(static_cast<uint64_t>(std::chrono::nanoseconds(turn_end - turn_start).count()));
  }
}

}  // namespace midge::net
