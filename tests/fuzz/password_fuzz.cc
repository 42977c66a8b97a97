// libFuzzer target for password files (mosquitto_passwd format): the file
// parser never crashes; a hash that parses prints back to text that parses
// to the same hash; base64 encode -> decode gives the bytes back. Passwords
// are never verified here: PBKDF2 with an iteration count taken from the
// input would only measure the CPU.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "check.h"
#include "auth/password_file.h"
#include "auth/password_hash.h"

namespace a = midge::auth;

namespace {

bool same(const a::PasswordHash& x, const a::PasswordHash& y) {
  return x.type == y.type && x.iterations == y.iterations && x.salt == y.salt && x.hash == y.hash;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> problems;
  (void)a::PasswordFile::parse(text, "fuzz.pw", problems);

  const std::string_view line = text.substr(0, text.find('\n'));
  std::string error;
  if (auto hash = a::PasswordHash::parse(line, error)) {
    std::string again_error;
    const auto again = a::PasswordHash::parse(hash->to_string(), again_error);
    FUZZ_CHECK(again && same(*hash, *again));
  }
  // Not "encode(decode(x)) == x": the decoder accepts non-zero padding bits
  // ("ali=" reads as "jX"), which RFC 4648 section 3.5 allows.
  if (auto bytes = a::base64_decode(line)) FUZZ_CHECK(a::base64_decode(a::base64_encode(*bytes)) == bytes);
  return 0;
}
