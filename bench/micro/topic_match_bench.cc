// Topic matching against 100,000 subscriptions in broker::TopicTree: mostly
// exact filters plus a share of '+' and '#' filters, the shape of a fleet of
// devices with some dashboards. Sessions are fake pointers: the tree only
// compares them.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "broker/topic_tree.h"

namespace {

using midge::broker::Session;
using midge::broker::SubscriptionEntry;
using midge::broker::TopicTree;

constexpr int kSites = 100;
constexpr int kDevices = 100;  // per site
constexpr const char* kMetrics[] = {"temp", "humidity", "power", "status", "door",
                                    "co2", "light", "noise", "pressure", "motion"};

std::string topic(int site, int device, int metric) {
  return "site/" + std::to_string(site) + "/dev/" + std::to_string(device) + "/" +
         kMetrics[metric];
}

struct Fixture {
  TopicTree tree;
  std::vector<std::max_align_t> sessions;  // addresses only
  Session* session(size_t i) { return reinterpret_cast<Session*>(&sessions[i]); }

  // `wildcard_per_mille` of the 100k filters use '+' or '#'.
  explicit Fixture(int wildcard_per_mille) : sessions(100000) {
    std::mt19937 rng(7);
    size_t n = 0;
    for (int s = 0; s < kSites; ++s) {
      for (int d = 0; d < kDevices; ++d) {
        for (int m = 0; m < 10; ++m, ++n) {
          std::string f;
          const int roll = static_cast<int>(rng() % 1000);
          if (roll < wildcard_per_mille / 2) {
            f = "site/" + std::to_string(s) + "/dev/+/" + kMetrics[m];
          } else if (roll < wildcard_per_mille) {
            f = "site/" + std::to_string(s) + "/dev/" + std::to_string(d) + "/#";
          } else {
            f = topic(s, d, m);
          }
          tree.subscribe(f, SubscriptionEntry{session(n), {}, 0});
        }
      }
    }
  }
};

void match(benchmark::State& state) {
  static std::unique_ptr<Fixture> fixtures[2];
  const int which = static_cast<int>(state.range(0));
  if (!fixtures[which]) fixtures[which] = std::make_unique<Fixture>(which == 0 ? 0 : 20);
  TopicTree& tree = fixtures[which]->tree;
  // Few distinct topics hit the tree's match cache; many mostly miss it.
  const size_t distinct = static_cast<size_t>(state.range(1));
  std::vector<std::string> topics;
  std::mt19937 rng(11);
  for (size_t i = 0; i < distinct; ++i) {
    topics.push_back(topic(static_cast<int>(rng() % kSites), static_cast<int>(rng() % kDevices),
                           static_cast<int>(rng() % 10)));
  }
  size_t i = 0;
  size_t matched = 0;
  for (auto _ : state) {
    tree.match(topics[i++ & (distinct - 1)], [&](const SubscriptionEntry&) { ++matched; });
  }
  benchmark::DoNotOptimize(matched);
  state.SetItemsProcessed(state.iterations());
  state.counters["subs"] = static_cast<double>(tree.size());
  state.counters["matches_per_topic"] =
      static_cast<double>(matched) / static_cast<double>(state.iterations());
}
// {0: 100k exact filters, 1: 2% of them with wildcards} x {256, 65536 topics}.
BENCHMARK(match)->Args({0, 256})->Args({1, 256})->Args({0, 65536})->Args({1, 65536});

void subscribe_100k(benchmark::State& state) {
  for (auto _ : state) {
    Fixture f(20);
    benchmark::DoNotOptimize(f.tree.size());
  }
}
BENCHMARK(subscribe_100k)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
