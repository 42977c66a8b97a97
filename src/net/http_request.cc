#include "net/http_request.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <memory>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

namespace midge::net {
namespace {

namespace http = boost::beast::http;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view sv(boost::string_view s) { return {s.data(), s.size()}; }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// Percent-decodes `s`; false on a bad escape or a NUL.
bool percent_decode(std::string_view s, std::string& out) {
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      const int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
      const int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
      if (lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return false;
    out += c;
  }
  return true;
}

bool has_dot_dot_segment(std::string_view path) {
  while (!path.empty()) {
    const size_t slash = path.find('/');
    if (path.substr(0, slash) == "..") return true;
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return false;
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    default: return "Internal Server Error";
  }
}

HttpAnswer refuse(int status, std::string why, std::string_view extra = {}) {
  return {status, http_response_head(status, 0, extra), std::move(why)};
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Whether `real` (a realpath) is `root` or below it.
bool inside(std::string_view real, std::string_view root) {
  if (!real.starts_with(root)) return false;
  return real.size() == root.size() || root.back() == '/' || real[root.size()] == '/';
}

// Reads up to `size` bytes; false on a read error.
bool read_all(int fd, size_t size, std::string& body) {
  body.resize(size);
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, body.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;  // the file shrank meanwhile: send what it holds
    got += static_cast<size_t>(n);
  }
  body.resize(got);
  return true;
}

// The regular file at `real` (already checked to be under the root).
HttpAnswer send_file(const std::string& real, std::string_view target, const std::string& path, bool head) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer. O_NOFOLLOW: the
  // last component is not swapped for a link after realpath.
  const Fd f{::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)};
  struct stat st {};
  if (f.fd < 0 || ::fstat(f.fd, &st) != 0) {
    const int status = errno == ENOENT ? 404 : 403;
    return refuse(status, status == 404 ? "not found" : "cannot open");
  }
  if (S_ISDIR(st.st_mode)) {  // as Mosquitto: "/dir" goes to "/dir/" (its index.html)
    // One leading "/": "//host/dir" (or "/\host/dir", to browsers) would send
    // the browser to another host.
    std::string_view raw = target.substr(0, target.find_first_of("?#"));
    while (raw.starts_with('/') || raw.starts_with('\\')) raw.remove_prefix(1);
    return refuse(302, "directory", "Location: /" + std::string(raw) + "/\r\n");
  }
  if (!S_ISREG(st.st_mode)) return refuse(403, "not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > kMaxHttpFile) {
    return refuse(500, "file too large (" + std::to_string(size) + " bytes, at most " + std::to_string(kMaxHttpFile) + ")");
  }
  const std::string type = "Content-Type: " + std::string(http_content_type(path)) + "\r\n";
  if (head) return {200, http_response_head(200, size, type), {}};
  std::string body;
  if (!read_all(f.fd, size, body)) return refuse(500, "cannot read");
  HttpAnswer a{200, http_response_head(200, body.size(), type), {}};
  a.response += body;
  return a;
}

}  // namespace

std::string HttpRequest::list(std::string_view name) const {
  std::string out;
  for (const auto& [n, v] : fields) {
    if (!iequals(n, name)) continue;
    if (!out.empty()) out += ',';
    out += v;
  }
  return out;
}

const std::string* HttpRequest::last(std::string_view name) const {
  const std::string* found = nullptr;
  for (const auto& [n, v] : fields) {
    if (iequals(n, name)) found = &v;
  }
  return found;
}

bool HttpRequest::has_token(std::string_view name, std::string_view token) const {
  const std::string all = list(name);
  std::string_view rest = all;
  while (true) {
    const size_t comma = rest.find(',');
    if (iequals(trim(rest.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) return false;
    rest.remove_prefix(comma + 1);
  }
}

HttpParse parse_http_request(std::string_view bytes, size_t limit) {
  HttpParse out;
  if (bytes.empty()) return out;
  http::request_parser<http::empty_body> p;
  p.header_limit(static_cast<uint32_t>(std::min<size_t>(limit, std::numeric_limits<uint32_t>::max())));
  p.eager(false);  // the head only: a body is never read
  boost::beast::error_code ec;
  const size_t used = p.put(boost::asio::const_buffer(bytes.data(), bytes.size()), ec);
  const bool more = ec == http::error::need_more || (!ec && !p.is_header_done());
  // Beast applies header_limit to the request line and to the fields apart
  // when the head comes whole: the exact bound on the whole head is ours.
  if (more && bytes.size() < limit) return out;
  out.status = HttpParse::kError;
  if (more || (!ec && used > limit)) {
    out.error = "request head too large";
    return out;
  }
  if (ec) {
    out.error = ec.message();
    return out;
  }
  const auto& m = p.get();
  if (m.version() / 10 != 1) {
    out.error = "not HTTP/1.x";
    return out;
  }
  HttpRequest& r = out.request;
  r.method = sv(m.method_string());
  r.target = sv(m.target());
  r.version = m.version();
  for (const auto& f : m) r.fields.emplace_back(sv(f.name_string()), sv(f.value()));
  r.has_body = p.chunked() || p.content_length().value_or(0) > 0;
  out.status = HttpParse::kDone;
  out.used = used;
  return out;
}

HttpPath http_file_path(std::string_view target) {
  target = target.substr(0, target.find_first_of("?#"));
  HttpPath out;
  if (target.empty() || target.front() != '/' || !percent_decode(target, out.path)) {
    out.status = 400;
    out.path.clear();
    return out;
  }
  if (has_dot_dot_segment(out.path)) {
    out.status = 403;
    out.path.clear();
    return out;
  }
  if (out.path.back() == '/') out.path += "index.html";
  return out;
}

std::string_view http_content_type(std::string_view path) {
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {"html", "text/html"},        {"htm", "text/html"},         {"js", "text/javascript"},
      {"mjs", "text/javascript"},   {"css", "text/css"},          {"json", "application/json"},
      {"png", "image/png"},         {"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},         {"svg", "image/svg+xml"},     {"ico", "image/x-icon"},
      {"txt", "text/plain"},        {"wasm", "application/wasm"}, {"map", "application/json"},
  };
  const std::string_view name = path.substr(path.rfind('/') + 1);
  const size_t dot = name.rfind('.');
  if (dot != std::string_view::npos) {
    for (const auto& [ext, type] : kTypes) {
      if (iequals(name.substr(dot + 1), ext)) return type;
    }
  }
  return "application/octet-stream";
}

std::string http_response_head(int status, size_t content_length, std::string_view extra) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
  h += extra;
  h += "Content-Length: " + std::to_string(content_length) + "\r\nConnection: close\r\n\r\n";
  return h;
}

HttpAnswer serve_http_file(const std::string& root, const HttpRequest& request) {
  const bool head = request.method == "HEAD";
  if (request.method != "GET" && !head) return refuse(405, "method not allowed", "Allow: GET, HEAD\r\n");
  if (request.has_body) return refuse(400, "request with a body");
  const HttpPath p = http_file_path(request.target);
  if (p.status != 0) return refuse(p.status, p.status == 403 ? "\"..\" in the path" : "bad path");
  const std::string full = root + p.path;
  const std::unique_ptr<char, decltype(&std::free)> real(::realpath(full.c_str(), nullptr), &std::free);
  if (!real) {
    const int status = errno == ENOENT || errno == ENOTDIR ? 404 : 403;
    return refuse(status, status == 404 ? "not found" : "cannot open");
  }
  // Links may point anywhere: what they resolve to must be under the root.
  if (!inside(real.get(), root)) return refuse(403, "outside http_dir");
  return send_file(real.get(), request.target, p.path, head);
}

}  // namespace midge::net
