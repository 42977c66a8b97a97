#include "auth/password_hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <climits>

namespace midge::auth {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Splits "a$b$c" at '$' into at most `n` fields; false if the count differs.
template <size_t N>
bool split_fields(std::string_view text, std::array<std::string_view, N>& out) {
  size_t i = 0;
  while (i < N - 1) {
    const size_t dollar = text.find('$');
    if (dollar == std::string_view::npos) return false;
    out[i++] = text.substr(0, dollar);
    text.remove_prefix(dollar + 1);
  }
  if (text.find('$') != std::string_view::npos) return false;
  out[i] = text;
  return true;
}

std::string compute(std::string_view password, HashType type, int iterations, std::string_view salt) {
  std::string out(kHashBytes, '\0');
  auto* dest = reinterpret_cast<unsigned char*>(out.data());
  if (type == HashType::kSha512) {
    // $6$: one SHA-512 over the password followed by the salt.
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    const bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 &&
                    EVP_DigestUpdate(ctx, password.data(), password.size()) == 1 &&
                    EVP_DigestUpdate(ctx, salt.data(), salt.size()) == 1 &&
                    EVP_DigestFinal_ex(ctx, dest, &len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) return {};
  } else if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                               reinterpret_cast<const unsigned char*>(salt.data()),
                               static_cast<int>(salt.size()), iterations, EVP_sha512(),
                               static_cast<int>(kHashBytes), dest) != 1) {
    return {};
  }
  return out;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<uint8_t>(bytes[i + k]) : 0);
    for (size_t k = 0; k < 4; ++k) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 0x3f] : '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int pad = 0;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      int d = 0;
      if (c == '=' && last && k >= 2) {
        ++pad;
      } else if (pad > 0 || (d = base64_value(c)) < 0) {
        return std::nullopt;  // a character after padding, or not base64
      }
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

std::optional<PasswordHash> PasswordHash::parse(std::string_view text, std::string& error) {
  PasswordHash h;
  std::string_view salt64, hash64;
  if (text.starts_with("$6$")) {
    std::array<std::string_view, 2> f;
    if (!split_fields(text.substr(3), f)) {
      error = "Invalid password hash";
      return std::nullopt;
    }
    h.type = HashType::kSha512;
    salt64 = f[0];
    hash64 = f[1];
  } else if (text.starts_with("$7$")) {
    std::array<std::string_view, 3> f;
    if (!split_fields(text.substr(3), f)) {
      error = "Invalid password hash";
      return std::nullopt;
    }
    h.type = HashType::kSha512Pbkdf2;
    const auto [end, ec] = std::from_chars(f[0].data(), f[0].data() + f[0].size(), h.iterations);
    if (ec != std::errc() || end != f[0].data() + f[0].size() || h.iterations < 1) {
      error = "Invalid hash iterations";
      return std::nullopt;
    }
    salt64 = f[1];
    hash64 = f[2];
  } else {
    // Plain-text passwords are not accepted by Mosquitto 2.0 either: they
    // must be converted with `mosquitto_passwd -U` (or `midge_passwd -U`).
    error = "Invalid password hash type";
    return std::nullopt;
  }
  auto salt = base64_decode(salt64);
  if (!salt || salt->empty()) {
    error = "Unable to decode password salt";
    return std::nullopt;
  }
  auto hash = base64_decode(hash64);
  if (!hash || hash->size() != kHashBytes) {
    error = "Unable to decode password";
    return std::nullopt;
  }
  h.salt = std::move(*salt);
  h.hash = std::move(*hash);
  return h;
}

std::optional<PasswordHash> PasswordHash::make(std::string_view password, HashType type, int iterations) {
  PasswordHash h;
  h.type = type;
  h.iterations = type == HashType::kSha512Pbkdf2 ? iterations : 0;
  h.salt.assign(kSaltBytes, '\0');
  if (iterations < 1 || RAND_bytes(reinterpret_cast<unsigned char*>(h.salt.data()), static_cast<int>(kSaltBytes)) != 1) {
    return std::nullopt;
  }
  h.hash = compute(password, type, h.iterations, h.salt);
  if (h.hash.empty()) return std::nullopt;
  return h;
}

bool PasswordHash::matches(std::string_view password) const {
  const std::string computed = compute(password, type, iterations, salt);
  // CRYPTO_memcmp takes the same time wherever the first difference is, so a
  // client cannot learn the hash byte by byte from response times.
  return computed.size() == hash.size() && !computed.empty() &&
         CRYPTO_memcmp(computed.data(), hash.data(), hash.size()) == 0;
}

std::string PasswordHash::to_string() const {
  if (type == HashType::kSha512) return "$6$" + base64_encode(salt) + "$" + base64_encode(hash);
  return "$7$" + std::to_string(iterations) + "$" + base64_encode(salt) + "$" + base64_encode(hash);
}

}  // namespace midge::auth
