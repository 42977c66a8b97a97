// A first-in first-out queue on a std::vector: unlike std::deque (which
// allocates ~600 bytes as soon as it is constructed), an empty Fifo costs
// nothing on the heap — what keeps idle sessions small. Elements are popped
// by advancing a head index; the vector is compacted when half of it is dead.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace midge::util {

template <typename T>
class Fifo {
 public:
  using iterator = typename std::vector<T>::iterator;
  using const_iterator = typename std::vector<T>::const_iterator;

  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  T& back() { return items_.back(); }
  const T& front() const { return items_[head_]; }
  const T& back() const { return items_.back(); }

  void push_back(T value) { items_.push_back(std::move(value)); }
  void pop_front() {
    items_[head_] = T();  // release what the element holds now
    ++head_;
    if (head_ == items_.size()) {
      clear_keep_capacity();
    } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  // Erasing the front (the usual case: acknowledgements arrive in order) is
  // O(1); elsewhere it moves the elements behind it.
  iterator erase(iterator it) {
    if (it == begin()) {
      pop_front();
      return begin();
    }
    auto next = items_.erase(it);
    if (empty()) {
      clear_keep_capacity();
      return items_.end();
    }
    return next;
  }
  void clear() {
    std::vector<T>().swap(items_);
    head_ = 0;
  }

  iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  const_iterator end() const { return items_.end(); }

 private:
  void clear_keep_capacity() {
    items_.clear();
    head_ = 0;
    if (items_.capacity() > 64) std::vector<T>().swap(items_);  // an idle queue gives memory back
  }

  std::vector<T> items_;
  size_t head_ = 0;
};

}  // namespace midge::util
