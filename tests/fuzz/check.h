// FUZZ_CHECK(condition): a property every input must keep. When it fails,
// the condition and its line are printed before abort(), which libFuzzer
// reports as a crash (and scripts/fuzz as a failure, input in hex).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)
