// A keyed string hash for every table whose keys a client chooses (topic
// levels, client ids, topic aliases), and transparent hashing so that maps
// keyed by std::string can be searched with a std::string_view.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <sys/random.h>

namespace midge::util {

// Drawn once per process from the system's random source. An unkeyed hash
// can be inverted offline, and a client that makes all its keys collide
// turns a hash table into a list (review 2026-11-29, H3).
struct HashKey {
  uint64_t k0, k1, k2, k3;
};
inline HashKey random_hash_key() {
  HashKey key{};
  auto* bytes = reinterpret_cast<unsigned char*>(&key);
  size_t got = 0;
  while (got < sizeof key) {
    const ssize_t n = getrandom(bytes + got, sizeof key - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (errno != EINTR) {
      std::abort();  // no randomness: better not to start than to run unkeyed
    }
  }
  key.k3 |= (1ULL << 63) | 1;  // a final multiplier that keeps every bit
  return key;
}
inline const HashKey kProcessHashKey = random_hash_key();

namespace detail {
__extension__ typedef unsigned __int128 U128;  // GCC/Clang; one MUL on x86-64
// 64x64->128 multiply, folded: the building block of the mixing below.
inline uint64_t fold_multiply(uint64_t a, uint64_t b) {
  const U128 r = static_cast<U128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
inline uint64_t load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t load32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
}  // namespace detail

// Keyed hash of a byte string: 16 bytes per folded multiply, every input
// word masked with secret key words before it is multiplied, the length in
// the starting state. The short strings of MQTT (most topic levels) cost two
// multiplies.
inline uint64_t hash_bytes(std::string_view s, const HashKey& key = kProcessHashKey) {
  using detail::fold_multiply;
  using detail::load32;
  using detail::load64;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  uint64_t h = key.k0 ^ (n * 0x9E3779B97F4A7C15ULL);
  while (n > 16) {
    h = fold_multiply(load64(p) ^ key.k1, load64(p + 8) ^ h);
    p += 16;
    n -= 16;
  }
  uint64_t a = 0;
  uint64_t b = 0;
  if (n >= 8) {  // two words, overlapping when n < 16
    a = load64(p);
    b = load64(p + n - 8);
  } else if (n >= 4) {
    a = load32(p);
    b = load32(p + n - 4);
  } else if (n > 0) {
    a = (uint64_t{p[0]} << 16) | (uint64_t{p[n / 2]} << 8) | p[n - 1];
  }
  h = fold_multiply(a ^ key.k1, b ^ h ^ key.k2);
  return fold_multiply(h ^ key.k2, key.k3);
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return hash_bytes(s); }
};

template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

}  // namespace midge::util
