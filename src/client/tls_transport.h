// TLS (OpenSSL 3) for the client: a context built from TlsOptions, and the
// transport it yields once the handshake and certificate checks pass.
#pragma once

#include <memory>
#include <string>

#include "client/transport.h"

struct ssl_ctx_st;

namespace midge::client {

class TlsContext {
 public:
  // Loads CAs, client certificate and key, ciphers, minimum version and ALPN.
  // nullptr with a kTlsSetup error when any of them is unusable.
  static std::unique_ptr<TlsContext> create(const TlsOptions& options, Error& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Runs the client handshake over `lower`, checking the certificate chain and
  // (unless insecure) that the certificate names `host`. kTls on failure.
  TransportPtr handshake(TransportPtr lower, const std::string& host, Deadline deadline,
                         Error& error);

 private:
  TlsContext(ssl_ctx_st* ctx, bool insecure) : ctx_(ctx), insecure_(insecure) {}

  ssl_ctx_st* ctx_;
  bool insecure_;
};

}  // namespace midge::client
