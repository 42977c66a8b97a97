#include "net/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/uio.h>

#include <cctype>
#include <climits>
#include <cstring>
#include <fstream>
#include <map>

namespace midge::net {
namespace {

// OpenSSL's error queue as one line ("" when empty); clears it.
std::string openssl_errors() {
  std::string out;
  char buf[256];
  while (unsigned long code = ERR_get_error()) {
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    // "error:0A000086:SSL routines::certificate verify failed" -> the reason.
    const char* reason = std::strrchr(buf, ':');
    out += reason && reason[1] ? reason + 1 : buf;
  }
  return out;
}

// A client's text for the log: control characters and bytes above ASCII as '?'.
std::string printable(std::string_view text) {
  std::string out(text.substr(0, 128));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) c = '?';
  }
  return out;
}

// ---- TLS-PSK keys (psk_file: "identity:hexkey" per line) ----

using PskKeys = std::map<std::string, std::string, std::less<>>;

// What the PSK callback saw, for the connection (SSL app data).
struct PskNote {
  std::string identity;
  bool known = false;
};

int psk_index() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<PskKeys*>(ptr);
      });
  return index;
}

// Hexadecimal key digits, read as Mosquitto reads them: an odd count has a
// leading 0 ("abc" is 0a bc).
bool parse_hex(std::string_view digits, std::string& out) {
  if (digits.empty()) return false;
  std::string padded = digits.size() % 2 ? "0" + std::string(digits) : std::string(digits);
  const std::string_view hex = padded;
  out.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

bool load_psk_file(const std::string& path, PskKeys& keys, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = "psk_file " + path + ": cannot be read: " + std::strerror(errno);
    return false;
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(':');
    std::string key;
    if (colon == std::string::npos || colon == 0 || !parse_hex(std::string_view(line).substr(colon + 1), key) ||
        key.size() > PSK_MAX_PSK_LEN) {
      error = "psk_file " + path + ":" + std::to_string(n) + ": expected identity:hexadecimal-key";
      return false;
    }
    keys[line.substr(0, colon)] = std::move(key);
  }
  return true;
}

unsigned int psk_server_callback(SSL* ssl, const char* identity, unsigned char* psk, unsigned int max_len) {
  const auto* keys = static_cast<const PskKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index()));
  auto* note = static_cast<PskNote*>(SSL_get_app_data(ssl));
  if (!keys || !identity || !note) return 0;
  // Kept for use_identity_as_username (OpenSSL does not report the identity
  // of a TLS 1.3 PSK handshake made through this callback) and for the log.
  note->identity = identity;
  const auto it = keys->find(std::string_view(identity));
  note->known = it != keys->end() && it->second.size() <= max_len;
  if (!note->known) return 0;  // unknown identity: the handshake fails
  std::memcpy(psk, it->second.data(), it->second.size());
  return static_cast<unsigned int>(it->second.size());
}

// ALPN: the listener's protocol when the client offers it; otherwise the
// handshake goes on without ALPN, as with clients that offer nothing.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  const auto* wanted = static_cast<const std::string*>(arg);
  for (unsigned int i = 0; i < inlen;) {
    const unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == *wanted) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int version_of(const std::string& name) {
  if (name.empty() || name == "tlsv1.2") return TLS1_2_VERSION;
  if (name == "tlsv1.3") return TLS1_3_VERSION;
  if (name == "tlsv1.1") return TLS1_1_VERSION;
  return 0;
}

// ---- building a context ----

using CtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

bool fail_with(std::string& error, const std::string& what) {
  const std::string why = openssl_errors();
  error = what + (why.empty() ? "" : ": " + why);
  return false;
}

bool load_identity(SSL_CTX* ctx, const TlsOptions& o, std::string& error) {
  if (o.certfile.empty()) return true;
  if (SSL_CTX_use_certificate_chain_file(ctx, o.certfile.c_str()) != 1) {
    return fail_with(error, "certfile " + o.certfile + " cannot be used");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, o.keyfile.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail_with(error, "keyfile " + o.keyfile + " cannot be used");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fail_with(error, "keyfile " + o.keyfile + " does not match certfile " + o.certfile);
  }
  return true;
}

bool load_trust(SSL_CTX* ctx, const TlsOptions& o, std::string& error) {
  if (!o.cafile.empty() || !o.capath.empty()) {
    const char* file = o.cafile.empty() ? nullptr : o.cafile.c_str();
    const char* path = o.capath.empty() ? nullptr : o.capath.c_str();
    if (SSL_CTX_load_verify_locations(ctx, file, path) != 1) {
      return fail_with(error, (file ? "cafile " + o.cafile : "capath " + o.capath) + " cannot be used");
    }
    // The CAs named in the certificate request, so that clients holding
    // several certificates pick the right one.
    if (file) {
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(file)) SSL_CTX_set_client_CA_list(ctx, names);
    }
  }
  if (!o.crlfile.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (!lookup || X509_load_crl_file(lookup, o.crlfile.c_str(), X509_FILETYPE_PEM) <= 0) {
      return fail_with(error, "crlfile " + o.crlfile + " cannot be used");
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  // Mosquitto asks for a client certificate only with require_certificate.
  SSL_CTX_set_verify(ctx, o.require_certificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE,
                     nullptr);
  return true;
}

bool load_dh(SSL_CTX* ctx, const TlsOptions& o, std::string& error) {
  if (o.dhparamfile.empty()) {
    SSL_CTX_set_dh_auto(ctx, 1);
    return true;
  }
  BIO* bio = BIO_new_file(o.dhparamfile.c_str(), "r");
  EVP_PKEY* dh = bio ? PEM_read_bio_Parameters(bio, nullptr) : nullptr;
  BIO_free(bio);
  if (!dh || SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
    EVP_PKEY_free(dh);
    return fail_with(error, "dhparamfile " + o.dhparamfile + " cannot be used");
  }
  return true;
}

bool load_psk(SSL_CTX* ctx, const TlsOptions& o, std::string& error) {
  if (o.psk_hint.empty()) return true;
  auto keys = std::make_unique<PskKeys>();
  if (o.psk_file.empty()) {
    error = "psk_hint is set but no psk_file gives the keys";
    return false;
  }
  if (!load_psk_file(o.psk_file, *keys, error)) return false;
  if (SSL_CTX_use_psk_identity_hint(ctx, o.psk_hint.c_str()) != 1) return fail_with(error, "psk_hint cannot be used");
  SSL_CTX_set_ex_data(ctx, psk_index(), keys.release());
  SSL_CTX_set_psk_server_callback(ctx, psk_server_callback);
  return true;
}

bool configure(SSL_CTX* ctx, const TlsOptions& o, std::string& error) {
  const int min = version_of(o.tls_version);
  if (min == 0) {
    error = "tls_version " + o.tls_version + " is not one of tlsv1.3, tlsv1.2, tlsv1.1";
    return false;
  }
  SSL_CTX_set_min_proto_version(ctx, min);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle connections hold no record buffers (about 34 KiB each otherwise).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // Needed for session resumption when client certificates are verified.
  static const unsigned char kSessionContext[] = "midge";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  if (!o.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, o.ciphers.c_str()) != 1) {
    return fail_with(error, "ciphers '" + o.ciphers + "' selects no usable cipher");
  }
  if (!o.ciphers_tls13.empty() && SSL_CTX_set_ciphersuites(ctx, o.ciphers_tls13.c_str()) != 1) {
    return fail_with(error, "ciphers_tls1.3 '" + o.ciphers_tls13 + "' selects no usable cipher suite");
  }
  return load_dh(ctx, o, error) && load_identity(ctx, o, error) && load_trust(ctx, o, error) &&
         load_psk(ctx, o, error);
}

// ---- one connection ----

class TlsTransport final : public Transport {
 public:
  explicit TlsTransport(SSL* ssl) : ssl_(ssl) {
    BIO* bio = BIO_new(bio_method());
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);  // one BIO both ways; SSL owns it
    SSL_set_accept_state(ssl_);
    SSL_set_app_data(ssl_, &psk_);
  }
  ~TlsTransport() override { SSL_free(ssl_); }

  Result feed(std::string_view data, std::string& payload) override;
  void push(OutQueue& out, bool closing) override;
  OutQueue& wire() override { return wire_; }
  const OutQueue& wire() const override { return wire_; }
  std::string error() const override { return error_; }
  std::optional<std::string> peer_identity(PeerIdentity kind) const override;
  bool established() const override { return established_; }

 private:
  static BIO_METHOD* bio_method();
  Result fail(int ret);
  Result read_records(std::string& payload);
  void write_plain(const char* data, size_t len);
  void encrypt(OutQueue& out);

  SSL* ssl_;
  OutQueue wire_;
  std::string_view input_;  // the bytes of the current feed not yet taken by OpenSSL
  std::string error_;
  PskNote psk_;  // set by psk_server_callback
  bool established_ = false;
  bool done_ = false;  // closed or failed: nothing more is read or written
  bool shutdown_sent_ = false;
  bool trimmed_ = false;  // the handshake's output buffer is freed
};

BIO_METHOD* TlsTransport::bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "midge connection");
    BIO_meth_set_write(m, [](BIO* b, const char* data, int len) {
      static_cast<TlsTransport*>(BIO_get_data(b))->wire_.bytes().append(data, static_cast<size_t>(len));
      return len;
    });
    BIO_meth_set_read(m, [](BIO* b, char* data, int len) {
      auto* self = static_cast<TlsTransport*>(BIO_get_data(b));
      BIO_clear_retry_flags(b);
      if (self->input_.empty()) {
        BIO_set_retry_read(b);
        return -1;
      }
      const size_t n = std::min(self->input_.size(), static_cast<size_t>(len));
      std::memcpy(data, self->input_.data(), n);
      self->input_.remove_prefix(n);
      return static_cast<int>(n);
    });
    BIO_meth_set_ctrl(m, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
    return m;
  }();
  return method;
}

Transport::Result TlsTransport::fail(int ret) {
  const int code = SSL_get_error(ssl_, ret);
  done_ = true;
  if (code == SSL_ERROR_ZERO_RETURN) return Result::kClose;  // the peer's close_notify
  const long verify = SSL_get_verify_result(ssl_);
  std::string why = openssl_errors();
  if (verify != X509_V_OK) why += std::string(why.empty() ? "" : ": ") + X509_verify_cert_error_string(verify);
  if (why.empty()) why = code == SSL_ERROR_SYSCALL ? "unexpected end of stream" : "TLS error " + std::to_string(code);
  // OpenSSL then says it found no certificate to fall back on: say what happened.
  if (!psk_.identity.empty() && !psk_.known) why = "unknown PSK identity '" + printable(psk_.identity) + "'";
  error_ = (established_ ? "TLS: " : "TLS handshake failed: ") + why;
  return Result::kError;
}

Transport::Result TlsTransport::feed(std::string_view data, std::string& payload) {
  if (done_) return error_.empty() ? Result::kClose : Result::kError;
  input_ = data;
  ERR_clear_error();
  if (established_ && !trimmed_ && wire_.empty()) {
    // The handshake's flight (certificates: kilobytes) is sent: an idle
    // connection keeps no buffer for it.
    wire_.release();
    trimmed_ = true;
  }
  if (!established_) {
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      if (SSL_get_error(ssl_, r) == SSL_ERROR_WANT_READ) return Result::kOk;  // the rest of it comes later
      return fail(r);
    }
    established_ = true;
  }
  return read_records(payload);
}

Transport::Result TlsTransport::read_records(std::string& payload) {
  thread_local char plain[16 * 1024];
  while (true) {
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, plain, sizeof plain, &n);
    if (r == 1) {
      payload.append(plain, n);
      continue;
    }
    const int code = SSL_get_error(ssl_, r);
    if (code == SSL_ERROR_WANT_READ) return Result::kOk;  // every byte given is used
    return fail(r);
  }
}

void TlsTransport::write_plain(const char* data, size_t len) {
  size_t written = 0;
  if (len > 0 && SSL_write_ex(ssl_, data, len, &written) != 1) {
    done_ = true;
    error_ = "TLS: write failed: " + openssl_errors();
  }
}

// One loop turn of output into records: runs of small pieces (headers,
// small messages) are gathered into one record-sized buffer, large payload
// slices are encrypted where they lie.
void TlsTransport::encrypt(OutQueue& out) {
  constexpr size_t kRecord = 16 * 1024;
  // Room for the turn's records at once (about 30 bytes of overhead each):
  // growing the string record by record would copy it again and again.
  const size_t plain = out.size();
  wire_.bytes().reserve(wire_.bytes().size() + plain + (plain / kRecord + 1) * 64);
  thread_local std::string staging;
  staging.clear();
  iovec iov[64];
  while (!out.empty() && !done_) {
    const size_t count = out.gather(iov, 64);
    size_t total = 0;
    for (size_t i = 0; i < count && !done_; ++i) {
      const auto* base = static_cast<const char*>(iov[i].iov_base);
      const size_t len = iov[i].iov_len;
      total += len;
      if (len >= kRecord / 4) {
        write_plain(staging.data(), staging.size());
        staging.clear();
        write_plain(base, len);
        continue;
      }
      staging.append(base, len);
      if (staging.size() >= kRecord) {
        write_plain(staging.data(), staging.size());
        staging.clear();
      }
    }
    out.consume(total);
  }
  write_plain(staging.data(), staging.size());
  if (staging.capacity() > 4 * kRecord) std::string().swap(staging);
  out.release();
}

void TlsTransport::push(OutQueue& out, bool closing) {
  ERR_clear_error();
  if (established_ && !done_ && !shutdown_sent_) {
    encrypt(out);
  } else {
    out.release();
  }
  if (closing && established_ && !shutdown_sent_) {
    shutdown_sent_ = true;
    SSL_shutdown(ssl_);  // queues our close_notify
  }
}

std::optional<std::string> TlsTransport::peer_identity(PeerIdentity kind) const {
  if (kind == PeerIdentity::kIdentity && psk_.known) return psk_.identity;
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert || SSL_get_verify_result(ssl_) != X509_V_OK) return std::nullopt;
  X509_NAME* name = X509_get_subject_name(cert);
  if (kind == PeerIdentity::kSubject) {
    BIO* bio = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string subject(data, static_cast<size_t>(len > 0 ? len : 0));
    BIO_free(bio);
    return subject;
  }
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return std::nullopt;
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
  if (len < 0) return std::nullopt;
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return cn;
}

}  // namespace

std::shared_ptr<TlsContext> TlsContext::create(const TlsOptions& options, std::string& error) {
  std::shared_ptr<TlsContext> context(new TlsContext(options));
  if (!context->reload(error)) return nullptr;
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

bool TlsContext::reload(std::string& error) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()), &SSL_CTX_free);
  if (!ctx) return fail_with(error, "cannot create a TLS context");
  if (!configure(ctx.get(), options_, error)) return false;
  if (!options_.alpn.empty()) {
    SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, const_cast<std::string*>(&options_.alpn));
  }
  std::lock_guard lock(mutex_);
  SSL_CTX_free(ctx_);  // connections made with it keep their own reference
  ctx_ = ctx.release();
  return true;
}

std::unique_ptr<Transport> TlsContext::new_transport() const {
  SSL* ssl;
  {
    std::lock_guard lock(mutex_);
    ssl = SSL_new(ctx_);  // takes a reference to the context
  }
  if (!ssl) return nullptr;
  return std::make_unique<TlsTransport>(ssl);
}

}  // namespace midge::net
