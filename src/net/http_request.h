// HTTP/1.x on `protocol websockets` listeners: the request head (parsed by
// Boost.Beast's request_parser on a buffer, no Beast I/O), and the static
// files of `http_dir`. Everything but serve_http_file is pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace midge::net {

struct HttpRequest {
  std::string method;  // as sent: "GET", "HEAD", ...
  std::string target;  // request-target as sent, e.g. "/a%20b.html?x=1"
  unsigned version = 11;  // 10 or 11
  std::vector<std::pair<std::string, std::string>> fields;  // in order, as sent
  bool has_body = false;  // Content-Length > 0 or chunked

  // A list header (Connection, Upgrade...): every occurrence joined by ",".
  std::string list(std::string_view name) const;
  // The last value of header `name`, or null.
  const std::string* last(std::string_view name) const;
  // Whether list header `name` holds `token` (case-insensitive).
  bool has_token(std::string_view name, std::string_view token) const;
  bool operator==(const HttpRequest&) const = default;
};

struct HttpParse {
  enum Status { kNeedMore, kDone, kError };
  Status status = kNeedMore;
  size_t used = 0;  // kDone: bytes of the head, blank line included
  HttpRequest request;
  std::string error;  // kError: why
};

// Parses the request head at the start of `bytes` (what follows it is not
// read). Heads larger than `limit` bytes, blank line included, are errors.
HttpParse parse_http_request(std::string_view bytes, size_t limit);

// The file path a request-target names: the query dropped, percent-decoded,
// "/" at the end meaning index.html. `status` is 0 when `path` is good, 400
// when the target is not an absolute path or does not decode (or holds a
// NUL), 403 when it has a ".." segment.
struct HttpPath {
  int status = 0;
  std::string path;  // starts with "/", no ".." segment
};
HttpPath http_file_path(std::string_view target);

// Content-Type by file extension; application/octet-stream if unknown.
std::string_view http_content_type(std::string_view path);

// A response head with Content-Length and Connection: close.
// `extra`: more header lines, each ending in "\r\n".
std::string http_response_head(int status, size_t content_length, std::string_view extra = {});

// Files larger than this are not served (500): a file is read whole into
// the connection's output, synchronously, on the event loop.
inline constexpr size_t kMaxHttpFile = 16 * 1024 * 1024;

struct HttpAnswer {
  int status = 0;
  std::string response;  // head, and the body unless HEAD
  std::string why;       // for the log when status >= 400
};

// Answers a request on a listener with `root` (http_dir after realpath) for
// a request that is not a WebSocket upgrade: GET and HEAD of regular files
// under root. Reads the file (I/O).
HttpAnswer serve_http_file(const std::string& root, const HttpRequest& request);

}  // namespace midge::net
