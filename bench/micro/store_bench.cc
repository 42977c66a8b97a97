// What the store costs per QoS 1 message kept for a persistent session,
// without the broker or sockets: the ceiling of issue 12's fan-in target.
// Each iteration is one message's life as the broker journals it to a
// connected subscriber: put_delivery (message and packet id) in one batch,
// erase_delivery (its PUBACK) in the next; a batch is committed every
// `batch` messages (one event-loop turn). Run pinned to one core, as
// bench/compare.sh pins the broker, so RocksDB's flush shares that core:
//   taskset -c 0 build/bench/midge_micro --benchmark_filter=Store
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "broker/message.h"
#include "broker/session.h"
#include "broker/store.h"
#include "store/rocks_store.h"

namespace {

using namespace midge;

broker::MessagePtr message_of(size_t payload) {
  broker::MessageFields f;
  f.topic = "bench/fan-in/0";
  const std::string body(payload, 'x');
  f.payload = body;
  f.qos = 1;
  f.origin_client_id = "mb-publisher-0";
  return broker::Message::create(f);
}

void StoreMessageLife(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  std::string dir = (std::filesystem::temp_directory_path() / "midge-store-bench-XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) {
    state.SkipWithError("mkdtemp");
    return;
  }
  {
    std::string error;
    auto store = store::RocksStore::open(dir, {}, error);
    if (!store) {
      state.SkipWithError(error.c_str());
      return;
    }
    auto journal = store->journal();
    broker::Delivery d{message_of(static_cast<size_t>(state.range(1))), 1, false, {}, false, 0, false};
    const std::string client = "mb32263x68497s0";
    uint64_t seq = 0, acked = 0;
    size_t in_batch = 0;
    for (auto _ : state) {
      ++seq;
      journal->put_delivery(client, seq, d, static_cast<uint16_t>(seq % 65535 + 1));
      if (++in_batch == batch) {
        // The previous batch's messages are acknowledged in this one.
        while (acked + batch < seq) journal->erase_delivery(client, ++acked, false);
        if (!journal->commit()) state.SkipWithError(journal->error().c_str());
        in_batch = 0;
      }
    }
    state.SetItemsProcessed(state.iterations());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
// batch of 400 (what compare.sh's fan-in commits per turn), 64-byte and 1 KiB payloads
BENCHMARK(StoreMessageLife)->Args({400, 64})->Args({400, 1024})->Args({50, 64})->MinTime(3.0);

}  // namespace
