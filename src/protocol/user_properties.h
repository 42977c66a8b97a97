// MQTT 5.0 User Properties (0x26, section 3.1.2.11.8): name/value pairs that
// may repeat any number of times. Kept as they are on the wire, without the
// property id (u16 length + bytes, name then value, pair after pair), in one
// string: a packet full of empty pairs costs its own size in memory instead
// of 64 bytes per 5-byte pair, which is what a client could otherwise make
// the broker hold (security review C2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace midge::protocol {

class UserProperties {
 public:
  using value_type = std::pair<std::string_view, std::string_view>;

  class iterator {
   public:
    using value_type = UserProperties::value_type;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(std::string_view bytes, size_t pos) : bytes_(bytes), pos_(pos) {}
    value_type operator*() const {
      const std::string_view key = field(pos_);
      return {key, field(pos_ + 2 + key.size())};
    }
    iterator& operator++() {
      const size_t key = length(pos_);
      pos_ += 4 + key + length(pos_ + 2 + key);
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator& o) const { return pos_ == o.pos_; }

   private:
    size_t length(size_t at) const {
      return (size_t{static_cast<uint8_t>(bytes_[at])} << 8) | static_cast<uint8_t>(bytes_[at + 1]);
    }
    std::string_view field(size_t at) const { return bytes_.substr(at + 2, length(at)); }
    std::string_view bytes_;
    size_t pos_ = 0;
  };

  UserProperties() = default;
  UserProperties(std::initializer_list<value_type> pairs) {
    for (const value_type& p : pairs) emplace_back(p.first, p.second);
  }

  // Names and values longer than 65535 bytes cannot be sent: they are cut.
  void emplace_back(std::string_view key, std::string_view value) {
    put(key);
    put(value);
    ++count_;
  }
  void push_back(const value_type& p) { emplace_back(p.first, p.second); }
  void clear() {
    bytes_.clear();
    count_ = 0;
  }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  value_type operator[](size_t i) const {
    iterator it = begin();
    while (i-- > 0) ++it;
    return *it;
  }
  iterator begin() const { return iterator(bytes_, 0); }
  iterator end() const { return iterator(bytes_, bytes_.size()); }
  bool operator==(const UserProperties&) const = default;

 private:
  void put(std::string_view s) {
    if (s.size() > 0xFFFF) s = s.substr(0, 0xFFFF);
    bytes_.push_back(static_cast<char>(s.size() >> 8));
    bytes_.push_back(static_cast<char>(s.size() & 0xFF));
    bytes_.append(s);
  }
  std::string bytes_;
  size_t count_ = 0;
};

}  // namespace midge::protocol
