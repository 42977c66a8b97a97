// Blocking-with-deadline socket helpers for the client: resolve, connect,
// optional bind and TCP_NODELAY. The returned descriptor is non-blocking.
#pragma once

#include <chrono>
#include <string>

#include "client/client.h"
#include "client/transport.h"

namespace midge::client {

// Connects to host:port (every address getaddrinfo returns, in order) or to
// the unix socket `options.unix_path`. Returns the fd, or -1 with `error` set.
int open_connection(const ConnectOptions& options,
                    std::chrono::steady_clock::time_point deadline, Error& error);

// The plain transport over a connected non-blocking socket; owns `fd`.
TransportPtr make_tcp_transport(int fd);

// Milliseconds left until `deadline` for poll(): 0 when past, -1 for "never"
// (time_point::max()).
int poll_timeout(std::chrono::steady_clock::time_point deadline);

}  // namespace midge::client
