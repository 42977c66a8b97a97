// TLS for listeners (OpenSSL 3): a context per listener, built from the
// mosquitto.conf options and rebuilt on SIGHUP, and the TLS Transport of one
// connection. OpenSSL never touches the socket: records go through a BIO of
// our own that reads the bytes the Connection just read and appends what
// OpenSSL writes to the transport's wire, so a whole loop turn of output is
// encrypted into large records and sent with one sendmsg.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "net/transport.h"

struct ssl_ctx_st;

namespace midge::net {

struct TlsOptions {
  std::string cafile, capath, certfile, keyfile, crlfile, dhparamfile;
  std::string ciphers, ciphers_tls13;
  std::string tls_version;   // the oldest version accepted: tlsv1.1, tlsv1.2 (default), tlsv1.3
  bool require_certificate = false;
  std::string psk_hint;      // non-empty: TLS-PSK with the keys of psk_file
  std::string psk_file;      // identity:hexkey lines
  std::string alpn;          // the protocol chosen when a client offers it ("mqtt", "http/1.1")
};

class TlsContext {
 public:
  // Null, with `error` naming the option and file at fault, when any file
  // is unusable.
  static std::shared_ptr<TlsContext> create(const TlsOptions& options, std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Re-reads every file (certificates, key, CA, CRL, PSK keys). Connections
  // already open keep the context they started with. On failure nothing
  // changes and false is returned with `error`.
  bool reload(std::string& error);
  // A server-side TLS transport for a new connection (any thread).
  std::unique_ptr<Transport> new_transport() const;

 private:
  explicit TlsContext(TlsOptions options) : options_(std::move(options)) {}
  TlsOptions options_;
  mutable std::mutex mutex_;
  ssl_ctx_st* ctx_ = nullptr;  // guarded by mutex_ (swapped by reload)
};

}  // namespace midge::net
