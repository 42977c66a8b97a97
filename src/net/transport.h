// The server-side transport seam. A Connection speaks MQTT bytes; what
// carries them on the socket (TLS records, WebSocket frames, both, or
// nothing for plain TCP) is a Transport. Plain TCP has none: the
// Connection's hot path reads and writes the socket itself and tests one
// null pointer. A Transport is pure (no sockets): the Connection feeds it the
// bytes it read and sends what the transport queued in wire().
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "net/out_queue.h"

namespace midge::net {

// What a client proved during the transport's handshake, as Mosquitto's
// use_identity_as_username / use_subject_as_username take it.
enum class PeerIdentity {
  kIdentity,  // certificate Common Name, or the TLS-PSK identity
  kSubject,   // the whole certificate subject, RFC 2253 form
};

class Transport {
 public:
  enum class Result {
    kOk,     // everything used; go on
    kClose,  // the peer closed (our answer, if any, is queued in wire())
    kError,  // bad handshake, record or frame (an alert or close frame is queued)
  };
  virtual ~Transport() = default;

  // Bytes read from the socket. The MQTT bytes they carry are appended to
  // `payload`; handshake answers and control replies go to wire(). After
  // kClose or kError nothing more is taken.
  virtual Result feed(std::string_view data, std::string& payload) = 0;
  // Takes all of the connection's MQTT output (`out` is left empty) into
  // wire(). `closing`: the connection ends after it, so the transport adds
  // its goodbye once (a WebSocket close frame, a TLS close_notify).
  virtual void push(OutQueue& out, bool closing) = 0;
  // Bytes ready for the socket. Counted in the connection's output bound.
  virtual OutQueue& wire() = 0;
  virtual const OutQueue& wire() const = 0;
  // Why the last kError happened, for the log.
  virtual std::string error() const = 0;
  virtual std::optional<std::string> peer_identity(PeerIdentity) const { return std::nullopt; }
  // False until the handshake is done (nothing MQTT can flow before).
  virtual bool established() const = 0;
};

// One transport over another: WebSocket frames inside TLS records.
std::unique_ptr<Transport> stack_transports(std::unique_ptr<Transport> upper, std::unique_ptr<Transport> lower);

}  // namespace midge::net
