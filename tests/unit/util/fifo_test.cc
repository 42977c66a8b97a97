#include "util/fifo.h"

#include <gtest/gtest.h>

#include <string>

namespace midge::util {
namespace {

TEST(FifoTest, KeepsOrderThroughPopsAndCompaction) {
  Fifo<int> q;
  EXPECT_TRUE(q.empty());
  int next_out = 0;
  for (int i = 0; i < 1000; ++i) {
    q.push_back(i);
    if (i % 3 == 0) {
      EXPECT_EQ(q.front(), next_out);
      q.pop_front();
      ++next_out;
    }
  }
  EXPECT_EQ(q.size(), static_cast<size_t>(1000 - next_out));
  int expected = next_out;
  for (int v : q) EXPECT_EQ(v, expected++);
  EXPECT_EQ(q.back(), 999);
}

TEST(FifoTest, EraseFrontMiddleAndLast) {
  Fifo<std::string> q;
  for (const char* s : {"a", "b", "c", "d"}) q.push_back(s);
  q.erase(q.begin());  // front: O(1) path
  EXPECT_EQ(q.front(), "b");
  q.erase(q.begin() + 1);  // "c"
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q.back(), "d");
  q.erase(q.begin());
  q.erase(q.begin());
  EXPECT_TRUE(q.empty());
  q.push_back("e");
  EXPECT_EQ(q.front(), "e");
}

}  // namespace
}  // namespace midge::util
