// libFuzzer target for the HTTP request head parser (Boost.Beast's
// request_parser on a buffer) and the http_dir path rules. Properties: a
// parsed head parses the same alone and needs all its bytes; a file path
// never holds a ".." segment or a NUL, whatever the target.
#include <cstdint>
#include <string>
#include <string_view>

#include "check.h"
#include "net/http_request.h"
#include "net/websocket.h"

using namespace midge::net;

namespace {

constexpr size_t kLimit = WebSocket::kMaxRequest + 4;

bool has_dot_dot(std::string_view path) {
  return path == ".." || path.starts_with("../") || path.ends_with("/..") ||
         path.find("/../") != std::string_view::npos;
}

void check_path(std::string_view target) {
  const HttpPath p = http_file_path(target);
  if (p.status != 0) {
    FUZZ_CHECK((p.status == 400 || p.status == 403) && p.path.empty());
    return;
  }
  FUZZ_CHECK(!p.path.empty() && p.path.front() == '/');
  FUZZ_CHECK(p.path.find('\0') == std::string::npos && !has_dot_dot(p.path));
  FUZZ_CHECK(!http_content_type(p.path).empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  check_path(in);
  const HttpParse p = parse_http_request(in, kLimit);
  if (p.status == HttpParse::kError) FUZZ_CHECK(!p.error.empty());
  if (p.status != HttpParse::kDone) return 0;
  FUZZ_CHECK(p.used > 0 && p.used <= in.size() && p.used <= kLimit);
  const HttpParse alone = parse_http_request(in.substr(0, p.used), kLimit);
  FUZZ_CHECK(alone.status == HttpParse::kDone && alone.used == p.used && alone.request == p.request);
  FUZZ_CHECK(parse_http_request(in.substr(0, p.used - 1), kLimit).status == HttpParse::kNeedMore);
  FUZZ_CHECK(p.request.version == 10 || p.request.version == 11);
  check_path(p.request.target);
  (void)p.request.has_token("Connection", "upgrade");
  return 0;
}
