// A thread whose stack is reserved at a chosen size.
//
// std::thread takes glibc's default, RLIMIT_STACK: 8 MiB of address space
// per thread, which counts in the broker's virtual size (Mosquitto's tests
// want it under 25 MB at rest). Midge's threads never recurse to a depth a
// client chooses (docs/architecture.md §4), so kSmallStack is ample; the
// sanitizers' larger frames keep the default.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <utility>

namespace midge::util {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr size_t kSmallStack = 0;  // 0: glibc's default
#else
inline constexpr size_t kSmallStack = 1u << 20;
#endif

class Thread {
 public:
  Thread() = default;
  // Starts `body` on a new thread with a stack of `stack_bytes` (0: the default).
  Thread(size_t stack_bytes, std::function<void()> body) {
    auto owned = std::make_unique<std::function<void()>>(std::move(body));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (stack_bytes != 0) pthread_attr_setstacksize(&attr, stack_bytes);
    const int rc = pthread_create(&id_, &attr, &Thread::run, owned.get());
    pthread_attr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("pthread_create failed");
    owned.release();  // the thread deletes it
    joinable_ = true;
  }
  Thread(Thread&& other) noexcept : id_(other.id_), joinable_(std::exchange(other.joinable_, false)) {}
  Thread& operator=(Thread&& other) noexcept {
    if (this != &other) {
      join();
      id_ = other.id_;
      joinable_ = std::exchange(other.joinable_, false);
    }
    return *this;
  }
  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;
  ~Thread() { join(); }

  bool joinable() const { return joinable_; }
  void join() {
    if (!joinable_) return;
    joinable_ = false;
    pthread_join(id_, nullptr);
  }

 private:
  static void* run(void* arg) {
    std::unique_ptr<std::function<void()>> body(static_cast<std::function<void()>*>(arg));
    (*body)();
    return nullptr;
  }

  pthread_t id_{};
  bool joinable_ = false;
};

}  // namespace midge::util
