// A first-in first-out queue on a std::vector: unlike std::deque (which
// allocates ~600 bytes as soon as it is constructed), an empty Fifo costs
// one pointer and nothing on the heap — what keeps idle sessions small (a
// session has two, and most never queue anything). Elements are popped by
// advancing a head index; the vector is compacted when half of it is dead.
// Once used, the storage stays while it is small (no allocation per message
// for a queue that empties after each one) and is freed when it drains
// after growing.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace midge::util {

template <typename T>
class Fifo {
 public:
  using iterator = typename std::vector<T>::iterator;
  using const_iterator = typename std::vector<T>::const_iterator;

  bool empty() const { return !s_ || s_->head == s_->items.size(); }
  size_t size() const { return s_ ? s_->items.size() - s_->head : 0; }
  T& front() { return s_->items[s_->head]; }
  T& back() { return s_->items.back(); }
  const T& front() const { return s_->items[s_->head]; }
  const T& back() const { return s_->items.back(); }

  void push_back(T value) {
    if (!s_) s_ = std::make_unique<Store>();
    s_->items.push_back(std::move(value));
  }
  void pop_front() {
    std::vector<T>& items = s_->items;
    size_t& head = s_->head;
    items[head] = T();  // release what the element holds now
    ++head;
    if (head == items.size()) {
      clear_keep_capacity();
    } else if (head >= 32 && head * 2 >= items.size()) {
      items.erase(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(head));
      head = 0;
    }
  }
  // Erasing the front (the usual case: acknowledgements arrive in order) is
  // O(1); elsewhere it moves the elements behind it.
  iterator erase(iterator it) {
    if (it == begin()) {
      pop_front();
      return begin();
    }
    auto next = s_->items.erase(it);
    if (empty()) {
      clear_keep_capacity();
      return end();
    }
    return next;
  }
  void clear() { s_.reset(); }

  iterator begin() { return s_ ? s_->items.begin() + static_cast<std::ptrdiff_t>(s_->head) : none().begin(); }
  iterator end() { return s_ ? s_->items.end() : none().end(); }
  const_iterator begin() const {
    return s_ ? s_->items.cbegin() + static_cast<std::ptrdiff_t>(s_->head) : none().cbegin();
  }
  const_iterator end() const { return s_ ? s_->items.cend() : none().cend(); }

 private:
  struct Store {
    std::vector<T> items;
    size_t head = 0;
  };
  // The iterators of a Fifo that never held anything: an empty vector's.
  static std::vector<T>& none() {
    static std::vector<T> empty;
    return empty;
  }
  void clear_keep_capacity() {
    if (s_->items.capacity() > 64) {
      s_.reset();  // an idle queue gives memory back
      return;
    }
    s_->items.clear();
    s_->head = 0;
  }

  std::unique_ptr<Store> s_;
};

}  // namespace midge::util
