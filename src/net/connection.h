// One client connection on one worker: reads into a large buffer, decodes
// every whole packet in it, hands packets to the worker's Broker, and
// gathers everything the broker writes into one output queue (inline bytes
// and slices of shared payloads) that the worker flushes once per loop turn
// (one sendmsg per socket per turn).
// Owned by its worker thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "broker/link.h"
#include "net/event_loop.h"
#include "net/listener.h"
#include "net/out_queue.h"
#include "net/transport.h"
#include "protocol/codec.h"
#include "util/time.h"

namespace midge::net {

class Worker;

// One place in a listener's `max_connections`; given back when the socket
// closes, wherever the connection lives by then. Also how a connection
// knows its listener's settings. The listener (listener.h) is destroyed
// after the workers: slots still held by then (in a mailbox, a paused list)
// are released into live memory. A raw pointer: every idle connection
// carries one.
class ListenerSlot {
 public:
  ListenerSlot() = default;
  explicit ListenerSlot(Listener* listener) : listener_(listener) {}
  ListenerSlot(ListenerSlot&& o) noexcept : listener_(std::exchange(o.listener_, nullptr)) {}
  ListenerSlot& operator=(ListenerSlot&& o) noexcept {
    if (this != &o) {
      release();
      listener_ = std::exchange(o.listener_, nullptr);
    }
    return *this;
  }
  ListenerSlot(const ListenerSlot&) = delete;
  ListenerSlot& operator=(const ListenerSlot&) = delete;
  ~ListenerSlot() { release(); }
  const Listener* listener() const { return listener_; }

 private:
  void release() {
    if (listener_) listener_->open_connections.fetch_sub(1, std::memory_order_relaxed);
    listener_ = nullptr;
  }
  Listener* listener_ = nullptr;
};

class Connection final : public broker::Link,
                         public EventLoop::Handler,
                         public std::enable_shared_from_this<Connection> {
 public:
  // Takes ownership of the connected, non-blocking socket `fd`.
  Connection(Worker& worker, int fd, uint64_t id, ListenerSlot slot);
  ~Connection() override;

  // Starts reading; `pending` holds bytes already read by a previous owner
  // (a connection handed over from another worker after its CONNECT).
  void start(std::string pending = {});
  // EventLoop::Handler
  void on_io(uint32_t events) override;
  // Continues a connection handed over by another worker: processes its
  // CONNECT here, then the bytes that followed it.
  void adopt(protocol::ConnectPacket&& connect, bool id_assigned, std::string pending);
  // A CONNECT held while a reload was pending (Worker::reload_pending),
  // handled now that it is applied.
  void resume_connect();

  // broker::Link
  std::string& out() override { return out_.bytes(); }
  void append_shared(const broker::Message& message, std::string_view bytes) override {
    out_.append_shared(message.share(), bytes);
  }
  void commit() override;
  size_t pending_bytes() const override {
    const size_t own = out_.size();
    return transport_ ? own + transport_->wire().size() : own;
  }
  void close() override;
  void close_for(protocol::ReasonCode reason, const char* why, std::string_view client_id) override;
  bool certificate_login() const override;
  const broker::AccessPolicy* policy() const override;
  uint16_t listener_port() const override;
  void awaits_commit() override;
  void accepted() override;
  // The worker's journal could not be written: what this connection was
  // about to send (acknowledgements among it) is dropped with the
  // connection; the client sends its unacknowledged packets again.
  void abort_unwritten();
  void commit_done() { awaits_commit_ = false; }

  // Called by the worker once per loop turn when this connection has output.
  void flush();
  uint64_t id() const { return id_; }
  std::string peer() const;
  std::string client_name() const;
  ListenerSlot take_slot() { return std::move(slot_); }
  // A TLS or WebSocket connection (set before start() or adopt()): input
  // is un-wrapped before decoding, output wrapped at flush time. Moves with
  // a hand-over.
  void set_transport(std::unique_ptr<Transport> transport) { transport_ = std::move(transport); }
  std::unique_ptr<Transport> take_transport() { return std::move(transport_); }
  bool closed() const { return closed_; }
  TimePoint deadline() const { return deadline_; }
  // Time of this connection's live entry in the worker's deadline heap.
  TimePoint watched_until = TimePoint::max();
  // Keep alive or CONNECT timeout expired.
  void on_deadline(TimePoint now);
  // Called by the worker after a pause for backpressure.
  void resume_reading();

 private:
  void on_readable();
  void process_input(TimePoint now);
  size_t decode_all(std::string_view data, TimePoint now);
  // `split`: where a packet split at the end of `data` may be left (in
  // the input block, for on_readable's next read) instead of copied to in_.
  void take_input(std::string_view data, TimePoint now, std::string_view* split = nullptr);
  size_t take_input_until_stop(std::string_view data, TimePoint now, std::string_view* split = nullptr);
  bool reads_in_blocks() const;
  bool carries(std::string_view split) const;
  void keep_split(std::string_view split, size_t min);
  enum class ReadOutcome { kOk, kAgain, kStop };
  ReadOutcome after_read(ssize_t n, size_t& total);
  bool read_again(size_t n, size_t requested) const;
  void take_sized_read(broker::InputBlock* sized, size_t got, TimePoint now, std::string_view& split);
  bool carries_own(std::string_view split) const;
  void complete_handover(std::string_view rest);
  void take_transport_input(std::string_view data, TimePoint now);
  size_t carry_split_packet(broker::InputBlock& block);
  size_t direct_read_room() const;
  void take_direct_read(const broker::InputBlock& block, size_t n, size_t room, TimePoint now);
  ssize_t send_some(OutQueue& q);
  bool handle_packet(protocol::Packet&& packet, TimePoint now);
  void handle_connect(protocol::ConnectPacket&& connect, TimePoint now);
  // A CONNECT on the worker that owns its client id, in two steps: the
  // credentials, then the rest (broker::Broker::connect). False while the
  // credentials are checked off the loop: input then waits in in_, unread
  // and undecoded, until on_credentials(); or, while a reload is pending,
  // until resume_connect().
  bool check_credentials(protocol::ConnectPacket&& connect, bool id_assigned, TimePoint now);
  void on_credentials(protocol::ReasonCode verdict);
  void certificate_login(protocol::ConnectPacket& connect, PeerIdentity kind) const;
  // use_username_as_clientid: false when the client has no user name to
  // take as its client id (it is then refused).
  bool username_as_client_id(protocol::ConnectPacket& connect, bool id_assigned) const;
  bool finish_connect(protocol::ConnectPacket&& connect, bool id_assigned, protocol::ReasonCode verdict,
                      const std::string& from, TimePoint now);
  // After a CONNECT accepted outside decoding: what followed it, then the socket.
  void resume_input(TimePoint now);
  void fail(protocol::ReasonCode reason, TimePoint now, const char* why = nullptr);
  void write_now();
  void write_early();
  void finish_close();
  void lost(TimePoint now);
  void update_deadline(TimePoint now);
  uint32_t packet_limit() const;
  size_t output_limit() const;
  void block_reading();
  void arm_stall_deadline(TimePoint now);
  void output_progress(TimePoint now);
  void begin_drain();
  void drain_input();

  // A connection moving to the worker that owns its client id, waiting for
  // the bytes read behind its CONNECT.
  struct Handover {
    unsigned target;
    protocol::ConnectPacket connect;
    bool assigned;
    std::string bytes;
  };

  Worker& worker_;
  int fd_;
  protocol::DecodeLimits limits_;
  const uint64_t id_;
  std::string in_;          // an incomplete packet, waiting for more bytes
  // "New client connected ...", logged by accepted() (while Broker::connect runs).
  const std::string* accepted_line_ = nullptr;
  // A packet larger than an input block, being read into a block of its own
  // (one reference, ours); in_ is empty meanwhile.
  broker::InputBlock* own_block_ = nullptr;
  OutQueue out_;            // bytes and slices to write
  // Null for plain TCP. Next to out_: pending_bytes() reads both for every
  // delivery (the output bound).
  std::unique_ptr<Transport> transport_;
  // One bit each: every idle connection carries them.
  bool dirty_ : 1 = false;           // queued in the worker's flush list
  bool waiting_write_ : 1 = false;   // socket full: waiting for EPOLLOUT
  bool read_scheduled_ : 1 = false;  // a read continues on a later turn (or a verdict is awaited)
  bool closing_ : 1 = false;         // close requested: flush, then close
  bool closed_ : 1 = false;
  bool connected_ : 1 = false;       // CONNECT accepted
  bool peer_fin_ : 1 = false;        // the peer's FIN was seen: read to EOF
  bool output_blocked_ : 1 = false;  // output above the bound: not reading
  bool draining_ : 1 = false;        // closing: our output is sent, input discarded
  bool close_logged_ : 1 = false;    // the reason for closing is logged already
  bool awaits_commit_ : 1 = false;   // in the worker's list of links awaiting the journal
  // The size of the last packet larger than an input block that this
  // client sent, while its packets keep that size (0: none): the next read
  // goes into a block of that size (in the bit fields' padding).
  uint32_t large_frame_ = 0;
  ListenerSlot slot_;
  TimePoint deadline_{};
  std::unique_ptr<Handover> handover_;
  // A CONNECT waiting for its credentials' verdict (read_scheduled_ is set).
  struct PendingConnect {
    protocol::ConnectPacket connect;
    bool id_assigned = false;
    std::string peer;
  };
  std::unique_ptr<PendingConnect> pending_connect_;
};

}  // namespace midge::net
