// What lies under MQTT on a benchmark connection: plain TCP, TLS (OpenSSL on
// the non-blocking socket), WebSocket client framing (RFC 6455), or both
// (wss). One Link is shared by every Conn of a run; the helpers here are
// pure byte functions so that Conn keeps the I/O.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "midge_bench/options.h"

namespace midge::bench {

class Link {
 public:
  Link() = default;
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Builds the TLS context from --tls/--cafile/--cert/--key/--insecure.
  // Returns false with `error` set when a file cannot be loaded.
  bool init(const Options& options, std::string& error);

  SSL_CTX* tls() const { return ctx_; }  // null: no TLS
  bool ws() const { return ws_; }
  const std::string& host() const { return host_; }
  const std::string& ws_path() const { return ws_path_; }
  // A new client SSL for socket `fd`, or null.
  SSL* new_ssl(int fd) const;

 private:
  SSL_CTX* ctx_ = nullptr;
  bool ws_ = false;
  bool verify_ = true;
  std::string host_;
  std::string ws_path_;
};

// The HTTP/1.1 upgrade request with subprotocol "mqtt"; `key` is the
// base64 Sec-WebSocket-Key it chose, for checking the answer.
std::string ws_upgrade_request(const std::string& host, const std::string& path,
                               std::string& key);
// Checks a complete response head (up to and including the blank line):
// status 101 and Sec-WebSocket-Accept matching `key` (RFC 6455 4.1).
bool ws_upgrade_ok(std::string_view head, const std::string& key);

// Appends one masked frame (FIN set; binary unless `opcode` says otherwise)
// holding `data` (RFC 6455 5.2, 5.3). `rng` is a per-connection xorshift
// state for the masking keys.
void ws_frame(std::string_view data, uint64_t& rng, std::string& out, unsigned opcode = 2);

// Server frames are unmasked. Takes whole frames from `raw`: binary and
// continuation payloads are appended at in[in_len] (growing `in`), a
// ping's payload to `pings` (to be answered), a close sets `closed`.
// Returns the bytes used, or -1 when a frame is malformed (masked,
// reserved bits, bad length).
long ws_unframe(std::string_view raw, std::vector<char>& in, size_t& in_len, std::string& pings,
                bool& closed);

}  // namespace midge::bench
