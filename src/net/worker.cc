#include "net/worker.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "net/connection.h"
#include "net/listener.h"

namespace midge::net {

namespace {
constexpr auto kTick = milliseconds(100);
// Messages, and bytes of them, a worker may have waiting from its peers
// before they pause.
constexpr size_t kInboxLimit = 50000;
constexpr size_t kInboxByteLimit = 64u << 20;

size_t task_bytes(const broker::MessagePtr& m) { return m->topic.size() + m->payload.size(); }
constexpr auto kPause = milliseconds(1);
}  // namespace

Worker::Worker(unsigned index, broker::SharedState& shared, std::vector<std::unique_ptr<Worker>>& all,
               std::function<void(util::LogType, const std::string&)> log)
    : index_(index), shared_(shared), all_(all), log_(std::move(log)), broker_(index, shared, *this) {}

Worker::~Worker() {
  if (thread_.joinable()) thread_.join();
}

void Worker::start() {
  outbox_.resize(all_.size());
  thread_ = util::Thread(util::kSmallStack, [this] {
    // Seen in top -H and ps -L; the store's fault hook names workers by it.
    const std::string name = "midge-w" + std::to_string(index_);
    ::pthread_setname_np(::pthread_self(), name.c_str());
    arm_tick();
    loop_.run();
  });
}

void Worker::stop() {
  loop_.post([this] { do_stop(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::do_stop() {
  if (stopping_) return;
  stopping_ = true;
  broker_.shutdown(Clock::now());
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [id, c] : connections_) all.push_back(c);
  for (auto& c : all) c->close();
  // Give closing sockets a moment to drain, then leave the loop.
  stop_deadline_ = Clock::now() + seconds(2);
  loop_.after(milliseconds(200), [this] { finish_stop(); });
}

void Worker::finish_stop() {
  // The wills the other workers published when they stopped may be for sessions here: this
  // loop runs until every worker has stopped and what they sent here has run, so that a
  // persistent subscriber's copy is queued and written before the end (bounded by 2 s).
  shut_down_.store(true, std::memory_order_release);
  const bool all_down = std::all_of(all_.begin(), all_.end(), [](const std::unique_ptr<Worker>& w) {
    return w->shut_down_.load(std::memory_order_acquire);
  });
  if ((!all_down || inbox_pending_.load(std::memory_order_acquire) != 0) && Clock::now() < stop_deadline_) {
    loop_.after(milliseconds(10), [this] { finish_stop(); });
    return;
  }
  if (journal_ && !journal_->empty()) commit_journal();  // what the last turns left
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [id, c] : connections_) all.push_back(c);
  connections_.clear();
  all.clear();
  loop_.stop();
}

void Worker::adopt_socket(int fd, ListenerSlot slot) {
  broker::Stats::add(stats().sockets_total);
  const Listener* listener = slot.listener();
  broker::Stats::add(stats().of(listener ? listener->traffic_slot() : 0).sockets);
  std::unique_ptr<Transport> transport = listener ? listener->make_transport() : nullptr;
  if (stopping_ || (listener && listener->tls() && !transport)) {
    ::close(fd);
    return;
  }
  const uint64_t id = next_id_++;
  auto c = std::make_shared<Connection>(*this, fd, id, std::move(slot));
  connections_.emplace(id, c);
  if (transport) c->set_transport(std::move(transport));
  // Mosquitto's notice for each accepted TCP connection (not for WebSockets, as Mosquitto).
  if (listener && !listener->options().websocket && !listener->options().http &&
      shared_.logs(util::LogType::kNotice)) {
    log(util::LogType::kNotice,
        "New connection from " + c->peer() + " on port " + std::to_string(listener->options().port) + ".");
  }
  c->start();
}

void Worker::adopt_connected(int fd, protocol::ConnectPacket connect, bool id_assigned,
                             std::string pending, ListenerSlot slot, std::unique_ptr<Transport> transport) {
  if (stopping_) {
    ::close(fd);
    return;
  }
  const uint64_t id = next_id_++;
  auto c = std::make_shared<Connection>(*this, fd, id, std::move(slot));
  connections_.emplace(id, c);
  if (transport) c->set_transport(std::move(transport));
  c->adopt(std::move(connect), id_assigned, std::move(pending));
}

void Worker::hand_over(Connection& connection, int fd, unsigned target, protocol::ConnectPacket&& connect,
                       bool id_assigned, std::string pending) {
  remove(connection.id());
  Worker* to = all_[target].get();
  // std::function needs a copyable callable: move-only state goes in a shared box.
  struct Box {
    protocol::ConnectPacket connect;
    std::string pending;
    ListenerSlot slot;
    std::unique_ptr<Transport> transport;
  };
  auto box = std::make_shared<Box>(
      Box{std::move(connect), std::move(pending), connection.take_slot(), connection.take_transport()});
  to->loop().post([to, fd, id_assigned, box] {
    to->adopt_connected(fd, std::move(box->connect), id_assigned, std::move(box->pending), std::move(box->slot),
                        std::move(box->transport));
  });
}

uint16_t Worker::add_listener(std::vector<std::unique_ptr<Worker>>& all, const Listener& listener) {
  uint16_t slot = 0;
  for (auto& w : all) {
    slot = w->stats().add_traffic_slot();
    w->listeners_.push_back(&listener);
  }
  return slot;
}

void Worker::remove(uint64_t id) {
  // Deferred to the end of the turn: the connection may be running one of
  // its own handlers, or have an event later in this turn's batch.
  loop_.at_end_of_turn([this, id] { connections_.erase(id); });
}

void Worker::mark_dirty(Connection& connection) {
  dirty_.push_back(connection.shared_from_this());
  schedule_flush();
}

// Keeps one live heap entry per connection, no later than its deadline.
// Activity moves deadlines later without touching the heap; the entry is
// re-pushed when it pops early.
void Worker::watch_deadline(Connection& connection) {
  const TimePoint deadline = connection.deadline();
  if (deadline == TimePoint::max() || deadline >= connection.watched_until) return;
  connection.watched_until = deadline;
  deadlines_.emplace(deadline, connection.id());
}

void Worker::schedule_flush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  // After all I/O of this turn: every socket that got output is written once.
  loop_.at_end_of_turn([this] { flush_turn(); });
}

void Worker::set_store(broker::Store* store) {
  store_ = store;
  journal_ = store ? store->journal() : nullptr;
  broker_.set_journal(journal_.get());
  channel_seq_.assign(all_.size(), 0);
  handled_from_.assign(all_.size(), 0);
  committed_from_ = std::vector<std::atomic<uint64_t>>(all_.size());
}

void Worker::set_transit_base(uint64_t base) {
  transit_id_ = base;
  for (uint64_t& s : channel_seq_) s = base;
  for (uint64_t& s : handled_from_) s = base;
  for (auto& c : committed_from_) c.store(base, std::memory_order_relaxed);
}

// Transit records whose every receiver has committed are erased, oldest
// first, with one range deletion.
void Worker::prune_transits() {
  uint64_t done = 0;
  while (!transits_.empty()) {
    const Transit& t = transits_.front();
    const bool all = std::all_of(t.receivers.begin(), t.receivers.end(), [&](const broker::Journal::Receiver& r) {
      return all_[r.worker]->committed_from(index_) >= r.seq;
    });
    if (!all) break;
    done = t.id;
    transits_.pop_front();
  }
  if (done != 0) journal_->erase_transits(index_, done);
}

bool Worker::markers_behind() const {
  for (size_t origin = 0; origin < handled_from_.size(); ++origin) {
    if (handled_from_[origin] > committed_from_[origin].load(std::memory_order_relaxed)) return true;
  }
  return false;
}

void Worker::hold_until_commit(Connection& connection) {
  awaiting_commit_.push_back(connection.shared_from_this());
}

// One batch per loop turn (or less: a write in the middle of a turn commits
// what came before it). A failed write withdraws the acknowledgements the
// batch would have covered by dropping their connections' output.
void Worker::commit_journal() {
  committing_ = true;
  // After a failure, the first write that works proves the store is back;
  // then everything it missed is written again, with the markers, before any
  // acknowledgement is released.
  // If that first write fails, nothing else is written: a batch of markers
  // alone must never claim effects the store lost (found by
  // test_a_receiving_workers_failed_write_is_made_good when the disk came
  // back between the two writes).
  bool ok = !rewrite_needed_ || journal_->commit();
  if (ok && rewrite_needed_) {
    rewrite_store();
    rewrite_needed_ = false;
  }
  // The last message from each peer whose effects are all in this batch
  // (recovery routes again only what no committed marker covers).
  for (size_t origin = 0; ok && origin < handled_from_.size(); ++origin) {
    if (handled_from_[origin] > committed_from_[origin].load(std::memory_order_relaxed)) {
      journal_->put_marker(index_, static_cast<unsigned>(origin), handled_from_[origin]);
    }
  }
  const TimePoint start = Clock::now();
  ok = ok && journal_->commit();
  commit_times_.record(static_cast<uint64_t>(std::chrono::nanoseconds(Clock::now() - start).count()));
  if (!ok) commit_failures_.store(commit_failures_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  std::vector<std::shared_ptr<Connection>> held;
  held.swap(awaiting_commit_);
  if (ok) {
    broker_.committed();
    for (auto& c : held) c->commit_done();
    for (size_t origin = 0; origin < handled_from_.size(); ++origin) {
      committed_from_[origin].store(handled_from_[origin], std::memory_order_release);
    }
    if (store_failed_) {
      store_failed_ = false;
      log("The store writes again: QoS 1 and 2 messages are accepted again.");
    }
  } else {
    if (!store_failed_) {
      store_failed_ = true;
      log("Error: the store could not write (" + journal_->error() +
          "); QoS 1 and 2 messages are refused until it can, and the clients whose acknowledgements it held are "
          "disconnected.");
    }
    for (auto& c : held) c->abort_unwritten();
    rewrite_needed_ = true;
  }
  committing_ = false;
}

// What a failed batch held is gone from the store: the broker's durable
// sessions and this worker's transits not yet pruned are journaled again.
void Worker::rewrite_store() {
  broker_.rewrite_store();
  for (const Transit& t : transits_) journal_transit(t);
}

// While the store fails, once a second: is it writable again?
void Worker::retry_store(TimePoint now) {
  if (!journal_) return;
  prune_transits();
  if (!journal_->empty() || markers_behind()) commit_journal();  // turns that wrote nothing
  if (journal_->healthy() || now < next_store_retry_) return;
  next_store_retry_ = now + seconds(1);
  if (store_->resume()) commit_journal();
}

void Worker::flush_turn() {
  flush_scheduled_ = false;
  // Deferred deliveries now due are journaled, committed by before_write;
  // then the PUBACKs they held go out with this turn's output.
  const bool more = journal_ && broker_.end_turn(Clock::now());
  before_write();
  if (journal_) broker_.release_acks();
  if (more && !defer_timer_) {  // the turn that ends their grace must come
    defer_timer_ = true;
    loop_.after(broker::Broker::kDeferGrace, [this] {
      defer_timer_ = false;
      schedule_flush();
    });
  }
  std::vector<std::shared_ptr<Connection>> dirty;
  dirty.swap(dirty_);
  for (auto& c : dirty) c->flush();
  for (size_t w = 0; w < outbox_.size(); ++w) {
    if (outbox_[w].empty()) continue;
    Worker* to = all_[w].get();
    size_t bytes = 0;
    for (const Task& t : outbox_[w]) bytes += task_bytes(t.message);
    to->inbox_pending_.fetch_add(outbox_[w].size(), std::memory_order_relaxed);
    to->inbox_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    auto tasks = std::make_shared<std::vector<Task>>(std::move(outbox_[w]));
    outbox_[w].clear();
    const unsigned origin = index_;
    to->loop().post([to, tasks, origin] { to->run_tasks(*tasks, origin); });
  }
}

void Worker::run_tasks(std::vector<Task>& tasks, unsigned origin) {
  const TimePoint now = Clock::now();
  size_t bytes = 0;
  for (Task& t : tasks) {
    bytes += task_bytes(t.message);
    if (t.member) {
      broker_.on_shared_delivery(*t.member, t.message, now);
    } else {
      broker_.on_remote_publish(t.message, now);
    }
    if (t.seq != 0 && journal_) handled_from_[origin] = t.seq;  // its effects are journaled
  }
  inbox_pending_.fetch_sub(tasks.size(), std::memory_order_relaxed);
  inbox_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
}

bool Worker::peers_overloaded() const {
  for (const auto& w : all_) {
    if (w.get() == this) continue;
    if (w->inbox_pending_.load(std::memory_order_relaxed) > kInboxLimit ||
        w->inbox_bytes_.load(std::memory_order_relaxed) > kInboxByteLimit) {
      return true;
    }
  }
  return false;
}

void Worker::pause_reading(Connection& connection) {
  paused_.push_back(connection.shared_from_this());
  if (paused_.size() > 1) return;
  loop_.after(kPause, [this] {
    std::vector<std::shared_ptr<Connection>> again;
    again.swap(paused_);
    for (auto& c : again) c->resume_reading();
  });
}

// The signal is pending until the main thread takes it, and the main
// thread counts the reload before it does (server.cc): a CONNECT read after
// the signal was sent sees one or the other.
bool Worker::reload_pending() const {
  if (shared_.reloads_begun.load(std::memory_order_acquire) != reloads_applied_) return true;
  sigset_t pending;
  return ::sigpending(&pending) == 0 && sigismember(&pending, SIGHUP) == 1;
}

void Worker::hold_connect(Connection& connection) { held_connects_.push_back(connection.weak_from_this()); }

void Worker::reload_applied(uint64_t count) {
  reloads_applied_ = std::max(reloads_applied_, count);
  if (reload_pending()) return;  // another one came meanwhile: they wait for it
  std::vector<std::weak_ptr<Connection>> held;
  held.swap(held_connects_);
  for (auto& weak : held) {
    if (auto c = weak.lock()) c->resume_connect();
  }
}

bool Worker::broadcast(const broker::MessagePtr& message, bool durable) {
  if (all_.size() <= 1) return false;
  durable = durable && journal_;
  std::vector<broker::Journal::Receiver> receivers;
  for (size_t w = 0; w < all_.size(); ++w) {
    if (w == index_ || !all_[w]->broker().interest().may_match(message->topic)) continue;
    const uint64_t seq = durable ? ++channel_seq_[w] : 0;
    outbox_[w].push_back(Task{message, std::nullopt, seq});
    receivers.push_back({static_cast<uint8_t>(w), seq});
  }
  if (receivers.empty()) return false;
  if (durable) {
    // Committed before the publisher's acknowledgement is written, like
    // everything journaled in this turn.
    transits_.push_back(Transit{++transit_id_, std::move(receivers), message, std::nullopt});
    journal_transit(transits_.back());
  }
  schedule_flush();
  return true;
}

void Worker::deliver_shared(const broker::SharedMember& member, const broker::MessagePtr& message, bool durable) {
  durable = durable && journal_ && message->qos > 0;
  const uint64_t seq = durable ? ++channel_seq_[member.worker] : 0;
  outbox_[member.worker].push_back(Task{message, member, seq});
  if (durable) {
    std::vector<broker::Journal::Receiver> to{{static_cast<uint8_t>(member.worker), seq}};
    transits_.push_back(Transit{++transit_id_, std::move(to), message, member});
    journal_transit(transits_.back());
  }
  schedule_flush();
}

void Worker::journal_transit(const Transit& t) {
  if (t.member) {
    const broker::Journal::SharedTarget target{t.member->client_id, t.member->qos, t.member->subscription_id};
    journal_->put_shared_transit(index_, t.id, *t.message, t.receivers.front(), target);
  } else {
    journal_->put_transit(index_, t.id, *t.message, t.receivers);
  }
}

void Worker::arm_tick() {
  loop_.after(kTick, [this] {
    if (stopping_) return;
    on_tick();
    arm_tick();
  });
}

void Worker::on_tick() {
  const TimePoint now = Clock::now();
  while (!deadlines_.empty() && deadlines_.top().first <= now) {
    const auto [when, id] = deadlines_.top();
    deadlines_.pop();
    auto it = connections_.find(id);
    if (it == connections_.end()) continue;
    std::shared_ptr<Connection> c = it->second;
    if (c->closed() || when != c->watched_until) continue;  // stale entry
    c->watched_until = TimePoint::max();
    if (c->deadline() <= now) {
      c->on_deadline(now);
    } else {
      watch_deadline(*c);  // the deadline moved: look again then
    }
  }
  broker_.tick(now);
  retry_store(now);
}

}  // namespace midge::net
