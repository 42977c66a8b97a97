// The broker's view of one network connection. Implemented by net (a socket
// with an output buffer) and by tests (a recorder). The broker only appends
// bytes and asks for a close; the owner flushes once per loop turn.
#pragma once

#include <cstddef>
#include <string>

#include "protocol/packets.h"

namespace midge::broker {

struct Session;

class Link {
 public:
  virtual ~Link() = default;
  // Output buffer the broker encodes packets into; call `commit()` after
  // appending so the owner schedules a flush.
  virtual std::string& out() = 0;
  virtual void commit() = 0;
  // Bytes accepted but not yet written to the peer (backpressure).
  virtual size_t pending_bytes() const = 0;
  // Flush what is buffered, then close. The broker has already detached the
  // session (`session` is null) when it calls this.
  virtual void close() = 0;

  // Set by the broker while a session is attached to this link.
  Session* session = nullptr;
  protocol::Version version = protocol::Version::kV311;
};

}  // namespace midge::broker
