// One password hash in mosquitto_passwd's notation:
//   $6$<base64 salt>$<base64 hash>               hash = SHA-512(password || salt)
//   $7$<iterations>$<base64 salt>$<base64 hash>  hash = PBKDF2-HMAC-SHA512(password, salt, iterations)
// Base64 is the standard alphabet with '=' padding. Mosquitto 2.0 writes
// 12-byte salts and 101 iterations; 2.1 writes 64-byte salts and 210000
// iterations, so any salt length is accepted here.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace midge::auth {

enum class HashType { kSha512 = 6, kSha512Pbkdf2 = 7 };

// What mosquitto_passwd 2.0.11 writes by default: 12-byte salt, 101 iterations.
inline constexpr size_t kSaltBytes = 12;
inline constexpr int kDefaultIterations = 101;
// What midge_passwd writes: Mosquitto 2.1's default and OWASP's figure for
// PBKDF2-HMAC-SHA512. Mosquitto 2.0 reads the count from each line, so its
// broker takes these files too.
inline constexpr int kRecommendedIterations = 210000;
inline constexpr size_t kHashBytes = 64;  // SHA-512 output

struct PasswordHash {
  HashType type = HashType::kSha512Pbkdf2;
  int iterations = 0;  // $7$ only
  std::string salt;    // raw bytes
  std::string hash;    // raw bytes, kHashBytes long

  // Parses the text after "user:". On failure returns nullopt and sets
  // `error` to mosquitto's wording without the user ("Invalid password hash
  // type", "Unable to decode password salt", ...).
  static std::optional<PasswordHash> parse(std::string_view text, std::string& error);

  // A fresh hash of `password` with a random kSaltBytes salt (RAND_bytes).
  // nullopt only if the system's random generator fails.
  static std::optional<PasswordHash> make(std::string_view password, HashType type,
                                          int iterations = kDefaultIterations);

  // Constant-time comparison of the stored hash with the password's.
  bool matches(std::string_view password) const;

  std::string to_string() const;  // back to "$7$101$salt$hash"
};

std::string base64_encode(std::string_view bytes);
// Strict decoder: standard alphabet, length a multiple of 4, '=' only as
// trailing padding. nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace midge::auth
