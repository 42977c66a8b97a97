#include "midge_bench/link.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <cstring>

namespace midge::bench {

namespace {

std::string ssl_error() {
  char buf[256];
  ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
  return buf;
}

std::string base64(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                                  static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

bool is_ip(const std::string& host) {
  in_addr a{};
  return inet_pton(AF_INET, host.c_str(), &a) == 1;
}

}  // namespace

Link::~Link() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

bool Link::init(const Options& o, std::string& error) {
  ws_ = o.ws;
  host_ = o.host;
  ws_path_ = o.ws_path;
  verify_ = !o.insecure;
  if (!o.tls) return true;
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) {
    error = "SSL_CTX_new: " + ssl_error();
    return false;
  }
  // The output buffer may move between a WANT_WRITE and its retry; read
  // ahead so that one read(2) brings many records.
  SSL_CTX_set_mode(ctx_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(ctx_, 1);
  SSL_CTX_set_default_read_buffer_len(ctx_, 64 * 1024);
  // Every handshake is a full one: what a fleet of new devices costs.
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
  if (verify_) {
    const bool loaded = o.cafile.empty() ? SSL_CTX_set_default_verify_paths(ctx_) == 1
                                         : SSL_CTX_load_verify_locations(ctx_, o.cafile.c_str(),
                                                                         nullptr) == 1;
    if (!loaded) {
      error = "cannot load CA " + o.cafile + ": " + ssl_error();
      return false;
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  }
  if (!o.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, o.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, (o.key.empty() ? o.cert : o.key).c_str(),
                                    SSL_FILETYPE_PEM) != 1) {
      error = "cannot load client certificate/key: " + ssl_error();
      return false;
    }
  }
  return true;
}

SSL* Link::new_ssl(int fd) const {
  if (ctx_ == nullptr) return nullptr;
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  SSL_set_fd(ssl, fd);
  SSL_set_connect_state(ssl);
  if (is_ip(host_)) {
    if (verify_) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host_.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host_.c_str());
    if (verify_) SSL_set1_host(ssl, host_.c_str());
  }
  return ssl;
}

std::string ws_upgrade_request(const std::string& host, const std::string& path,
                               std::string& key) {
  unsigned char nonce[16];
  RAND_bytes(nonce, sizeof nonce);
  key = base64(nonce, sizeof nonce);
  return "GET " + path + " HTTP/1.1\r\nHost: " + host +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
         "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
}

bool ws_upgrade_ok(std::string_view head, const std::string& key) {
  if (head.substr(0, 12) != "HTTP/1.1 101") return false;
  // RFC 6455 4.2.2: base64(SHA-1(key + the fixed GUID)).
  const std::string text = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  const std::string accept = base64(digest, sizeof digest);
  // Header names are case-insensitive; find the line, compare the value.
  std::string lower(head);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = lower.find("\r\nsec-websocket-accept:");
  if (at == std::string::npos) return false;
  size_t v = at + 23;
  while (v < head.size() && head[v] == ' ') ++v;
  return head.substr(v, accept.size()) == accept;
}

void ws_frame(std::string_view data, uint64_t& rng, std::string& out, unsigned opcode) {
  const size_t n = data.size();
  unsigned char head[14];
  size_t h = 0;
  head[h++] = static_cast<unsigned char>(0x80 | opcode);  // FIN
  if (n < 126) {
    head[h++] = static_cast<unsigned char>(0x80 | n);
  } else if (n <= 0xffff) {
    head[h++] = 0x80 | 126;
    head[h++] = static_cast<unsigned char>(n >> 8);
    head[h++] = static_cast<unsigned char>(n);
  } else {
    head[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; --i) head[h++] = static_cast<unsigned char>(uint64_t{n} >> (8 * i));
  }
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  const uint32_t key32 = static_cast<uint32_t>(rng);
  std::memcpy(head + h, &key32, 4);
  h += 4;
  const size_t base = out.size();
  out.append(reinterpret_cast<const char*>(head), h);
  out.resize(base + h + n);
  // Mask eight bytes at a time: the key repeats every four.
  const uint64_t key64 = (uint64_t{key32} << 32) | key32;
  const char* src = data.data();
  char* dst = out.data() + base + h;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, src + i, 8);
    w ^= key64;
    std::memcpy(dst + i, &w, 8);
  }
  const auto* k = reinterpret_cast<const unsigned char*>(&key32);
  for (; i < n; ++i) dst[i] = static_cast<char>(src[i] ^ k[i & 3]);
}

long ws_unframe(std::string_view raw, std::vector<char>& in, size_t& in_len, std::string& pings,
                bool& closed) {
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  size_t pos = 0;
  while (raw.size() - pos >= 2) {
    const unsigned char b0 = p[pos];
    const unsigned char b1 = p[pos + 1];
    if ((b0 & 0x70) != 0 || (b1 & 0x80) != 0) return -1;  // RSV bits; servers do not mask
    size_t h = 2;
    uint64_t len = b1 & 0x7f;
    if (len >= 126) {
      const size_t extra = len == 126 ? 2 : 8;
      if (raw.size() - pos < 2 + extra) break;
      len = 0;
      for (size_t i = 0; i < extra; ++i) len = (len << 8) | p[pos + 2 + i];
      h += extra;
    }
    if (raw.size() - pos - h < len) break;
    const char* body = raw.data() + pos + h;
    const unsigned op = b0 & 0x0f;
    if (op == 0 || op == 2) {
      if (in.size() - in_len < len) in.resize(std::max(in.size() * 2, in_len + len));
      std::memcpy(in.data() + in_len, body, len);
      in_len += len;
    } else if (op == 9) {
      pings.append(body, len);
    } else if (op == 8) {
      closed = true;
    } else if (op != 10) {
      return -1;  // text frames are not MQTT
    }
    pos += h + len;
  }
  return static_cast<long>(pos);
}

}  // namespace midge::bench
