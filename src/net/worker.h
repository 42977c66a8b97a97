// One event loop thread: an EventLoop, the connections living on it,
// its Broker, a 100 ms tick for timers, the per-turn flush of dirty sockets
// and mailboxes to the other workers (batched per turn).
#pragma once

#include <atomic>
#include <deque>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/broker.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "broker/shared_state.h"
#include "util/thread.h"
#include "util/time.h"

namespace midge::net {

class Connection;
class Listener;
class Server;

class Worker final : public broker::Router {
 public:
  Worker(unsigned index, broker::SharedState& shared, std::vector<std::unique_ptr<Worker>>& all,
         std::function<void(util::LogType, const std::string&)> log);
  ~Worker() override;

  void start();   // spawns the thread
  void stop();    // asks for a clean stop (from any thread)
  void join();

  EventLoop& loop() { return loop_; }
  broker::Broker& broker() { return broker_; }
  broker::Stats& stats() { return broker_.stats(); }
  const broker::Stats& stats() const { return broker_.stats(); }
  const broker::SharedState& shared() const { return shared_; }
  unsigned index() const { return index_; }
  unsigned worker_count() const { return static_cast<unsigned>(all_.size()); }
  const broker::Settings& settings() const { return broker_.settings(); }
  // A line typed by its prefix ("Error: ", "Warning: "; otherwise information).
  void log(const std::string& line) { log_(util::log_type_of_line(line), line); }
  void log(util::LogType type, const std::string& line) override { log_(type, line); }
  // Connection events (notices, as in Mosquitto), unless `connection_messages false`.
  void log_connection(const std::string& line) {
    if (broker_.settings().connection_messages) log_(util::LogType::kNotice, line);
  }

  // A freshly accepted socket for this worker (called on this thread); its
  // listener (in `slot`) gives it its transport.
  void adopt_socket(int fd, ListenerSlot slot);
  // A connection whose CONNECT belongs to a session on this worker.
  // `transport`: its TLS/WebSocket state (null for plain TCP); `pending`
  // is always plain MQTT bytes.
  void adopt_connected(int fd, protocol::ConnectPacket connect, bool id_assigned,
                       std::string pending, ListenerSlot slot, std::unique_ptr<Transport> transport);
  // Moves a connection to `target` after its CONNECT (sessions live on the
  // worker that owns their client id).
  void hand_over(Connection& connection, int fd, unsigned target,
                 protocol::ConnectPacket&& connect, bool id_assigned, std::string pending);

  void mark_dirty(Connection& connection);
  void watch_deadline(Connection& connection);
  void remove(uint64_t id);

  // broker::Router
  bool broadcast(const broker::MessagePtr& message, bool durable) override;
  void deliver_shared(const broker::SharedMember& member, const broker::MessagePtr& message, bool durable) override;

  size_t connection_count() const { return connections_.size(); }

  // Start-up, before the workers start: gives `listener` its counters in
  // every worker's Stats (Stats::add_traffic_slot); returns their slot (Link::traffic_slot).
  static uint16_t add_listener(std::vector<std::unique_ptr<Worker>>& all, const Listener& listener);
  // Every listener, in the order of their slots (slot = index + 1); the
  // same list on every worker.
  const std::vector<const Listener*>& listeners() const { return listeners_; }

  // For metrics (any thread): messages posted here not yet run; the
  // journal's commit times and failed commits (persistence only).
  size_t inbox_pending() const { return inbox_pending_.load(std::memory_order_relaxed); }
  bool has_store() const { return journal_ != nullptr; }
  const util::Histogram& commit_times() const { return commit_times_; }
  uint64_t commit_failures() const { return commit_failures_.load(std::memory_order_relaxed); }

  // persistence (broker/store.h): this worker's journal of `store`, set
  // before start(); null store: none.
  void set_store(broker::Store* store);
  // Called before any socket write: commits what the broker journaled, so
  // that no acknowledgement leaves before what it acknowledges is written.
  void before_write() {
    if (journal_ && !committing_ && !journal_->empty()) commit_journal();
  }
  bool may_write_early() const { return !journal_ || journal_->empty(); }
  // `connection` got an acknowledgement while the journal held records.
  void hold_until_commit(Connection& connection);
  // Start-up, after recovery: transit ids and channel sequence numbers
  // start above every one the store holds.
  void set_transit_base(uint64_t base);
  // The last message from `origin` whose effects this worker has written.
  uint64_t committed_from(unsigned origin) const { return committed_from_[origin].load(std::memory_order_acquire); }

  // Backpressure between workers: while another worker has more than
  // kInboxLimit (worker.cc) messages from its peers still to process,
  // connections here stop reading (for a millisecond at a time) instead of
  // letting its mailbox grow.
  bool peers_overloaded() const;
  void pause_reading(Connection& connection);

  // A reload (SIGHUP) is sent or under way and not yet applied here: a
  // CONNECT waits for it (Connection::check_credentials), as Mosquitto,
  // which reloads before it reads the next packet (issue 14, cause V).
  bool reload_pending() const;
  void hold_connect(Connection& connection);
  // The main thread's last task of reload number `count`: resumes the
  // CONNECTs held meanwhile.
  void reload_applied(uint64_t count);

 private:
  struct Task {
    broker::MessagePtr message;
    std::optional<broker::SharedMember> member;
    uint64_t seq = 0;  // durable: its number on this (origin, receiver) channel
  };
  // A durable message handed to other workers, journaled until every
  // receiver has committed what it did with it.
  // The message and member are kept to write it again after a failed commit
  // (rewrite_store).
  struct Transit {
    uint64_t id;
    std::vector<broker::Journal::Receiver> receivers;
    broker::MessagePtr message;
    std::optional<broker::SharedMember> member;  // a $share delivery
  };
  void journal_transit(const Transit& t);
  void rewrite_store();
  void prune_transits();
  bool markers_behind() const;
  void schedule_flush();
  void flush_turn();
  void commit_journal();
  void retry_store(TimePoint now);
  void run_tasks(std::vector<Task>& tasks, unsigned origin);
  void arm_tick();
  void on_tick();
  void do_stop();
  void finish_stop();

  const unsigned index_;
  broker::SharedState& shared_;
  std::vector<std::unique_ptr<Worker>>& all_;
  std::function<void(util::LogType, const std::string&)> log_;
  EventLoop loop_;
  broker::Broker broker_;
  util::Thread thread_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Connection>> connections_;
  std::vector<std::shared_ptr<Connection>> dirty_;
  bool flush_scheduled_ = false;
  std::vector<std::vector<Task>> outbox_;  // per target worker
  using Deadline = std::pair<TimePoint, uint64_t>;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  bool stopping_ = false;
  // Set when this worker's stop has published its wills and handed them to the other workers
  // (finish_stop); each worker ends its loop only once every worker has set it.
  std::atomic<bool> shut_down_{false};
  TimePoint stop_deadline_{};  // the wait for the others is bounded
  std::atomic<size_t> inbox_pending_{0};  // messages posted to this worker, not yet run
  std::atomic<size_t> inbox_bytes_{0};    // their topic and payload bytes
  std::vector<std::shared_ptr<Connection>> paused_;
  uint64_t reloads_applied_ = 0;
  std::vector<std::weak_ptr<Connection>> held_connects_;
  broker::Store* store_ = nullptr;
  std::unique_ptr<broker::Journal> journal_;
  std::vector<std::shared_ptr<Connection>> awaiting_commit_;
  bool committing_ = false;
  std::vector<uint64_t> channel_seq_;     // per receiver: the last durable task sent
  uint64_t transit_id_ = 0;
  std::deque<Transit> transits_;
  std::vector<uint64_t> handled_from_;    // per origin: the last durable task run here
  std::vector<std::atomic<uint64_t>> committed_from_;  // per origin (read by the origin)
  bool store_failed_ = false;  // logged once per failure, until it writes again
  bool defer_timer_ = false;  // a flush is due when deferred deliveries' grace ends
  bool rewrite_needed_ = false;  // a commit failed: rewrite_store() at the next that works
  util::Histogram commit_times_;
  std::atomic<uint64_t> commit_failures_{0};  // written by this worker only
  std::vector<const Listener*> listeners_;
  TimePoint next_store_retry_{};
};

}  // namespace midge::net
