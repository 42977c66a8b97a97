// util::hash_bytes: keyed, so keys built to collide under a fixed function
// spread out (review H3).
#include "util/string_hash.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace midge::util {
namespace {

// The unkeyed hash Midge used before (commit aba19c2), for 16-byte strings:
// each 8-byte step is h = f(h ^ w) with f a bijection, so the second word
// can be solved for any target state.
constexpr uint64_t kMul = 0xBF58476D1CE4E5B9ULL;
uint64_t step(uint64_t x) {
  x *= kMul;
  return x ^ (x >> 31);
}
uint64_t old_state16(const std::string& s) {
  uint64_t w0, w1;
  std::memcpy(&w0, s.data(), 8);
  std::memcpy(&w1, s.data() + 8, 8);
  return step(step(0x9E3779B97F4A7C15ULL ^ 16 ^ w0) ^ w1);
}

// 16-byte strings with the same old state (so the same old hash): w1 =
// target ^ f(h0 ^ w0), kept when all its bytes are printable.
std::vector<std::string> old_collisions(size_t n) {
  std::mt19937_64 rng(1);
  const uint64_t target = 0x4141414141414141ULL;
  std::vector<std::string> out;
  while (out.size() < n) {
    std::string s(16, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>('a' + rng() % 26);
    uint64_t w0;
    std::memcpy(&w0, s.data(), 8);
    const uint64_t w1 = target ^ step(0x9E3779B97F4A7C15ULL ^ 16 ^ w0);
    std::memcpy(s.data() + 8, &w1, 8);
    bool printable = true;
    for (int i = 8; i < 16; ++i) printable = printable && s[i] >= 0x21 && s[i] <= 0x7e;
    if (printable) out.push_back(s);
  }
  return out;
}

TEST(StringHashTest, KeysCollidingUnderTheOldHashSpreadOut) {
  const std::vector<std::string> keys = old_collisions(200);
  std::set<uint64_t> old_states, hashes, buckets;
  for (const std::string& k : keys) {
    old_states.insert(old_state16(k));
    hashes.insert(hash_bytes(k));
    buckets.insert(hash_bytes(k) % 1024);
  }
  EXPECT_EQ(old_states.size(), 1u);  // the generator works
  EXPECT_EQ(hashes.size(), keys.size());
  EXPECT_GT(buckets.size(), 150u);  // ~182 expected for 200 random values
}

TEST(StringHashTest, DependsOnTheKeyAndEveryByte) {
  const HashKey a{1, 2, 3, 5};
  const HashKey b{1, 2, 3, 7};
  EXPECT_NE(hash_bytes("topic/level", a), hash_bytes("topic/level", b));
  std::set<uint64_t> seen;
  for (size_t len = 0; len <= 40; ++len) {
    std::string s(len, 'x');
    seen.insert(hash_bytes(s));
    for (size_t i = 0; i < len; ++i) {
      std::string t = s;
      t[i] = 'y';
      seen.insert(hash_bytes(t));
    }
  }
  EXPECT_EQ(seen.size(), 1u + 40u * 41u / 2u + 40u);  // all distinct
}

TEST(StringHashTest, ProcessKeyIsRandom) {
  const HashKey other = random_hash_key();
  EXPECT_NE(std::memcmp(&other, &kProcessHashKey, sizeof other), 0);
}

}  // namespace
}  // namespace midge::util
