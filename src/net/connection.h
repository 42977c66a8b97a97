// One client connection on one worker: reads into a large buffer, decodes
// every whole packet in it, hands packets to the worker's Broker, and
// gathers everything the broker writes into one output buffer that the
// worker flushes once per loop turn (one write syscall per socket per turn).
// Owned by its worker thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "broker/link.h"
#include "net/event_loop.h"
#include "protocol/codec.h"
#include "util/time.h"

namespace midge::net {

class Worker;
class WebSocket;

// One place in a listener's `max_connections`; given back when the socket
// closes, wherever the connection lives by then. The counter belongs to the
// listener, which outlives every connection (listeners close after workers
// stop).
class ListenerSlot {
 public:
  ListenerSlot() = default;
  explicit ListenerSlot(std::atomic<int>* open) : open_(open) {}
  ListenerSlot(ListenerSlot&& o) noexcept : open_(std::exchange(o.open_, nullptr)) {}
  ListenerSlot& operator=(ListenerSlot&& o) noexcept {
    if (this != &o) {
      release();
      open_ = std::exchange(o.open_, nullptr);
    }
    return *this;
  }
  ListenerSlot(const ListenerSlot&) = delete;
  ListenerSlot& operator=(const ListenerSlot&) = delete;
  ~ListenerSlot() { release(); }

 private:
  void release() {
    if (open_) open_->fetch_sub(1, std::memory_order_relaxed);
    open_ = nullptr;
  }
  std::atomic<int>* open_ = nullptr;
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

  // broker::Link
  std::string& out() override { return out_; }
  void commit() override;
  size_t pending_bytes() const override { return ws_ ? out_.size() + ws_pending() : out_.size(); }
  void close() override;

  // Called by the worker once per loop turn when this connection has output.
  void flush();
  uint64_t id() const { return id_; }
  std::string peer() const;
  std::string client_name() const;
  ListenerSlot take_slot() { return std::move(slot_); }
  // A WebSocket connection (set before start() or adopt()): input is
  // un-framed before decoding, output framed at flush time. Moves with a
  // hand-over.
  void set_websocket(std::unique_ptr<WebSocket> ws);
  std::unique_ptr<WebSocket> take_websocket();
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
  void take_input(std::string_view data, TimePoint now);
  void take_ws_input(std::string_view data, TimePoint now);
  void write_ws();
  size_t ws_pending() const;
  // `after`: the bytes already read behind this packet.
  bool handle_packet(protocol::Packet&& packet, std::string_view after, TimePoint now);
  void handle_connect(protocol::ConnectPacket&& connect, std::string_view after, TimePoint now);
  // A CONNECT on the worker that owns its client id, in two steps: the
  // credentials, then the rest (broker::Broker::connect). False while the
  // credentials are checked off the loop: input then waits in in_, unread
  // and undecoded, until on_credentials().
  bool check_credentials(protocol::ConnectPacket&& connect, bool id_assigned, TimePoint now);
  void on_credentials(protocol::ReasonCode verdict);
  bool finish_connect(protocol::ConnectPacket&& connect, bool id_assigned, protocol::ReasonCode verdict,
                      const std::string& from, TimePoint now);
  // After a CONNECT accepted outside decoding: what followed it, then the socket.
  void resume_input(TimePoint now);
  void fail(protocol::ReasonCode reason, TimePoint now, const char* why = nullptr);
  void write_now();
  void finish_close();
  void lost(TimePoint now);
  void update_deadline(TimePoint now);
  void shrink_buffers();

  Worker& worker_;
  int fd_;
  const uint64_t id_;
  std::string in_;          // an incomplete packet, waiting for more bytes
  std::string out_;         // bytes to write, from out_start_
  size_t out_start_ = 0;
  // Null for plain TCP. Next to out_: pending_bytes() reads both for every
  // delivery (the slow-consumer check).
  std::unique_ptr<WebSocket> ws_;
  bool dirty_ = false;        // queued in the worker's flush list
  bool waiting_write_ = false;  // socket full: waiting for EPOLLOUT
  bool read_scheduled_ = false;  // a read continues on a later turn
  bool closing_ = false;      // close requested: flush, then close
  bool closed_ = false;
  bool connected_ = false;    // CONNECT accepted
  // A CONNECT waiting for its credentials' verdict (read_scheduled_ is set).
  struct PendingConnect {
    protocol::ConnectPacket connect;
    bool id_assigned = false;
    std::string peer;
  };
  std::unique_ptr<PendingConnect> pending_connect_;
  TimePoint deadline_{};
  protocol::DecodeLimits limits_;
  ListenerSlot slot_;
};

}  // namespace midge::net
