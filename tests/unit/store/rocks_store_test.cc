#include "store/rocks_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "broker/retained_store.h"
#include "broker/session.h"
#include "store/records.h"
#include "store/store_test_util.h"

namespace midge::store {
namespace {

namespace fs = std::filesystem;
using testing::Loaded;
using testing::message;
using testing::TempDir;

std::unique_ptr<RocksStore> open_ok(const std::string& dir, RocksStore::Options options = {}) {
  std::string error;
  auto store = RocksStore::open(dir, options, error);
  EXPECT_TRUE(store) << error;
  return store;
}

Loaded load(RocksStore& store) {
  Loaded loaded;
  std::string error;
  EXPECT_TRUE(store.load(loaded.visitor(), error)) << error;
  return loaded;
}

Loaded reopen_and_load(const std::string& dir) {
  auto store = open_ok(dir);
  return store ? load(*store) : Loaded{};
}

broker::Session make_session(std::string id) {
  broker::Session s;
  s.client_id = std::move(id);
  s.version = protocol::Version::kV5;
  s.expiry_interval = 3600;
  return s;
}

broker::Delivery delivery(std::string_view payload, uint8_t qos) {
  broker::Delivery d;
  d.message = message("q/t", payload, qos);
  d.qos = qos;
  return d;
}

bool commit(broker::Journal& j) {
  const bool ok = j.commit();
  EXPECT_TRUE(ok) << j.error();
  return ok;
}

// Writes a session with a bit of everything under `id`.
void put_full_session(broker::Journal& j, const std::string& id) {
  broker::Session s = make_session(id);
  j.put_session(s, 0);
  j.put_subscription(id, "a/#", {});
  j.put_delivery(id, 1, delivery("one", 1), 0);
  j.put_inflight(id, 2, 5, true);
  j.put_incoming(id, 9);
}

TEST(RocksStore, EveryRecordRoundTrips) {
  TempDir dir;
  const TimePoint now = Clock::now();
  {
    auto store = open_ok(dir.path());
    ASSERT_TRUE(store);
    EXPECT_EQ(store->previous_workers(), 0u);
    store->set_workers(3);
    auto j = store->journal();

    broker::RetainSource source;
    source.username = std::make_unique<const std::string>("alice");
    j->put_retained(*message("r/with", "1", 1, now + seconds(100)), &source);
    j->put_retained(*message("r/without", "2", 0), nullptr);
    broker::RetainSource anonymous;
    j->put_retained(*message("r/anon", "3", 2), &anonymous);

    broker::Session s = make_session("client");
    s.username = std::make_unique<const std::string>("bob");
    s.expires_at = now + seconds(3600);
    s.last_packet_id = 77;
    s.will = std::make_unique<protocol::Will>();
    s.will->topic = "will/topic";
    s.will->payload = "gone";
    s.will->qos = 1;
    s.will->retain = true;
    s.will->properties.will_delay_interval = 30;
    s.will->properties.content_type = "text/plain";
    s.will->properties.user_properties.emplace_back("k", "v");
    s.will_at = now + seconds(30);
    j->put_session(s, 2);

    broker::SessionSubscription sub;
    sub.options = {2, true, true, 2};
    sub.subscription_id = 42;
    j->put_subscription("client", "x/+/y", sub);
    j->put_subscription("client", "plain", {});

    broker::Delivery queued = delivery("queued", 1);
    queued.retain = true;
    queued.from_retained = true;
    queued.subscription_ids = {42, 7};
    j->put_delivery("client", 30, queued, 0);        // queued, never sent
    j->put_delivery("client", 10, delivery("inflight", 2), 0);
    j->put_inflight("client", 10, 100, false);    // sent, awaiting PUBREC
    j->put_delivery("client", 20, delivery("released", 2), 0);
    j->put_inflight("client", 20, 101, true);
    j->erase_delivery_message("client", 20);      // released: only the state stays
    j->put_delivery("client", 40, delivery("at once", 1), 102);  // sent at once: one record
    j->put_incoming("client", 513);
    j->put_incoming("client", 2);

    j->put_transit(1, 5, *message("t/x", "moving", 1), {{0, 11}, {2, 12}});
    j->put_marker(2, 1, 12);
    EXPECT_EQ(j->size(), 17u);
    ASSERT_TRUE(commit(*j));
    EXPECT_TRUE(j->empty());
  }
  auto store = open_ok(dir.path());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->previous_workers(), 3u);
  Loaded l = load(*store);
  EXPECT_TRUE(l.problems.empty()) << l.all_problems();

  ASSERT_EQ(l.retained.size(), 3u);  // in key order: r/anon, r/with, r/without
  EXPECT_EQ(l.retained[0].message->topic, "r/anon");
  EXPECT_TRUE(l.retained[0].has_source);
  EXPECT_FALSE(l.retained[0].username);
  EXPECT_EQ(l.retained[1].message->payload, "1");
  EXPECT_TRUE(l.retained[1].has_source);
  EXPECT_EQ(l.retained[1].username, "alice");
  ASSERT_TRUE(l.retained[1].message->expires_at);
  EXPECT_LE(std::chrono::abs(*l.retained[1].message->expires_at - (now + seconds(100))), milliseconds(50));
  EXPECT_EQ(l.retained[1].message->pass_through, std::string_view("\x03\x00\x04text", 7));
  EXPECT_EQ(l.retained[1].message->origin_client_id, "publisher");
  EXPECT_EQ(l.retained[1].message->qos, 1);
  EXPECT_FALSE(l.retained[2].has_source);
  EXPECT_FALSE(l.retained[2].message->expires_at);

  ASSERT_EQ(l.sessions.size(), 1u);
  const broker::StoredSession& s = l.sessions[0];
  EXPECT_EQ(s.client_id, "client");
  EXPECT_EQ(s.version, protocol::Version::kV5);
  EXPECT_EQ(s.expiry_interval, 3600u);
  EXPECT_EQ(s.username, "bob");
  EXPECT_TRUE(s.offline);
  ASSERT_TRUE(s.expires_at);
  EXPECT_LE(std::chrono::abs(*s.expires_at - (now + seconds(3600))), milliseconds(50));
  EXPECT_EQ(s.worker, 2u);
  EXPECT_EQ(s.last_packet_id, 77);
  ASSERT_TRUE(s.will);
  EXPECT_EQ(s.will->topic, "will/topic");
  EXPECT_EQ(s.will->payload, "gone");
  EXPECT_EQ(s.will->qos, 1);
  EXPECT_TRUE(s.will->retain);
  EXPECT_EQ(s.will->properties.will_delay_interval, 30u);
  EXPECT_EQ(s.will->properties.content_type, "text/plain");
  ASSERT_EQ(s.will->properties.user_properties.size(), 1u);
  EXPECT_EQ(s.will->properties.user_properties[0].second, "v");
  ASSERT_TRUE(s.will_at);
  EXPECT_LE(std::chrono::abs(*s.will_at - (now + seconds(30))), milliseconds(50));

  ASSERT_EQ(s.subscriptions.size(), 2u);  // in filter order
  EXPECT_EQ(s.subscriptions[0].filter, "plain");
  EXPECT_EQ(s.subscriptions[0].subscription_id, 0u);
  EXPECT_EQ(s.subscriptions[1].filter, "x/+/y");
  EXPECT_EQ(s.subscriptions[1].options, (protocol::SubscribeOptions{2, true, true, 2}));
  EXPECT_EQ(s.subscriptions[1].subscription_id, 42u);

  ASSERT_EQ(s.deliveries.size(), 4u);
  EXPECT_EQ(s.deliveries[0].seq, 10u);
  EXPECT_EQ(s.deliveries[0].message->payload, "inflight");
  EXPECT_EQ(s.deliveries[0].qos, 2);
  EXPECT_EQ(s.deliveries[0].packet_id, 100);
  EXPECT_FALSE(s.deliveries[0].released);
  EXPECT_EQ(s.deliveries[1].seq, 20u);
  EXPECT_FALSE(s.deliveries[1].message);
  EXPECT_EQ(s.deliveries[1].packet_id, 101);
  EXPECT_TRUE(s.deliveries[1].released);
  EXPECT_EQ(s.deliveries[2].seq, 30u);
  EXPECT_EQ(s.deliveries[2].message->payload, "queued");
  EXPECT_EQ(s.deliveries[2].packet_id, 0);
  EXPECT_TRUE(s.deliveries[2].retain);
  EXPECT_TRUE(s.deliveries[2].from_retained);
  EXPECT_EQ(s.deliveries[2].subscription_ids, (std::vector<uint32_t>{42, 7}));
  EXPECT_EQ(s.deliveries[3].seq, 40u);
  EXPECT_EQ(s.deliveries[3].message->payload, "at once");
  EXPECT_EQ(s.deliveries[3].packet_id, 102);
  EXPECT_FALSE(s.deliveries[3].released);
  EXPECT_EQ(s.incoming_qos2, (std::vector<uint16_t>{2, 513}));

  ASSERT_EQ(l.transits.size(), 1u);
  EXPECT_EQ(l.transits[0].origin, 1u);
  EXPECT_EQ(l.transits[0].id, 5u);
  EXPECT_EQ(l.transits[0].message->payload, "moving");
  ASSERT_EQ(l.transits[0].receivers.size(), 2u);
  EXPECT_EQ(l.transits[0].receivers[1].worker, 2);
  EXPECT_EQ(l.transits[0].receivers[1].seq, 12u);
  ASSERT_EQ(l.markers.size(), 1u);
  EXPECT_EQ(l.markers[0], std::make_tuple(2u, 1u, uint64_t{12}));
}

// A link that is never used: a session holding one is online.
class IdleLink : public broker::Link {
 public:
  std::string& out() override { return out_; }
  void commit() override {}
  size_t pending_bytes() const override { return 0; }
  void close() override {}

 private:
  std::string out_;
};

TEST(RocksStore, OnlineSessionLoadsAsOnline) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    auto j = store->journal();
    IdleLink link;
    broker::Session online = make_session("c");
    online.link = &link;
    j->put_session(online, 0);
    j->put_session(make_session("never-expires"), 0);  // offline without a deadline
    commit(*j);
  }
  Loaded l = reopen_and_load(dir.path());
  ASSERT_EQ(l.sessions.size(), 2u);
  EXPECT_FALSE(l.sessions[0].offline);
  EXPECT_FALSE(l.sessions[0].expires_at);
  EXPECT_FALSE(l.sessions[0].will);
  EXPECT_TRUE(l.sessions[1].offline);
  EXPECT_FALSE(l.sessions[1].expires_at);
}

TEST(RocksStore, EraseSessionRemovesThatSessionOnly) {
  TempDir dir;
  auto store = open_ok(dir.path());
  auto j = store->journal();
  put_full_session(*j, "a");
  put_full_session(*j, "ab");
  put_full_session(*j, "");
  j->put_retained(*message("keep", "r"), nullptr);
  commit(*j);
  j->erase_session("a");
  commit(*j);
  store.reset();

  Loaded l = reopen_and_load(dir.path());
  EXPECT_TRUE(l.problems.empty()) << l.all_problems();
  ASSERT_EQ(l.sessions.size(), 2u);
  EXPECT_FALSE(l.session("a"));
  const broker::StoredSession* ab = l.session("ab");
  ASSERT_TRUE(ab);
  EXPECT_EQ(ab->subscriptions.size(), 1u);
  EXPECT_EQ(ab->deliveries.size(), 2u);
  EXPECT_EQ(ab->incoming_qos2.size(), 1u);
  EXPECT_TRUE(l.session(""));
  EXPECT_EQ(l.retained.size(), 1u);
}

TEST(RocksStore, SessionWrittenAfterItsEraseInOneBatchStarts) {
  TempDir dir;
  auto store = open_ok(dir.path());
  auto j = store->journal();
  put_full_session(*j, "c");
  commit(*j);
  // A clean start: the old session goes, the new one comes, in one batch.
  j->erase_session("c");
  j->put_session(make_session("c"), 1);
  j->put_subscription("c", "new", {});
  commit(*j);
  Loaded l = load(*store);
  ASSERT_EQ(l.sessions.size(), 1u);
  EXPECT_EQ(l.sessions[0].worker, 1u);
  ASSERT_EQ(l.sessions[0].subscriptions.size(), 1u);
  EXPECT_EQ(l.sessions[0].subscriptions[0].filter, "new");
  EXPECT_TRUE(l.sessions[0].deliveries.empty());
  EXPECT_TRUE(l.sessions[0].incoming_qos2.empty());
}

TEST(RocksStore, EraseTransitsUpToAnId) {
  TempDir dir;
  auto store = open_ok(dir.path());
  auto j = store->journal();
  for (uint64_t id = 1; id <= 5; ++id) j->put_transit(0, id, *message("t", "x"), {{1, id}});
  j->put_transit(1, 1, *message("t", "other origin"), {{0, 1}});
  commit(*j);
  j->erase_transits(0, 3);
  commit(*j);
  Loaded l = load(*store);
  ASSERT_EQ(l.transits.size(), 3u);
  EXPECT_EQ(l.transits[0].id, 4u);
  EXPECT_EQ(l.transits[1].id, 5u);
  EXPECT_EQ(l.transits[2].origin, 1u);
}

TEST(RocksStore, DeliveriesComeBackInSeqOrderAndErasedOnesStayGone) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    auto j = store->journal();
    j->put_session(make_session("c"), 0);
    // Seqs that sort wrongly as text (9 < 10 < 256).
    for (uint64_t seq : {256u, 9u, 10u, 1000u}) j->put_delivery("c", seq, delivery(std::to_string(seq), 1), 0);
    commit(*j);
    j->erase_delivery("c", 10, true);
    j->put_inflight("c", 9, 1, false);
    commit(*j);
  }
  Loaded l = reopen_and_load(dir.path());
  ASSERT_EQ(l.sessions.size(), 1u);
  std::vector<uint64_t> seqs;
  for (const auto& d : l.sessions[0].deliveries) seqs.push_back(d.seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{9, 256, 1000}));
  EXPECT_EQ(l.sessions[0].deliveries[0].packet_id, 1);
}

// Writes `value` under `key` with RocksDB itself, bypassing the codec.
void raw_put(const std::string& dir, const std::string& key, const std::string& value) {
  rocksdb::Options o;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(o, dir, &db).ok());
  EXPECT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
  delete db;
}

TEST(RocksStore, CorruptValuesAreSkippedAndReported) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    auto j = store->journal();
    j->put_retained(*message("a", "1"), nullptr);
    j->put_retained(*message("b", "2"), nullptr);
    put_full_session(*j, "good");
    put_full_session(*j, "bad-fields");
    put_full_session(*j, "bad-delivery");
    j->put_inflight("bad-delivery", 3, 7, false);  // in flight, message missing
    commit(*j);
  }
  raw_put(dir.path(), retained_key("a"), "garbage");
  raw_put(dir.path(), session_key("bad-fields", kSessionFields), std::string(1, kFormatVersion));
  raw_put(dir.path(), delivery_key("bad-delivery", kDeliveryMessage, 1), "\x01\x00");
  raw_put(dir.path(), "Zunknown", "x");

  Loaded l = reopen_and_load(dir.path());
  ASSERT_EQ(l.retained.size(), 1u);
  EXPECT_EQ(l.retained[0].message->topic, "b");
  ASSERT_EQ(l.sessions.size(), 2u);
  EXPECT_TRUE(l.session("good"));
  const broker::StoredSession* bad = l.session("bad-delivery");
  ASSERT_TRUE(bad);
  ASSERT_EQ(bad->deliveries.size(), 1u);  // the released one at seq 2
  EXPECT_EQ(bad->deliveries[0].seq, 2u);
  EXPECT_EQ(bad->subscriptions.size(), 1u);
  const std::string p = l.all_problems();
  EXPECT_NE(p.find("retained \"a\""), std::string::npos) << p;
  EXPECT_NE(p.find("session \"bad-fields\" fields"), std::string::npos) << p;
  EXPECT_NE(p.find("every record of session \"bad-fields\""), std::string::npos) << p;
  EXPECT_NE(p.find("session \"bad-delivery\" delivery 1: message topic"), std::string::npos) << p;
  EXPECT_NE(p.find("session \"bad-delivery\" in-flight state 3"), std::string::npos) << p;
  EXPECT_NE(p.find("key \"Zunknown\""), std::string::npos) << p;
  EXPECT_EQ(l.problems.size(), 6u) << p;
}

TEST(RocksStore, SessionWithoutFieldsIsSkipped) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    auto j = store->journal();
    j->put_subscription("orphan", "a", {});
    put_full_session(*j, "whole");
    commit(*j);
  }
  Loaded l = reopen_and_load(dir.path());
  ASSERT_EQ(l.sessions.size(), 1u);
  EXPECT_EQ(l.sessions[0].client_id, "whole");
  EXPECT_EQ(l.problems.size(), 2u) << l.all_problems();
}

fs::path only_wal(const std::string& dir) {
  fs::path wal;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".log" && e.file_size() > 0) {
      EXPECT_TRUE(wal.empty()) << "more than one WAL";
      wal = e.path();
    }
  }
  return wal;
}

TEST(RocksStore, TornWalLoadsTheBatchesBeforeTheTear) {
  TempDir dir;
  constexpr int kBatches = 50;
  {
    auto store = open_ok(dir.path());
    auto j = store->journal();
    for (int i = 0; i < kBatches; ++i) {
      j->put_retained(*message("t/" + std::to_string(1000 + i), std::string(100, 'x')), nullptr);
      commit(*j);
    }
  }
  const fs::path wal = only_wal(dir.path());
  ASSERT_FALSE(wal.empty());
  const auto size = fs::file_size(wal);
  fs::resize_file(wal, size * 2 / 3 + 7);  // cut inside a record

  Loaded l = reopen_and_load(dir.path());
  ASSERT_GT(l.retained.size(), 0u);
  ASSERT_LT(l.retained.size(), static_cast<size_t>(kBatches));
  // The cut is reported (RocksDB's words).
  EXPECT_NE(l.all_problems().find("store: RocksDB: "), std::string::npos) << l.all_problems();
  EXPECT_NE(l.all_problems().find("Corruption"), std::string::npos) << l.all_problems();
  // What survives is a prefix of what was written, in order.
  for (size_t i = 0; i < l.retained.size(); ++i) {
    EXPECT_EQ(l.retained[i].message->topic, "t/" + std::to_string(1000 + i));
  }
  // And the store takes writes again.
  auto store = open_ok(dir.path());
  auto j = store->journal();
  j->put_retained(*message("after", "x"), nullptr);
  EXPECT_TRUE(commit(*j));
}

TEST(RocksStore, DamagedTableIsRepairedAndTheRestServed) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    auto j = store->journal();
    for (int i = 0; i < 2000; ++i) {
      j->put_retained(*message("t/" + std::to_string(10000 + i), std::string(200, 'p')), nullptr);
    }
    commit(*j);
  }
  {  // move everything into a table file
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.path(), &db).ok());
    EXPECT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
    delete db;
  }
  fs::path sst;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    if (e.path().extension() == ".sst") sst = e.path();
  }
  ASSERT_FALSE(sst.empty());
  {  // scribble over the middle of its data blocks
    std::fstream f(sst, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(sst) / 3));
    const std::string junk(64, '\x5A');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  Loaded l = reopen_and_load(dir.path());
  EXPECT_LT(l.retained.size(), 2000u);
  EXPECT_FALSE(l.problems.empty());
  EXPECT_NE(l.all_problems().find("repaired"), std::string::npos) << l.all_problems();
  // Nothing is handed over twice.
  for (size_t i = 1; i < l.retained.size(); ++i) {
    EXPECT_LT(l.retained[i - 1].message->topic, l.retained[i].message->topic);
  }
  // What was served is still stored (the repair dropped the whole table),
  // and the repaired store loads cleanly.
  Loaded again = reopen_and_load(dir.path());
  EXPECT_TRUE(again.problems.empty()) << again.all_problems();
  ASSERT_EQ(again.retained.size(), l.retained.size());
  for (size_t i = 0; i < l.retained.size(); ++i) {
    EXPECT_EQ(again.retained[i].message->topic, l.retained[i].message->topic);
  }
}

TEST(RocksStore, DamagedCurrentFileIsRepairedAtOpen) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    auto j = store->journal();
    for (int i = 0; i < 100; ++i) j->put_retained(*message("t/" + std::to_string(i), "x"), nullptr);
    put_full_session(*j, "c");
    commit(*j);
  }
  std::ofstream(dir.path() + "/CURRENT", std::ios::trunc) << "garbage";
  Loaded l = reopen_and_load(dir.path());
  EXPECT_EQ(l.retained.size(), 100u);
  EXPECT_EQ(l.sessions.size(), 1u);
  EXPECT_NE(l.all_problems().find("found opening it: Corruption"), std::string::npos) << l.all_problems();
  // Repaired for good: the next start is clean.
  Loaded again = reopen_and_load(dir.path());
  EXPECT_TRUE(again.problems.empty()) << again.all_problems();
  EXPECT_EQ(again.retained.size(), 100u);
}

TEST(RocksStore, ReopenKeepsEverythingAcrossRuns) {
  TempDir dir;
  for (int run = 0; run < 3; ++run) {
    auto store = open_ok(dir.path());
    ASSERT_TRUE(store);
    Loaded l = load(*store);
    EXPECT_EQ(l.retained.size(), static_cast<size_t>(run));
    EXPECT_EQ(l.sessions.size(), static_cast<size_t>(run));
    EXPECT_EQ(store->previous_workers(), static_cast<unsigned>(run));
    store->set_workers(run + 1);
    auto j = store->journal();
    j->put_retained(*message("r/" + std::to_string(run), "x"), nullptr);
    put_full_session(*j, "s" + std::to_string(run));
    commit(*j);
  }
}

TEST(RocksStore, MissingDirectoryOrPlainFileFailsClearly) {
  TempDir dir;
  std::string error;
  EXPECT_FALSE(RocksStore::open(dir.path() + "/nope", {}, error));
  EXPECT_EQ(error, "persistence directory " + dir.path() + "/nope does not exist");
  EXPECT_FALSE(fs::exists(dir.path() + "/nope"));
  const std::string file = dir.path() + "/mosquitto.db";
  std::ofstream(file) << "not a rocksdb";
  EXPECT_FALSE(RocksStore::open(file, {}, error));
  EXPECT_NE(error.find("is not a directory"), std::string::npos) << error;
}

TEST(RocksStore, SecondOpenOfTheSameDirectoryFails) {
  TempDir dir;
  auto store = open_ok(dir.path());
  std::string error;
  EXPECT_FALSE(RocksStore::open(dir.path(), {}, error));
  EXPECT_NE(error.find("cannot open the store"), std::string::npos) << error;
}

TEST(RocksStore, FaultFileFailsCommitsUntilRemoved) {
  TempDir dir;
  const std::string fault = dir.path() + "/fault";
  const std::string db = dir.path() + "/db";
  fs::create_directory(db);
  ::setenv("MIDGE_STORE_FAULT_FILE", fault.c_str(), 1);
  auto store = open_ok(db, {.sync = true});
  ::unsetenv("MIDGE_STORE_FAULT_FILE");
  auto j = store->journal();

  EXPECT_TRUE(j->commit());  // nothing recorded: nothing to fail
  j->put_retained(*message("ok/1", "x"), nullptr);
  EXPECT_TRUE(commit(*j));

  std::ofstream(fault) << "";
  j->put_retained(*message("lost", "x"), nullptr);
  EXPECT_FALSE(j->commit());
  EXPECT_FALSE(j->healthy());
  EXPECT_EQ(j->error(), "injected fault");
  EXPECT_TRUE(j->empty());  // the batch is dropped
  EXPECT_FALSE(store->resume());

  fs::remove(fault);
  EXPECT_TRUE(store->resume());
  EXPECT_FALSE(j->healthy());  // until a commit succeeds
  j->put_retained(*message("ok/2", "x"), nullptr);
  EXPECT_TRUE(commit(*j));
  EXPECT_TRUE(j->healthy());
  EXPECT_EQ(j->error(), "");

  Loaded l = load(*store);
  ASSERT_EQ(l.retained.size(), 2u);
  EXPECT_EQ(l.retained[0].message->topic, "ok/1");
  EXPECT_EQ(l.retained[1].message->topic, "ok/2");
}

// A real full disk: a small tmpfs (needs root; skipped otherwise).
class SmallDisk {
 public:
  explicit SmallDisk(const std::string& dir, unsigned long flags = 0) : dir_(dir) {
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", flags, "size=40m") == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

TEST(RocksStore, FullDiskFailsCommitsThenResumesWithoutLosingAnything) {
  TempDir dir;
  SmallDisk disk(dir.path());
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (not root)";
  const std::string db = dir.path() + "/db";
  fs::create_directory(db);
  const std::string filler = dir.path() + "/filler";
  std::ofstream(filler) << std::string(20 << 20, 'f');
  auto store = open_ok(db);
  ASSERT_TRUE(store);
  auto j = store->journal();
  const std::string payload(100000, 'x');
  int committed = 0;
  for (; committed < 1000; ++committed) {
    j->put_retained(*message("t/" + std::to_string(committed), payload), nullptr);
    if (!j->commit()) break;
  }
  ASSERT_LT(committed, 1000) << "the disk never filled";
  EXPECT_FALSE(j->healthy());
  EXPECT_NE(j->error().find("No space left on device"), std::string::npos) << j->error();
  j->put_retained(*message("while-full", payload), nullptr);
  EXPECT_FALSE(j->commit());

  fs::remove(filler);
  // RocksDB recovers by itself once there is room (it checks every few
  // seconds); resume() says when.
  bool resumed = false;
  for (int i = 0; i < 300 && !(resumed = store->resume()); ++i) std::this_thread::sleep_for(milliseconds(100));
  ASSERT_TRUE(resumed);
  j->put_retained(*message("after", "x"), nullptr);
  EXPECT_TRUE(commit(*j));
  EXPECT_TRUE(j->healthy());
  j.reset();
  store.reset();

  Loaded l = reopen_and_load(db);
  EXPECT_TRUE(l.problems.empty()) << l.all_problems();
  EXPECT_EQ(l.retained.size(), static_cast<size_t>(committed) + 1);
  for (const auto& r : l.retained) EXPECT_NE(r.message->topic, "while-full");
}

TEST(RocksStore, ReadOnlyDirectoryFailsClearly) {
  TempDir dir;
  SmallDisk disk(dir.path(), MS_RDONLY);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (not root)";
  std::string error;
  EXPECT_FALSE(RocksStore::open(dir.path(), {}, error));
  EXPECT_NE(error.find("cannot open the store in " + dir.path()), std::string::npos) << error;
  EXPECT_NE(error.find("Read-only file system"), std::string::npos) << error;
}

// A child commits batches and reports each one after commit() returned;
// it is killed with SIGKILL mid-stream. Every reported batch must load.
TEST(RocksStore, KillNineLosesNothingCommitted) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    std::string error;
    auto store = RocksStore::open(dir.path(), {}, error);
    if (!store) ::_exit(1);
    auto j = store->journal();
    for (uint32_t n = 1;; ++n) {
      j->put_session(make_session("c" + std::to_string(n)), 0);
      j->put_delivery("c" + std::to_string(n), n, delivery(std::string(500, 'p'), 1), 0);
      if (!j->commit() || ::write(fds[1], &n, sizeof n) != sizeof n) ::_exit(2);
    }
  }
  ::close(fds[1]);
  uint32_t last = 0;
  while (last < 300 && ::read(fds[0], &last, sizeof last) == sizeof last) {
  }
  ::kill(child, SIGKILL);
  uint32_t n = 0;
  while (::read(fds[0], &n, sizeof n) == sizeof n) last = n;  // reported before it died
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_GE(last, 300u);

  Loaded l = reopen_and_load(dir.path());
  EXPECT_TRUE(l.problems.empty()) << l.all_problems();
  EXPECT_GE(l.sessions.size(), last);
  for (uint32_t i = 1; i <= last; ++i) {
    const broker::StoredSession* s = l.session("c" + std::to_string(i));
    ASSERT_TRUE(s) << "committed session " << i << " of " << last << " lost";
    ASSERT_EQ(s->deliveries.size(), 1u);
  }
}

TEST(RocksStore, ConcurrentJournalsAllLand) {
  TempDir dir;
  constexpr int kPerThread = 500;
  {
    auto store = open_ok(dir.path());
    auto run = [&store](int worker) {
      auto j = store->journal();
      const std::string id = "w" + std::to_string(worker);
      j->put_session(make_session(id), worker);
      for (int i = 1; i <= kPerThread; ++i) {
        j->put_delivery(id, i, delivery(std::to_string(i), 1), 0);
        if (i % 3 == 0) j->put_inflight(id, i, static_cast<uint16_t>(i), false);
        if (i % 7 == 0) {
          EXPECT_TRUE(j->commit()) << j->error();
        }
      }
      EXPECT_TRUE(j->commit()) << j->error();
    };
    std::thread a(run, 0), b(run, 1);
    a.join();
    b.join();
  }
  Loaded l = reopen_and_load(dir.path());
  ASSERT_EQ(l.sessions.size(), 2u);
  for (const auto& s : l.sessions) {
    ASSERT_EQ(s.deliveries.size(), static_cast<size_t>(kPerThread)) << s.client_id;
    for (int i = 0; i < kPerThread; ++i) {
      EXPECT_EQ(s.deliveries[i].seq, static_cast<uint64_t>(i + 1));
      EXPECT_EQ(s.deliveries[i].message->payload, std::to_string(i + 1));
      EXPECT_EQ(s.deliveries[i].packet_id, (i + 1) % 3 == 0 ? i + 1 : 0);
    }
  }
}

}  // namespace
}  // namespace midge::store
