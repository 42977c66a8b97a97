// PasswordAuthenticator and its WorkPool: which checks answer at once on
// the calling (worker) thread, which go to the pool, and the bound.
#include "auth/password_authenticator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

namespace midge::auth {
namespace {

using protocol::ReasonCode;

std::shared_ptr<const PasswordFile> users(int iterations = 1000) {
  std::vector<std::string> problems;
  const std::string text = "alice:" + PasswordHash::make("secret", HashType::kSha512Pbkdf2, iterations)->to_string();
  return PasswordFile::parse(text, "pw", problems);
}

// A reply that records its answer and the thread that gave it.
struct Answer {
  std::promise<std::pair<ReasonCode, std::thread::id>> promise;
  std::future<std::pair<ReasonCode, std::thread::id>> future = promise.get_future();
  broker::Authenticator::Reply reply() {
    broker::Authenticator::Reply r;
    r.answer = [this](ReasonCode code) { promise.set_value({code, std::this_thread::get_id()}); };
    return r;
  }
  ReasonCode get() {
    EXPECT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    const auto [code, thread] = future.get();
    EXPECT_NE(thread, std::this_thread::get_id());  // answered off the caller's thread
    return code;
  }
};

broker::Credentials who(std::string user, std::optional<std::string> password) {
  return broker::Credentials{"client", std::move(user), std::move(password)};
}

TEST(PasswordAuthenticator, HashingIsNeverOnTheCallersThread) {
  auto file = users();
  PasswordAuthenticator auth(file, {});
  Answer wrong, unknown, right;
  EXPECT_EQ(auth.authenticate(who("alice", "nope"), wrong.reply()), std::nullopt);
  EXPECT_EQ(auth.authenticate(who("bob", "secret"), unknown.reply()), std::nullopt);  // unknown: not faster
  EXPECT_EQ(auth.authenticate(who("alice", "secret"), right.reply()), std::nullopt);
  EXPECT_EQ(wrong.get(), ReasonCode::kNotAuthorized);
  EXPECT_EQ(unknown.get(), ReasonCode::kNotAuthorized);
  EXPECT_EQ(right.get(), ReasonCode::kSuccess);
  EXPECT_EQ(file->hash_work(), 3000u);  // one hash each, the unknown user's included
  // Remembered now: answered at once, no hashing.
  EXPECT_EQ(auth.authenticate(who("alice", "secret"), {}), ReasonCode::kSuccess);
  EXPECT_EQ(file->hash_work(), 3000u);
}

TEST(PasswordAuthenticator, NoPasswordIsRefusedAtOnce) {
  auto file = users();
  PasswordAuthenticator auth(file, {});
  EXPECT_EQ(auth.authenticate(who("alice", std::nullopt), {}), ReasonCode::kNotAuthorized);
  EXPECT_EQ(auth.authenticate(who("bob", std::nullopt), {}), ReasonCode::kNotAuthorized);
  EXPECT_EQ(file->hash_work(), 0u);
}

TEST(PasswordAuthenticator, FullQueueIsServerBusy) {
  PasswordAuthenticator auth(users(), {.threads = 1, .max_queued = 0});
  EXPECT_EQ(auth.authenticate(who("alice", "secret"), {}), ReasonCode::kServerBusy);
  EXPECT_EQ(auth.authenticate(who("bob", "x"), {}), ReasonCode::kServerBusy);
}

TEST(PasswordAuthenticator, ClientGoneBeforeTheCheckCostsNothing) {
  auto file = users();
  PasswordAuthenticator auth(file, {.threads = 1, .max_queued = 8});
  broker::Authenticator::Reply gone;
  bool answered = false;
  gone.answer = [&answered](ReasonCode) { answered = true; };
  gone.wanted = [] { return false; };
  EXPECT_EQ(auth.authenticate(who("alice", "nope"), gone), std::nullopt);
  Answer later;  // one thread, in order: when this one answers, the first was skipped
  EXPECT_EQ(auth.authenticate(who("alice", "nope2"), later.reply()), std::nullopt);
  EXPECT_EQ(later.get(), ReasonCode::kNotAuthorized);
  EXPECT_FALSE(answered);
  EXPECT_EQ(file->hash_work(), 1000u);
}

TEST(PasswordAuthenticator, ReplaceTakesTheNewFile) {
  PasswordAuthenticator auth(users(), {});
  Answer before;
  auth.authenticate(who("alice", "secret"), before.reply());
  EXPECT_EQ(before.get(), ReasonCode::kSuccess);
  std::vector<std::string> problems;
  auth.replace(PasswordFile::parse("carol:" + PasswordHash::make("c", HashType::kSha512)->to_string(), "pw", problems));
  Answer old_user, new_user;
  EXPECT_EQ(auth.authenticate(who("alice", "secret"), old_user.reply()), std::nullopt);  // cache dropped
  EXPECT_EQ(old_user.get(), ReasonCode::kNotAuthorized);
  auth.authenticate(who("carol", "c"), new_user.reply());
  EXPECT_EQ(new_user.get(), ReasonCode::kSuccess);
}

TEST(WorkPool, BoundedQueue) {
  WorkPool pool(1, 1);
  std::mutex m;
  std::condition_variable cv;
  bool started = false, release = false;
  ASSERT_TRUE(pool.try_post([&] {
    std::unique_lock lock(m);
    started = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  }));
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return started; });  // the only thread is busy now
  }
  std::promise<void> second_ran;
  EXPECT_TRUE(pool.try_post([&] { second_ran.set_value(); }));  // waits in the queue
  EXPECT_FALSE(pool.try_post([] {}));                            // beyond the bound
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(second_ran.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  pool.stop();
  EXPECT_FALSE(pool.try_post([] {}));  // stopped
}

}  // namespace
}  // namespace midge::auth
