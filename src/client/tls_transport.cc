#include "client/tls_transport.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace midge::client {
namespace {

// The wording the Mosquitto tools print for any TLS failure.
constexpr const char* kTlsError = "A TLS error occurred.";

Error tls_error(ErrorKind kind) {
  Error e;
  e.kind = kind;
  e.message = kTlsError;
  char detail[256];
  if (unsigned long code = ERR_peek_last_error(); code != 0) {
    ERR_error_string_n(code, detail, sizeof detail);
    e.message += std::string(" (") + detail + ")";
  }
  ERR_clear_error();
  return e;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool set_min_version(SSL_CTX* ctx, const std::string& version) {
  // Mosquitto's --tls-version names the oldest version allowed, not the only one.
  if (version.empty()) return true;
  int v = version == "tlsv1.3"   ? TLS1_3_VERSION
          : version == "tlsv1.2" ? TLS1_2_VERSION
          : version == "tlsv1.1" ? TLS1_1_VERSION
                                 : 0;
  return v != 0 && SSL_CTX_set_min_proto_version(ctx, v) == 1;
}

bool set_alpn(SSL_CTX* ctx, const std::string& alpn) {
  if (alpn.empty() || alpn.size() > 255) return true;
  std::string wire(1, static_cast<char>(alpn.size()));
  wire += alpn;
  // Returns 0 on success, unlike most of OpenSSL.
  return SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                                 static_cast<unsigned>(wire.size())) == 0;
}

bool load_trust(SSL_CTX* ctx, const TlsOptions& o) {
  if (!o.cafile.empty() || !o.capath.empty()) {
    const char* file = o.cafile.empty() ? nullptr : o.cafile.c_str();
    const char* path = o.capath.empty() ? nullptr : o.capath.c_str();
    if (SSL_CTX_load_verify_locations(ctx, file, path) != 1) return false;
  }
  if (o.use_os_certs && SSL_CTX_set_default_verify_paths(ctx) != 1) return false;
  return true;
}

bool load_identity(SSL_CTX* ctx, const TlsOptions& o) {
  if (o.certfile.empty()) return true;
  return SSL_CTX_use_certificate_chain_file(ctx, o.certfile.c_str()) == 1 &&
         SSL_CTX_use_PrivateKey_file(ctx, o.keyfile.c_str(), SSL_FILETYPE_PEM) == 1 &&
         SSL_CTX_check_private_key(ctx) == 1;
}

// TLS-PSK credentials hang on the SSL_CTX and are freed with it: each SSL
// holds a reference to its context, so they outlive TlsContext when a TLS 1.2
// renegotiation asks for them again.
struct PskCredentials {
  std::string identity;
  std::string key;
};

int psk_index() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<PskCredentials*>(ptr);
      });
  return index;
}

// Called for TLS 1.2 PSK suites and, through OpenSSL's compatibility path,
// for a TLS 1.3 external PSK (hash SHA-256). The broker's hint is not used.
unsigned int psk_client_callback(SSL* ssl, const char*, char* identity,
                                 unsigned int max_identity_len, unsigned char* psk,
                                 unsigned int max_psk_len) {
  const auto* cred =
      static_cast<const PskCredentials*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index()));
  // Returning 0 fails the handshake: no key, or one OpenSSL cannot hold.
  if (cred == nullptr || cred->key.empty() || cred->key.size() > max_psk_len ||
      max_identity_len == 0) {
    return 0;
  }
  // Cut to fit, NUL included, as libmosquitto's snprintf does.
  const size_t n = std::min<size_t>(cred->identity.size(), max_identity_len - 1);
  std::memcpy(identity, cred->identity.data(), n);
  identity[n] = '\0';
  std::memcpy(psk, cred->key.data(), cred->key.size());
  return static_cast<unsigned int>(cred->key.size());
}

bool set_psk(SSL_CTX* ctx, const TlsOptions& o) {
  if (!o.psk) return true;
  auto cred = std::make_unique<PskCredentials>(PskCredentials{o.psk_identity, *o.psk});
  if (SSL_CTX_set_ex_data(ctx, psk_index(), cred.get()) != 1) return false;
  cred.release();  // owned by ctx now
  SSL_CTX_set_psk_client_callback(ctx, psk_client_callback);
  return true;
}

class TlsTransport;

// OpenSSL reads and writes through the transport below (not the raw fd), so
// TLS stacks on any Transport and sends with MSG_NOSIGNAL: no SIGPIPE.
const BIO_METHOD* transport_bio_method();

class TlsTransport final : public Transport {
 public:
  TlsTransport(TransportPtr lower, SSL* ssl) : lower_(std::move(lower)), ssl_(ssl) {
    BIO* bio = BIO_new(transport_bio_method());
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);
  }
  ~TlsTransport() override { SSL_free(ssl_); }
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  int fd() const override { return lower_->fd(); }

  // The BIO's side: bytes to and from the lower transport. 1 = done,
  // 0 = retry later, -1 = closed or failed (kept in lower_error_).
  int bio_read(char* buf, size_t len, size_t& got) {
    ssize_t n = lower_->read(buf, len, lower_error_);
    got = n > 0 ? static_cast<size_t>(n) : 0;
    return n > 0 ? 1 : n == 0 ? 0 : -1;
  }
  int bio_write(const char* buf, size_t len, size_t& put) {
    ssize_t n = lower_->write(buf, len, lower_error_);
    put = n > 0 ? static_cast<size_t>(n) : 0;
    return n > 0 ? 1 : n == 0 ? 0 : -1;
  }

  // Returns true when the handshake is done; false with `error` unset while
  // it needs the socket again (see read_wait_events()).
  bool step_handshake(Error& error) {
    int rc = SSL_connect(ssl_);
    if (rc == 1) {
      connected_ = true;
      return true;
    }
    classify(rc, error);
    return false;
  }

  ssize_t read(char* buf, size_t len, Error& error) override {
    size_t total = 0;
    // Drain every decrypted record that fits: poll() cannot see bytes
    // OpenSSL already holds.
    while (total < len) {
      size_t got = 0;
      int rc = SSL_read_ex(ssl_, buf + total, len - total, &got);
      if (rc == 1) {
        total += got;
        continue;
      }
      if (!classify(rc, error)) return total > 0 ? static_cast<ssize_t>(total) : -1;
      break;
    }
    return static_cast<ssize_t>(total);
  }

  ssize_t write(const char* buf, size_t len, Error& error) override {
    if (len == 0) return 0;
    size_t done = 0;
    int rc = SSL_write_ex(ssl_, buf, len, &done);
    if (rc == 1) return static_cast<ssize_t>(done);
    return classify(rc, error) ? 0 : -1;
  }

  bool has_buffered_input() const override { return SSL_pending(ssl_) > 0; }
  short read_wait_events() const override {
    return want_ == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
  }
  short write_wait_events() const override {
    return want_ == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
  }

  void shutdown() override {
    if (!failed_) SSL_shutdown(ssl_);  // sends close_notify; no wait for the peer's
    lower_->shutdown();
  }

 private:
  // After a failed SSL call: true (error untouched) when it only has to wait
  // for the socket; false with `error` set when the connection is over.
  bool classify(int rc, Error& error) {
    int code = SSL_get_error(ssl_, rc);
    want_ = code;
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return true;
    failed_ = true;
    if (code == SSL_ERROR_ZERO_RETURN) {
      error.kind = ErrorKind::kClosed;
      error.message = "connection closed by server";
    } else if (code == SSL_ERROR_SYSCALL && lower_error_ && connected_) {
      error = lower_error_;
      ERR_clear_error();
    } else {
      // After the handshake a TLS failure (say, the broker rejecting our
      // certificate under TLS 1.3) is a lost connection, as for mosquitto.
      error = tls_error(connected_ ? ErrorKind::kClosed : ErrorKind::kTls);
    }
    return false;
  }

  TransportPtr lower_;
  SSL* ssl_;
  Error lower_error_;
  int want_ = SSL_ERROR_NONE;
  bool failed_ = false;
  bool connected_ = false;
};

int bio_read_ex(BIO* bio, char* buf, size_t len, size_t* got) {
  BIO_clear_retry_flags(bio);
  int rc = static_cast<TlsTransport*>(BIO_get_data(bio))->bio_read(buf, len, *got);
  if (rc == 0) BIO_set_retry_read(bio);
  return rc == 1 ? 1 : 0;
}

int bio_write_ex(BIO* bio, const char* buf, size_t len, size_t* put) {
  BIO_clear_retry_flags(bio);
  int rc = static_cast<TlsTransport*>(BIO_get_data(bio))->bio_write(buf, len, *put);
  if (rc == 0) BIO_set_retry_write(bio);
  return rc == 1 ? 1 : 0;
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

const BIO_METHOD* transport_bio_method() {
  // Built once, immutable afterwards; freed at exit by nobody (process lifetime).
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "midge transport");
    BIO_meth_set_read_ex(m, bio_read_ex);
    BIO_meth_set_write_ex(m, bio_write_ex);
    BIO_meth_set_ctrl(m, bio_ctrl);
    return m;
  }();
  return method;
}

}  // namespace

std::unique_ptr<TlsContext> TlsContext::create(const TlsOptions& o, Error& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    error = tls_error(ErrorKind::kTlsSetup);
    return nullptr;
  }
  std::unique_ptr<TlsContext> holder(new TlsContext(ctx, o.insecure));
  // Partial writes: the client keeps its own output buffer and retries.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // A broker that just closes TCP without close_notify is "connection lost",
  // not a TLS error.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  bool ok = set_min_version(ctx, o.min_version) && load_trust(ctx, o) &&
            load_identity(ctx, o) && set_alpn(ctx, o.alpn) && set_psk(ctx, o) &&
            (o.ciphers.empty() || SSL_CTX_set_cipher_list(ctx, o.ciphers.c_str()) == 1);
  if (!ok) {
    error = tls_error(ErrorKind::kTlsSetup);
    return nullptr;
  }
  return holder;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TransportPtr TlsContext::handshake(TransportPtr lower, const std::string& host, Deadline deadline,
                                   Error& error) {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) {
    error = tls_error(ErrorKind::kTlsSetup);
    return nullptr;
  }
  auto tls = std::make_unique<TlsTransport>(std::move(lower), ssl);
  int fd = tls->fd();
  bool ip = is_ip_literal(host);
  if (!ip) SSL_set_tlsext_host_name(ssl, host.c_str());  // SNI never carries an address
  if (!insecure_) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    int rc = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    if (rc != 1) {
      error = tls_error(ErrorKind::kTlsSetup);
      return nullptr;
    }
  }
  for (;;) {
    Error step;
    if (tls->step_handshake(step)) return tls;
    if (step) {
      error = step;
      if (error.kind != ErrorKind::kTls) error = tls_error(ErrorKind::kTls);
      return nullptr;
    }
    if (!wait_fd(fd, tls->read_wait_events(), deadline, error)) return nullptr;
  }
}

}  // namespace midge::client
