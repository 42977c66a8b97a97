// MQTT over WebSockets for the client (RFC 6455): the HTTP upgrade with
// subprotocol "mqtt", then binary frames, masked as a client must [RFC 6455
// 5.3]. MQTT packets may span frames and frames may hold several packets:
// the layer exposes a plain byte stream.
#pragma once

#include <string>
#include <string_view>

#include "client/transport.h"

namespace midge::client {

// Upgrades `lower` (TCP or TLS) to a WebSocket at options.websocket.path.
// nullptr with a kWebSocket (or I/O) error on failure.
TransportPtr websocket_handshake(TransportPtr lower, const ConnectOptions& options,
                                 Deadline deadline, Error& error);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key [RFC 6455 4.2.2]:
// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string websocket_accept(std::string_view key);

}  // namespace midge::client
