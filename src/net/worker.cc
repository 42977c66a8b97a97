#include "net/worker.h"

#include <unistd.h>

#include "net/connection.h"
#include "net/websocket.h"

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
               std::function<void(const std::string&)> log)
    : index_(index), shared_(shared), all_(all), log_(std::move(log)), broker_(index, shared, *this) {}

Worker::~Worker() {
  if (thread_.joinable()) thread_.join();
}

void Worker::start() {
  outbox_.resize(all_.size());
  thread_ = std::thread([this] {
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
  loop_.after(milliseconds(200), [this] { finish_stop(); });
}

void Worker::finish_stop() {
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [id, c] : connections_) all.push_back(c);
  connections_.clear();
  all.clear();
  loop_.stop();
}

void Worker::adopt_socket(int fd, ListenerSlot slot, bool websocket, std::string http_dir) {
  broker::Stats::add(stats().sockets_total);
  if (stopping_) {
    ::close(fd);
    return;
  }
  const uint64_t id = next_id_++;
  auto c = std::make_shared<Connection>(*this, fd, id, std::move(slot));
  connections_.emplace(id, c);
  if (websocket) c->set_websocket(std::make_unique<WebSocket>(std::move(http_dir)));
  c->start();
}

void Worker::adopt_connected(int fd, protocol::ConnectPacket connect, bool id_assigned,
                             std::string pending, ListenerSlot slot, std::unique_ptr<WebSocket> ws) {
  if (stopping_) {
    ::close(fd);
    return;
  }
  const uint64_t id = next_id_++;
  auto c = std::make_shared<Connection>(*this, fd, id, std::move(slot));
  connections_.emplace(id, c);
  if (ws) c->set_websocket(std::move(ws));
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
    std::unique_ptr<WebSocket> ws;
  };
  auto box = std::make_shared<Box>(
      Box{std::move(connect), std::move(pending), connection.take_slot(), connection.take_websocket()});
  to->loop().post([to, fd, id_assigned, box] {
    to->adopt_connected(fd, std::move(box->connect), id_assigned, std::move(box->pending), std::move(box->slot),
                        std::move(box->ws));
  });
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

void Worker::flush_turn() {
  flush_scheduled_ = false;
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
    to->loop().post([to, tasks] { to->run_tasks(*tasks); });
  }
}

void Worker::run_tasks(std::vector<Task>& tasks) {
  const TimePoint now = Clock::now();
  size_t bytes = 0;
  for (Task& t : tasks) {
    bytes += task_bytes(t.message);
    if (t.member) {
      broker_.on_shared_delivery(*t.member, t.message, now);
    } else {
      broker_.on_remote_publish(t.message, now);
    }
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

bool Worker::broadcast(const broker::MessagePtr& message) {
  if (all_.size() <= 1) return false;
  bool any = false;
  for (size_t w = 0; w < all_.size(); ++w) {
    if (w == index_ || !all_[w]->broker().interest().may_match(message->topic)) continue;
    outbox_[w].push_back(Task{message, std::nullopt});
    any = true;
  }
  if (any) schedule_flush();
  return any;
}

void Worker::deliver_shared(const broker::SharedMember& member, const broker::MessagePtr& message) {
  outbox_[member.worker].push_back(Task{message, member});
  schedule_flush();
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
}

}  // namespace midge::net
