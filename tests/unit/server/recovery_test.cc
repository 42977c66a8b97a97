// server::recover: a store written by hand (as a previous run would have
// left it) read back into workers that are built but not started.
#include "server/persistence.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "broker/session.h"
#include "store/rocks_store.h"
#include "store/store_test_util.h"

namespace midge::server {
namespace {

using store::testing::message;
using store::testing::TempDir;

// A v3.1.1 persistent session, offline, subscribed to t/# at QoS 1, as
// written by `worker` of the previous run.
void put_session(broker::Journal& j, const std::string& id, unsigned worker) {
  broker::Session s;
  s.client_id = id;
  s.version = protocol::Version::kV311;
  s.expiry_interval = broker::kSessionNeverExpires;
  j.put_session(s, worker);
  broker::SessionSubscription sub;
  sub.options.max_qos = 1;
  j.put_subscription(id, "t/#", sub);
}

class RecoveryTest : public ::testing::Test {
 protected:
  std::unique_ptr<broker::Store> open() {
    std::string error;
    auto s = store::RocksStore::open(dir_.path(), {}, error);
    EXPECT_TRUE(s) << error;
    return s;
  }
  // Recovers into `n` fresh workers; returns the payloads queued for `id`.
  std::vector<std::string> recover_queued(unsigned n, const std::string& id) {
    auto s = open();
    shared_ = std::make_unique<broker::SharedState>(broker::Settings{});
    workers_.clear();
    for (unsigned i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<net::Worker>(i, *shared_, workers_, [](util::LogType, const std::string&) {}));
    }
    EXPECT_TRUE(recover(*s, *shared_, workers_, [this](const std::string& line) { log_.push_back(line); }));
    std::vector<std::string> payloads;
    for (auto& w : workers_) {
      if (const broker::Session* session = w->broker().find_session(id)) {
        for (const broker::Delivery& d : session->queue) payloads.emplace_back(d.message->payload);
      }
    }
    for (auto& w : workers_) w->set_store(nullptr);  // the journals go before the store
    return payloads;
  }

  TempDir dir_;
  std::unique_ptr<broker::SharedState> shared_;
  std::vector<std::unique_ptr<net::Worker>> workers_;
  std::vector<std::string> log_;
};

// Worker 0 acknowledged three messages and handed them to worker 1, which
// committed what it did with the first only (its marker says 2). Worker 1's
// sessions get the other two at start-up; worker 0's get nothing again.
TEST_F(RecoveryTest, MessagesAReceiverHadNotWrittenAreRoutedAgainToItsSessionsOnly) {
  {
    auto s = open();
    auto j = s->journal();
    put_session(*j, "on-1", 1);
    put_session(*j, "on-0", 0);
    j->put_transit(0, 10, *message("t/a", "written"), {{1, 2}});
    j->put_transit(0, 11, *message("t/b", "lost-1"), {{1, 3}});
    j->put_transit(0, 12, *message("t/c", "lost-2"), {{1, 4}, {2, 9}});
    j->put_marker(1, 0, 2);
    j->put_marker(2, 0, 9);
    ASSERT_TRUE(j->commit()) << j->error();
  }
  EXPECT_EQ(recover_queued(2, "on-1"), (std::vector<std::string>{"lost-1", "lost-2"}));
  const broker::Session* other = nullptr;
  for (auto& w : workers_) other = other ? other : w->broker().find_session("on-0");
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE(other->queue.empty());

  // The replayed messages are the sessions' own now; the transits are gone,
  // so a second start routes nothing again.
  EXPECT_EQ(recover_queued(3, "on-1"), (std::vector<std::string>{"lost-1", "lost-2"}));
  auto s = open();
  store::testing::Loaded loaded;
  std::string error;
  ASSERT_TRUE(s->load(loaded.visitor(), error)) << error;
  EXPECT_TRUE(loaded.transits.empty());
}

// A $share message handed to the worker of the member it picked, which had
// not written it: at start-up that member gets it, and no one else (another
// member on the same worker, a plain subscriber there).
TEST_F(RecoveryTest, ASharedDeliveryAReceiverHadNotWrittenGoesToItsMemberOnly) {
  {
    auto s = open();
    auto j = s->journal();
    for (const char* id : {"member", "other-member", "plain"}) put_session(*j, id, 1);
    broker::SessionSubscription sub;
    sub.options.max_qos = 1;
    j->put_subscription("member", "$share/g/t/#", sub);
    j->put_subscription("other-member", "$share/g/t/#", sub);
    j->put_shared_transit(0, 5, *message("t/s", "shared", 1), {1, 3}, {"member", 1, 0});
    ASSERT_TRUE(j->commit()) << j->error();
  }
  EXPECT_EQ(recover_queued(2, "member"), (std::vector<std::string>{"shared"}));
  for (const char* id : {"other-member", "plain"}) {
    const broker::Session* session = nullptr;
    for (auto& w : workers_) session = session ? session : w->broker().find_session(id);
    ASSERT_NE(session, nullptr) << id;
    EXPECT_TRUE(session->queue.empty()) << id;
  }
}

}  // namespace
}  // namespace midge::server
