// The TLS transport against a real OpenSSL client, in memory: handshake,
// records both ways, identities, failures, close, and WebSocket inside TLS.
#include "net/tls.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "net/websocket.h"

namespace midge::net {
namespace {

namespace fs = std::filesystem;

EVP_PKEY* new_key() { return EVP_EC_gen("P-256"); }

// A certificate for `cn` signed by `issuer_key` (self-signed when issuer is null).
X509* new_cert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(std::rand()));
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x));
  if (!issuer) {  // a CA
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
  return x;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("midge-tls-test-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    ca_key_ = new_key();
    ca_ = new_cert("Test CA", ca_key_, nullptr, nullptr);
    EVP_PKEY* server_key = new_key();
    X509* server = new_cert("localhost", server_key, ca_, ca_key_);
    client_key_ = new_key();
    client_ = new_cert("alice", client_key_, ca_, ca_key_);
    write_pem(path("ca.crt"), ca_);
    write_pem(path("server.crt"), server);
    write_key(path("server.key"), server_key);
    X509_free(server);
    EVP_PKEY_free(server_key);
  }
  void TearDown() override {
    X509_free(ca_);
    X509_free(client_);
    EVP_PKEY_free(ca_key_);
    EVP_PKEY_free(client_key_);
    if (client_ssl_) SSL_free(client_ssl_);
    if (client_ctx_) SSL_CTX_free(client_ctx_);
    fs::remove_all(dir_);
  }

  std::string path(const char* name) const { return (dir_ / name).string(); }
  static void write_pem(const std::string& p, X509* x) {
    FILE* f = std::fopen(p.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
  }
  static void write_key(const std::string& p, EVP_PKEY* k) {
    FILE* f = std::fopen(p.c_str(), "w");
    PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }

  TlsOptions options() const {
    TlsOptions o;
    o.certfile = path("server.crt");
    o.keyfile = path("server.key");
    o.alpn = "mqtt";
    return o;
  }

  // An OpenSSL client over two memory BIOs; `with_cert`: presents alice's certificate.
  void make_client(bool with_cert = false) {
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx_), ca_);
    SSL_CTX_set_verify(client_ctx_, SSL_VERIFY_PEER, nullptr);
    if (with_cert) {
      SSL_CTX_use_certificate(client_ctx_, client_);
      SSL_CTX_use_PrivateKey(client_ctx_, client_key_);
    }
    client_ssl_ = SSL_new(client_ctx_);
    to_server_ = BIO_new(BIO_s_mem());
    from_server_ = BIO_new(BIO_s_mem());
    SSL_set_bio(client_ssl_, from_server_, to_server_);
    SSL_set_connect_state(client_ssl_);
  }

  // Moves bytes both ways until neither side has more; returns the last
  // server result and appends what the server un-wrapped to `payload`.
  Transport::Result pump(Transport& server, std::string& payload) {
    Transport::Result r = Transport::Result::kOk;
    for (int i = 0; i < 20; ++i) {
      SSL_do_handshake(client_ssl_);
      std::string bytes = drain(to_server_);
      if (!bytes.empty()) r = server.feed(bytes, payload);
      std::string back = server.wire().bytes();
      server.wire().release();
      if (!back.empty()) BIO_write(from_server_, back.data(), static_cast<int>(back.size()));
      if (bytes.empty() && back.empty()) break;
    }
    return r;
  }
  static std::string drain(BIO* b) {
    std::string out;
    char buf[4096];
    int n;
    while ((n = BIO_read(b, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  std::string client_read() {
    std::string out;
    char buf[16384];
    int n;
    while ((n = SSL_read(client_ssl_, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

  fs::path dir_;
  EVP_PKEY* ca_key_ = nullptr;
  X509* ca_ = nullptr;
  EVP_PKEY* client_key_ = nullptr;
  X509* client_ = nullptr;
  SSL_CTX* client_ctx_ = nullptr;
  SSL* client_ssl_ = nullptr;
  BIO* to_server_ = nullptr;
  BIO* from_server_ = nullptr;
};

TEST_F(TlsTest, HandshakeThenBytesBothWays) {
  std::string error;
  auto ctx = TlsContext::create(options(), error);
  ASSERT_TRUE(ctx) << error;
  auto server = ctx->new_transport();
  make_client();
  std::string payload;
  EXPECT_EQ(pump(*server, payload), Transport::Result::kOk);
  ASSERT_TRUE(server->established()) << server->error();
  ASSERT_EQ(SSL_is_init_finished(client_ssl_), 1);

  ASSERT_EQ(SSL_write(client_ssl_, "\x10\x0c", 2), 2);
  pump(*server, payload);
  EXPECT_EQ(payload, std::string("\x10\x0c"));

  // A loop turn of output: many small packets and one large one.
  OutQueue out;
  std::string expected;
  for (int i = 0; i < 500; ++i) expected += "\x30\x05\x00\x01t" + std::to_string(i % 10) + "x";
  expected += std::string(100000, 'p');
  out.bytes() = expected;
  server->push(out, false);
  EXPECT_TRUE(out.empty());
  const size_t sent = server->wire().size();
  BIO_write(from_server_, server->wire().bytes().data(), static_cast<int>(sent));
  server->wire().release();
  EXPECT_EQ(client_read(), expected);
  // Full records: the overhead is a few dozen bytes per 16 KiB record.
  EXPECT_LT(sent, expected.size() + (expected.size() / 16384 + 1) * 64);
}

TEST_F(TlsTest, ClientCertificateGivesTheIdentityAndSubject) {
  TlsOptions o = options();
  o.cafile = path("ca.crt");
  o.require_certificate = true;
  std::string error;
  auto ctx = TlsContext::create(o, error);
  ASSERT_TRUE(ctx) << error;
  auto server = ctx->new_transport();
  make_client(/*with_cert=*/true);
  std::string payload;
  ASSERT_EQ(pump(*server, payload), Transport::Result::kOk) << server->error();
  ASSERT_TRUE(server->established());
  EXPECT_EQ(server->peer_identity(PeerIdentity::kIdentity), std::optional<std::string>("alice"));
  EXPECT_EQ(server->peer_identity(PeerIdentity::kSubject), std::optional<std::string>("CN=alice"));
}

TEST_F(TlsTest, MissingClientCertificateFailsTheHandshake) {
  TlsOptions o = options();
  o.cafile = path("ca.crt");
  o.require_certificate = true;
  std::string error;
  auto ctx = TlsContext::create(o, error);
  ASSERT_TRUE(ctx) << error;
  auto server = ctx->new_transport();
  make_client(/*with_cert=*/false);
  std::string payload;
  EXPECT_EQ(pump(*server, payload), Transport::Result::kError);
  EXPECT_NE(server->error().find("certificate"), std::string::npos) << server->error();
  EXPECT_EQ(server->peer_identity(PeerIdentity::kIdentity), std::nullopt);
}

TEST_F(TlsTest, PlaintextIsAFailedHandshake) {
  std::string error;
  auto ctx = TlsContext::create(options(), error);
  ASSERT_TRUE(ctx) << error;
  auto server = ctx->new_transport();
  std::string payload;
  EXPECT_EQ(server->feed(std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14), payload),
            Transport::Result::kError);
  EXPECT_FALSE(server->established());
  EXPECT_TRUE(payload.empty());
  EXPECT_NE(server->error().find("TLS handshake failed"), std::string::npos) << server->error();
  // Nothing more is taken.
  EXPECT_EQ(server->feed("more", payload), Transport::Result::kError);
}

TEST_F(TlsTest, CloseNotifyEndsTheStreamAndClosingSendsOne) {
  std::string error;
  auto ctx = TlsContext::create(options(), error);
  ASSERT_TRUE(ctx) << error;
  auto server = ctx->new_transport();
  make_client();
  std::string payload;
  pump(*server, payload);
  ASSERT_TRUE(server->established());
  OutQueue none;
  server->push(none, /*closing=*/true);
  ASSERT_FALSE(server->wire().empty());  // our close_notify
  BIO_write(from_server_, server->wire().bytes().data(), static_cast<int>(server->wire().size()));
  server->wire().release();
  char c;
  EXPECT_EQ(SSL_read(client_ssl_, &c, 1), 0);
  EXPECT_EQ(SSL_get_error(client_ssl_, 0), SSL_ERROR_ZERO_RETURN);
  SSL_shutdown(client_ssl_);
  EXPECT_EQ(server->feed(drain(to_server_), payload), Transport::Result::kClose);
}

TEST_F(TlsTest, UnusableFilesAreNamed) {
  TlsOptions o = options();
  o.certfile = path("missing.crt");
  std::string error;
  EXPECT_EQ(TlsContext::create(o, error), nullptr);
  EXPECT_NE(error.find("certfile " + path("missing.crt") + " cannot be used"), std::string::npos) << error;
  o = options();
  o.tls_version = "tlsv9";
  EXPECT_EQ(TlsContext::create(o, error), nullptr);
  EXPECT_NE(error.find("tls_version"), std::string::npos) << error;
  o = options();
  o.psk_hint = "hint";
  o.psk_file = path("missing.psk");
  EXPECT_EQ(TlsContext::create(o, error), nullptr);
  EXPECT_NE(error.find("psk_file"), std::string::npos) << error;
}

TEST_F(TlsTest, ReloadKeepsTheOldContextWhenFilesBreak) {
  std::string error;
  auto ctx = TlsContext::create(options(), error);
  ASSERT_TRUE(ctx) << error;
  std::ofstream(path("server.key")) << "not a key\n";
  EXPECT_FALSE(ctx->reload(error));
  EXPECT_NE(error.find("keyfile"), std::string::npos) << error;
  auto server = ctx->new_transport();  // still made from the previous files
  make_client();
  std::string payload;
  pump(*server, payload);
  EXPECT_TRUE(server->established()) << server->error();
}

TEST_F(TlsTest, WebSocketInsideTls) {
  std::string error;
  auto ctx = TlsContext::create(options(), error);
  ASSERT_TRUE(ctx) << error;
  auto server = stack_transports(std::make_unique<WebSocket>(), ctx->new_transport());
  make_client();
  std::string payload;
  pump(*server, payload);
  const std::string upgrade =
      "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
  SSL_write(client_ssl_, upgrade.data(), static_cast<int>(upgrade.size()));
  EXPECT_EQ(pump(*server, payload), Transport::Result::kOk);
  EXPECT_EQ(client_read().rfind("HTTP/1.1 101", 0), 0u);
  EXPECT_TRUE(server->established());
  // A masked binary frame carrying two MQTT bytes.
  const std::string frame("\x82\x82\x01\x02\x03\x04\xC1\x02", 8);  // PINGREQ (C0 00), masked
  SSL_write(client_ssl_, frame.data(), static_cast<int>(frame.size()));
  pump(*server, payload);
  EXPECT_EQ(payload, std::string("\xC0\x00", 2));
  OutQueue out;
  out.bytes() = std::string("\xD0\x00", 2);
  server->push(out, false);
  BIO_write(from_server_, server->wire().bytes().data(), static_cast<int>(server->wire().size()));
  server->wire().release();
  EXPECT_EQ(client_read(), std::string("\x82\x02\xD0\x00", 4));
}

}  // namespace
}  // namespace midge::net
