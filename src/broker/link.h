// The broker's view of one network connection. Implemented by net (a socket
// with an output buffer) and by tests (a recorder). The broker only appends
// bytes and asks for a close; the owner flushes once per loop turn.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "broker/authenticator.h"
#include "broker/message.h"
#include "protocol/packets.h"

namespace midge::broker {

struct Session;

class Link {
 public:
  virtual ~Link() = default;
  // Output buffer the broker encodes packets into; call `commit()` after
  // appending so the owner schedules a flush.
  virtual std::string& out() = 0;
  // Queues `bytes`, which live inside `message`, after what out() holds (a
  // large payload sent by reference). A link that sends from its own buffer
  // copies them; net's Connection keeps a reference on the message instead
  // and writes the bytes where they lie.
  virtual void append_shared(const Message& message, std::string_view bytes) {
    (void)message;
    out().append(bytes);
  }
  virtual void commit() = 0;
  // Bytes accepted but not yet written to the peer (backpressure).
  virtual size_t pending_bytes() const = 0;
  // Flush what is buffered, then close. The broker has already detached the
  // session (`session` is null) when it calls this.
  virtual void close() = 0;
  // close() for a reason the broker decided (logged and counted by the
  // owner); the DISCONNECT or CONNACK carrying it is already in out().
  // `client_id`: the session's, already detached from this link.
  virtual void close_for(protocol::ReasonCode reason, const char* why, std::string_view client_id) {
    (void)reason;
    (void)why;
    (void)client_id;
    close();
  }

  // An acknowledgement was appended while the worker's Journal held
  // records not yet written (persistence): if that write fails, the owner
  // must drop this link's unwritten output instead of sending it.
  virtual void awaits_commit() {}
  // The CONNECT is accepted; its CONNACK comes next (the owner logs the
  // client's arrival here, before the CONNACK's own debug lines, as Mosquitto).
  virtual void accepted() {}

  // True when the client's user name came from its TLS certificate or PSK
  // identity (use_identity_as_username), not from a password check.
  virtual bool certificate_login() const { return false; }
  // The listener's own access policy (per_listener_settings); null: the
  // broker's.
  virtual const AccessPolicy* policy() const { return nullptr; }
  // The port of the listener the client came through (0: none).
  virtual uint16_t listener_port() const { return 0; }

  // The listener's mount_point: prefixed to the topics and filters the
  // client sends, removed from the topics it receives. Empty: none.
  std::string_view mount_point() const { return mount ? std::string_view(*mount) : std::string_view(); }

  // Fields in size order: one of these per connection.
  // Set by the broker while a session is attached to this link.
  Session* session = nullptr;
  const std::string* mount = nullptr;  // see mount_point(); owned by the listener
  protocol::Version version = protocol::Version::kV311;
  // Set by the broker when it holds messages back because this link's
  // output is above Settings::max_pending_output; the owner then calls
  // Broker::on_link_writable once the output has drained to half of it.
  bool waiting_for_room = false;
  // The highest QoS of the listener this link came through (max_qos, per
  // listener as in Mosquitto); Settings::max_qos caps every link.
  uint8_t max_qos = 2;
  // Its listener's counters in the worker's Stats (Stats::of; 0: none).
  uint16_t traffic_slot = 0;
};

}  // namespace midge::broker
