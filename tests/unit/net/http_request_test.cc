#include "net/http_request.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "net/websocket.h"

namespace midge::net {
namespace {

namespace fs = std::filesystem;

const std::string kGet = "GET /a%20b.html?x=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nX-L: a\r\nx-l: b, c\r\n\r\n";

HttpRequest parsed(const std::string& head) {
  HttpParse p = parse_http_request(head, 8192);
  EXPECT_EQ(p.status, HttpParse::kDone) << head << p.error;
  return p.request;
}

TEST(HttpRequest, ParsesTheHeadAndStopsAtItsEnd) {
  const HttpParse p = parse_http_request(kGet + "\x82\x80rest", 8192);
  ASSERT_EQ(p.status, HttpParse::kDone) << p.error;
  EXPECT_EQ(p.used, kGet.size());
  EXPECT_EQ(p.request.method, "GET");
  EXPECT_EQ(p.request.target, "/a%20b.html?x=1");
  EXPECT_EQ(p.request.version, 11u);
  ASSERT_EQ(p.request.fields.size(), 4u);
  EXPECT_EQ(p.request.fields[0], (std::pair<std::string, std::string>{"Host", "h"}));
  EXPECT_EQ(p.request.list("X-l"), "a,b, c");
  EXPECT_TRUE(p.request.has_token("x-L", "C"));
  EXPECT_FALSE(p.request.has_token("x-L", "d"));
  EXPECT_EQ(*p.request.last("host"), "h");
  EXPECT_EQ(p.request.last("Upgrade"), nullptr);
  EXPECT_FALSE(p.request.has_body);
}

TEST(HttpRequest, EveryPrefixNeedsMore) {
  for (size_t n = 0; n < kGet.size(); ++n) {
    EXPECT_EQ(parse_http_request(kGet.substr(0, n), 8192).status, HttpParse::kNeedMore) << n;
  }
}

TEST(HttpRequest, RefusesMalformedHeads) {
  for (const std::string& bad : {
           std::string("garbage\r\n\r\n"),
           std::string("GET / HTTP/2.0\r\n\r\n"),
           std::string("GET / XTTP/1.1\r\n\r\n"),
           std::string("GET /\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nNo colon\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nName : space before colon\r\n\r\n"),
           std::string("GET /a\x01 HTTP/1.1\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
       }) {
    const HttpParse p = parse_http_request(bad, 8192);
    EXPECT_EQ(p.status, HttpParse::kError) << bad;
    EXPECT_FALSE(p.error.empty()) << bad;
  }
}

TEST(HttpRequest, HeaderLimitCountsTheBlankLine) {
  const std::string head = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a') + "\r\n\r\n";
  EXPECT_EQ(parse_http_request(head, head.size()).status, HttpParse::kDone);
  EXPECT_EQ(parse_http_request(head, head.size() - 1).status, HttpParse::kError);
  // Incomplete and already too long: an error, not "need more".
  EXPECT_EQ(parse_http_request(head.substr(0, 60), 50).status, HttpParse::kError);
}

TEST(HttpRequest, BodiesAreNoticedNotRead) {
  EXPECT_TRUE(parsed("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").has_body);
  EXPECT_TRUE(parsed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").has_body);
  EXPECT_FALSE(parsed("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body);
  const HttpRequest r = parsed("HEAD /x HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.method, "HEAD");
  EXPECT_EQ(r.version, 10u);
}

TEST(HttpFilePath, DecodesAndMapsDirectoriesToIndex) {
  EXPECT_EQ(http_file_path("/").path, "/index.html");
  EXPECT_EQ(http_file_path("/?x=1").path, "/index.html");
  EXPECT_EQ(http_file_path("/sub/").path, "/sub/index.html");
  EXPECT_EQ(http_file_path("/a%20b.HTML?q=%00").path, "/a b.HTML");
  EXPECT_EQ(http_file_path("/%69ndex.html").path, "/index.html");
  EXPECT_EQ(http_file_path("/a..b/...").path, "/a..b/...");
  EXPECT_EQ(http_file_path("/a/./b").path, "/a/./b");  // "." stays: realpath resolves it
}

TEST(HttpFilePath, RefusesTraversalAndBadEscapes) {
  for (const char* t : {"/..", "/../secret", "/a/../../b", "/%2e%2e/secret", "/%2E%2e", "/..%2fsecret",
                        "/a%2f..%2f..%2fb", "/sub/.."}) {
    const HttpPath p = http_file_path(t);
    EXPECT_EQ(p.status, 403) << t;
    EXPECT_TRUE(p.path.empty()) << t;
  }
  for (const char* t : {"", "index.html", "http://h/x", "*", "/%", "/%4", "/%zz", "/a%00b", "/%0"}) {
    EXPECT_EQ(http_file_path(t).status, 400) << t;
  }
}

TEST(HttpContentType, ByExtension) {
  const std::pair<const char*, const char*> cases[] = {
      {"/index.html", "text/html"}, {"/a.HTM", "text/html"}, {"/app.js", "text/javascript"},
      {"/m.mjs", "text/javascript"}, {"/s.css", "text/css"}, {"/d.json", "application/json"},
      {"/i.png", "image/png"}, {"/i.jpg", "image/jpeg"}, {"/i.jpeg", "image/jpeg"}, {"/i.gif", "image/gif"},
      {"/i.svg", "image/svg+xml"}, {"/favicon.ico", "image/x-icon"}, {"/r.txt", "text/plain"},
      {"/w.wasm", "application/wasm"}, {"/app.js.map", "application/json"},
      {"/noext", "application/octet-stream"}, {"/a.b/noext", "application/octet-stream"},
      {"/x.exe", "application/octet-stream"}, {"/.html", "text/html"},
  };
  for (const auto& [path, type] : cases) EXPECT_EQ(http_content_type(path), type) << path;
}

// A temporary http_dir (realpath) with a few files, and a secret beside it.
class HttpDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "midge_http_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = fs::canonical(tmpl);
    root_ = (base_ / "www").string();
    fs::create_directories(base_ / "www" / "sub" / "deeper");
    write("www/index.html", "<h1>hi</h1>");
    write("www/app.js", "let x = 1;");
    write("www/sub/deeper/index.html", "deep");
    write("secret", "top secret");
    fs::create_symlink(base_ / "secret", base_ / "www" / "escape");
    fs::create_symlink(base_, base_ / "www" / "updir");
    fs::create_symlink(base_ / "www" / "app.js", base_ / "www" / "alias.js");
    ASSERT_EQ(::mkfifo((base_ / "www" / "fifo").c_str(), 0600), 0);
  }
  void TearDown() override { fs::remove_all(base_); }
  void write(const std::string& rel, const std::string& text) { std::ofstream(base_ / rel) << text; }
  HttpAnswer get(const std::string& target, const std::string& method = "GET") {
    return serve_http_file(root_, parsed(method + " " + target + " HTTP/1.1\r\nHost: h\r\n\r\n"));
  }

  fs::path base_;
  std::string root_;
};

TEST_F(HttpDir, ServesRegularFilesWithTypeAndLength) {
  HttpAnswer a = get("/");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.response,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 11\r\nConnection: close\r\n\r\n<h1>hi</h1>");
  a = get("/app.js?v=2");
  EXPECT_EQ(a.status, 200);
  EXPECT_NE(a.response.find("Content-Type: text/javascript\r\n"), std::string::npos);
  EXPECT_TRUE(a.response.ends_with("\r\n\r\nlet x = 1;"));
  EXPECT_TRUE(get("/sub/deeper/").response.ends_with("\r\n\r\ndeep"));
  EXPECT_TRUE(get("/alias.js").response.ends_with("\r\n\r\nlet x = 1;"));  // a link that stays inside
}

TEST_F(HttpDir, HeadHasTheLengthButNoBody) {
  const HttpAnswer a = get("/app.js", "HEAD");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.response,
            "HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nContent-Length: 10\r\nConnection: close\r\n\r\n");
}

TEST_F(HttpDir, RefusesWhatIsNotAFileUnderTheRoot) {
  const std::pair<const char*, int> cases[] = {
      {"/nothere.html", 404}, {"/nothere/x", 404}, {"/index.html/x", 404}, {"/sub/", 404},
      {"/escape", 403}, {"/updir/secret", 403}, {"/../secret", 403}, {"/%2e%2e/secret", 403},
      {"/fifo", 403}, {"/%zz", 400},
  };
  for (const auto& [target, status] : cases) {
    const HttpAnswer a = get(target);
    EXPECT_EQ(a.status, status) << target;
    EXPECT_FALSE(a.why.empty()) << target;
    EXPECT_EQ(a.response.find("secret"), std::string::npos) << target;
    EXPECT_TRUE(a.response.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n")) << target;
  }
}

TEST_F(HttpDir, DirectoryWithoutSlashIsRedirected) {
  const HttpAnswer a = get("/sub/deeper?x=1");
  EXPECT_EQ(a.status, 302);
  EXPECT_NE(a.response.find("\r\nLocation: /sub/deeper/\r\n"), std::string::npos);
  // Never to another host ("//host/" is protocol-relative).
  EXPECT_NE(get("//sub").response.find("\r\nLocation: /sub/\r\n"), std::string::npos);
}

TEST_F(HttpDir, OtherMethodsGet405AndBodiesAreRefused) {
  for (const char* m : {"POST", "PUT", "DELETE", "OPTIONS"}) {
    const HttpAnswer a = get("/index.html", m);
    EXPECT_EQ(a.status, 405) << m;
    EXPECT_NE(a.response.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
  }
  const HttpAnswer a =
      serve_http_file(root_, parsed("GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"));
  EXPECT_EQ(a.status, 400);
}

TEST_F(HttpDir, FilesOverTheCapGet500) {
  const fs::path big = base_ / "www" / "big.bin";
  std::ofstream(big).close();
  fs::resize_file(big, kMaxHttpFile + 1);  // sparse: nothing is written
  HttpAnswer a = get("/big.bin");
  EXPECT_EQ(a.status, 500);
  EXPECT_NE(a.why.find("too large"), std::string::npos);
  fs::resize_file(big, kMaxHttpFile);
  a = get("/big.bin", "HEAD");
  EXPECT_EQ(a.status, 200);
  EXPECT_NE(a.response.find("Content-Length: 16777216\r\n"), std::string::npos);
  EXPECT_NE(a.response.find("Content-Type: application/octet-stream\r\n"), std::string::npos);
}

// The WebSocket's handshake state with an http_dir.
TEST_F(HttpDir, WebSocketAnswersPlainRequestsAndStillUpgrades) {
  std::string payload;
  WebSocket ws(root_);
  const std::string req = "GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n";
  for (size_t i = 0; i + 1 < req.size(); ++i) ASSERT_EQ(ws.feed(req.substr(i, 1), payload), WebSocket::Result::kOk);
  EXPECT_EQ(ws.feed(req.substr(req.size() - 1) + "GET /app.js HTTP/1.1\r\n\r\n", payload), WebSocket::Result::kClose);
  EXPECT_TRUE(ws.wire().bytes().starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_TRUE(ws.wire().bytes().ends_with("<h1>hi</h1>"));  // one answer: the pipelined request is ignored
  EXPECT_TRUE(ws.close_sent());
  EXPECT_FALSE(ws.is_open());
  ws.send_close(1000);
  EXPECT_TRUE(ws.wire().bytes().ends_with("<h1>hi</h1>"));  // no frame after HTTP

  WebSocket ws2(root_);
  EXPECT_EQ(ws2.feed("GET /escape HTTP/1.1\r\n\r\n", payload), WebSocket::Result::kError);
  EXPECT_TRUE(ws2.wire().bytes().starts_with("HTTP/1.1 403 Forbidden\r\n"));
  EXPECT_EQ(ws2.error(), "HTTP 403 for GET /escape: outside http_dir");

  WebSocket ws3(root_);
  EXPECT_EQ(ws3.feed("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     payload),
            WebSocket::Result::kOk);
  EXPECT_TRUE(ws3.is_open());

  // An upgrade that goes wrong is a 400, not a file.
  WebSocket ws4(root_);
  EXPECT_EQ(ws4.feed("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", payload), WebSocket::Result::kError);
  EXPECT_TRUE(ws4.wire().bytes().starts_with("HTTP/1.1 400 Bad Request\r\n"));
}

}  // namespace
}  // namespace midge::net
