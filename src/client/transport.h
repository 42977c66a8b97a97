// The byte stream under the MQTT client: plain TCP (or a unix socket), TLS
// over it, and WebSocket framing over either, stacked at connect time. The
// Client sees one non-blocking stream and polls fd() for readiness.
//
// Thread ownership: a Transport belongs to the Client's thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "client/client.h"

namespace midge::client {

class Transport;

// Appends what `transport` can read now to `buffer` (dropping the bytes
// before `consumed` first when all of them were used); returns read()'s
// result.
ssize_t read_append(Transport& transport, std::string& buffer, size_t& consumed, Error& error);

class Transport {
 public:
  virtual ~Transport() = default;

  // The socket to poll.
  virtual int fd() const = 0;

  // > 0: bytes of the MQTT stream read; 0: nothing now (poll for
  // read_wait_events()); -1: closed or failed, `error` says which.
  virtual ssize_t read(char* buf, size_t len, Error& error) = 0;

  // > 0: bytes of `buf` taken; 0: would block (poll for write_wait_events());
  // -1: failed. With len == 0 it only pushes out what has_pending_output() holds.
  virtual ssize_t write(const char* buf, size_t len, Error& error) = 0;

  // Bytes this layer already decoded or decrypted: read() returns them without
  // the socket becoming readable, so do not poll first.
  virtual bool has_buffered_input() const { return false; }

  // Bytes this layer accepted but has not written yet (framing, control replies).
  virtual bool has_pending_output() const { return false; }

  // poll() events the last would-block needs: TLS may have to read to write.
  virtual short read_wait_events() const;
  virtual short write_wait_events() const;

  // Ends our side politely (TLS close_notify, WebSocket close frame), then
  // half-closes the socket. Best effort, never blocks.
  virtual void shutdown() = 0;
};

using TransportPtr = std::unique_ptr<Transport>;
using Deadline = std::chrono::steady_clock::time_point;

// Connects as `options` say (TCP or unix socket, then TLS and/or WebSocket)
// and completes the handshakes before `deadline`. nullptr with `error` set on
// failure: kTlsSetup for unusable TLS settings, kTls for a failed handshake or
// certificate check, kWebSocket for a refused upgrade.
TransportPtr open_transport(const ConnectOptions& options, Deadline deadline, Error& error);

// Blocking helpers over a non-blocking transport, for handshakes.
bool write_all(Transport& t, const std::string& data, Deadline deadline, Error& error);
// Appends what arrives (at least one byte) to `into`.
bool read_more(Transport& t, std::string& into, Deadline deadline, Error& error);

// Waits for `events` on `fd` until `deadline`; false with kTimeout on expiry.
bool wait_fd(int fd, short events, Deadline deadline, Error& error);

}  // namespace midge::client
