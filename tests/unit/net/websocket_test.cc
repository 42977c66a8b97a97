#include "net/websocket.h"

#include <gtest/gtest.h>

#include <string>

namespace midge::net {
namespace {

const std::string kRequest =
    "GET /mqtt HTTP/1.1\r\n"
    "Host: 127.0.0.1:9001\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

// A masked client frame.
std::string client_frame(uint8_t opcode, const std::string& payload, bool fin = true,
                         const unsigned char mask[4] = nullptr) {
  static const unsigned char kMask[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (!mask) mask = kMask;
  std::string out;
  out += static_cast<char>((fin ? 0x80 : 0) | opcode);
  const uint64_t len = payload.size();
  if (len < 126) {
    out += static_cast<char>(0x80 | len);
  } else if (len <= 0xFFFF) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(len >> 8);
    out += static_cast<char>(len & 0xFF);
  } else {
    out += static_cast<char>(0x80 | 127);
    for (int s = 56; s >= 0; s -= 8) out += static_cast<char>((len >> s) & 0xFF);
  }
  out.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i) out += static_cast<char>(payload[i] ^ mask[i & 3]);
  return out;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 7 + 3);
  return s;
}

WebSocket open_socket() {
  WebSocket ws;
  std::string payload;
  EXPECT_EQ(ws.feed(kRequest, payload), WebSocket::Result::kOk);
  EXPECT_TRUE(ws.is_open());
  ws.wire().release();
  return ws;
}

TEST(WebSocket, AcceptKeyRfcExample) {
  EXPECT_EQ(websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocket, HandshakeAnswers101WithProtocol) {
  const WsHandshake h = websocket_handshake(kRequest);
  ASSERT_TRUE(h.ok);
  EXPECT_EQ(h.protocol, "mqtt");
  EXPECT_EQ(h.response.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u);
  EXPECT_NE(h.response.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  EXPECT_NE(h.response.find("Sec-WebSocket-Protocol: mqtt\r\n"), std::string::npos);
  EXPECT_EQ(h.response.substr(h.response.size() - 4), "\r\n\r\n");
}

TEST(WebSocket, HandshakeHeadersCaseInsensitiveAnyPath) {
  std::string r =
      "GET / HTTP/1.1\r\nupgrade: WebSocket\r\nCONNECTION: upgrade\r\nsec-websocket-key: abc\r\n"
      "sec-websocket-version: 13\r\nSec-WebSocket-Protocol: foo, mqttv3.1\r\n\r\n";
  const WsHandshake h = websocket_handshake(r);
  ASSERT_TRUE(h.ok);
  EXPECT_EQ(h.protocol, "mqttv3.1");
  // No protocol offered: none echoed.
  r = "GET /x/y HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  const WsHandshake h2 = websocket_handshake(r);
  ASSERT_TRUE(h2.ok);
  EXPECT_EQ(h2.response.find("Sec-WebSocket-Protocol"), std::string::npos);
}

TEST(WebSocket, HandshakeRefusesBadRequests) {
  auto without = [](const std::string& line) {
    std::string r = kRequest;
    r.erase(r.find(line), line.size());
    return r;
  };
  for (const std::string& bad : {
           std::string("POST /mqtt HTTP/1.1\r\n") + kRequest.substr(kRequest.find("\r\n") + 2),
           without("Upgrade: websocket\r\n"),
           without("Connection: keep-alive, Upgrade\r\n"),
           without("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
           without("Sec-WebSocket-Version: 13\r\n"),
           std::string("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 8\r\n\r\n"),
           std::string("garbage\r\n\r\n"),
       }) {
    const WsHandshake h = websocket_handshake(bad);
    EXPECT_FALSE(h.ok) << bad;
    EXPECT_EQ(h.response.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << bad;
  }
}

TEST(WebSocket, FeedHandshakeByteByByteThenFrameInSameRead) {
  WebSocket ws;
  std::string payload;
  const std::string all = kRequest + client_frame(kWsBinary, "hello");
  for (size_t i = 0; i < kRequest.size(); ++i) {
    ASSERT_EQ(ws.feed(all.substr(i, 1), payload), WebSocket::Result::kOk);
  }
  EXPECT_TRUE(ws.is_open());
  EXPECT_EQ(ws.wire().bytes().rfind("HTTP/1.1 101", 0), 0u);
  ws.wire().release();
  ASSERT_EQ(ws.feed(all.substr(kRequest.size()), payload), WebSocket::Result::kOk);
  EXPECT_EQ(payload, "hello");

  // The request and a frame in one read.
  WebSocket ws2;
  std::string p2;
  ASSERT_EQ(ws2.feed(all, p2), WebSocket::Result::kOk);
  EXPECT_EQ(p2, "hello");
}

TEST(WebSocket, OversizedOrBadRequestGets400) {
  WebSocket ws;
  std::string payload;
  std::string big = "GET / HTTP/1.1\r\nX: " + std::string(WebSocket::kMaxRequest, 'a');
  EXPECT_EQ(ws.feed(big, payload), WebSocket::Result::kError);
  EXPECT_EQ(ws.wire().bytes().rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u);
  EXPECT_TRUE(ws.close_sent());

  WebSocket ws2;
  EXPECT_EQ(ws2.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n", payload), WebSocket::Result::kError);
  EXPECT_EQ(ws2.wire().bytes().rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u);
  ws2.send_close(1000);  // nothing framed after a 400
  EXPECT_EQ(ws2.wire().bytes().find("\x88"), std::string::npos);
}

TEST(WebSocket, SplitAndMergedFrames) {
  WebSocket ws = open_socket();
  const std::string a = pattern(300), b = pattern(70000), c = "x";
  const std::string stream = client_frame(kWsBinary, a) + client_frame(kWsBinary, b) + client_frame(kWsBinary, c);
  // Every split size, including 1-byte reads that cut headers and masks.
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{7}, size_t{1000}, stream.size()}) {
    WebSocket w = open_socket();
    std::string payload;
    for (size_t i = 0; i < stream.size(); i += chunk) {
      ASSERT_EQ(w.feed(std::string_view(stream).substr(i, chunk), payload), WebSocket::Result::kOk);
    }
    EXPECT_EQ(payload, a + b + c) << "chunk " << chunk;
    EXPECT_TRUE(w.wire().empty());
  }
}

TEST(WebSocket, SixtyFourBitLengthAndFragments) {
  WebSocket ws = open_socket();
  std::string payload;
  const std::string big = pattern(70000);
  // 70000 > 0xFFFF: 64-bit length.
  const std::string f = client_frame(kWsBinary, big);
  ASSERT_EQ(static_cast<uint8_t>(f[1]), 0x80 | 127);
  ASSERT_EQ(ws.feed(f, payload), WebSocket::Result::kOk);
  EXPECT_EQ(payload, big);
  payload.clear();
  // Binary + continuation frames, with a ping in between.
  const std::string msg = client_frame(kWsBinary, "ab", false) + client_frame(kWsPing, "p") +
                          client_frame(kWsContinuation, "cd", false) + client_frame(kWsContinuation, "e", true);
  ASSERT_EQ(ws.feed(msg, payload), WebSocket::Result::kOk);
  EXPECT_EQ(payload, "abcde");
  EXPECT_EQ(ws.wire().bytes(), std::string("\x8a\x01p", 3));
}

TEST(WebSocket, PingGetsPongWithSamePayload) {
  WebSocket ws = open_socket();
  std::string payload;
  ASSERT_EQ(ws.feed(client_frame(kWsPing, "hi there"), payload), WebSocket::Result::kOk);
  EXPECT_TRUE(payload.empty());
  EXPECT_EQ(ws.wire().bytes(), std::string("\x8a\x08hi there", 10));
  ws.wire().release();
  ASSERT_EQ(ws.feed(client_frame(kWsPong, ""), payload), WebSocket::Result::kOk);
  EXPECT_TRUE(ws.wire().empty());
}

TEST(WebSocket, CloseIsAnsweredAndEndsInput) {
  WebSocket ws = open_socket();
  std::string payload;
  const std::string in = client_frame(kWsBinary, "mq") + client_frame(kWsClose, std::string("\x03\xe8", 2) + "bye") +
                         client_frame(kWsBinary, "after");
  EXPECT_EQ(ws.feed(in, payload), WebSocket::Result::kClose);
  EXPECT_EQ(payload, "mq");
  EXPECT_EQ(ws.wire().bytes(), std::string("\x88\x02\x03\xe8", 4));
  EXPECT_TRUE(ws.close_sent());
  EXPECT_FALSE(ws.is_open());
}

TEST(WebSocket, ProtocolErrorsClose) {
  const std::string unmasked = std::string("\x82\x02", 2) + "ab";
  const std::string rsv = client_frame(kWsBinary, "ab");
  std::string rsv_bad = rsv;
  rsv_bad[0] = static_cast<char>(rsv_bad[0] | 0x40);
  std::string long_ping = client_frame(kWsPing, std::string(126, 'p'));
  for (const std::string& bad : {unmasked, client_frame(kWsText, "ab"), rsv_bad, long_ping,
                                 client_frame(kWsPing, "x", false), client_frame(kWsContinuation, "ab"),
                                 client_frame(kWsBinary, "a", false) + client_frame(kWsBinary, "b"),
                                 client_frame(3, "ab")}) {
    WebSocket ws = open_socket();
    std::string payload;
    EXPECT_EQ(ws.feed(bad, payload), WebSocket::Result::kError);
    ASSERT_GE(ws.wire().size(), 4u);
    EXPECT_EQ(static_cast<uint8_t>(ws.wire().bytes()[0]), 0x88);  // a close frame
    EXPECT_FALSE(ws.error().empty());
  }
}

TEST(WebSocket, ServerFramesAreUnmaskedBinary) {
  std::string out;
  append_ws_frame(out, kWsBinary, "abc");
  EXPECT_EQ(out, std::string("\x82\x03" "abc", 5));
  out.clear();
  append_ws_frame(out, kWsBinary, std::string(200, 'z'));
  EXPECT_EQ(out.substr(0, 4), std::string("\x82\x7e\x00\xc8", 4));
  EXPECT_EQ(out.size(), 204u);
  out.clear();
  append_ws_frame(out, kWsBinary, std::string(70000, 'z'));
  EXPECT_EQ(out.substr(0, 10), std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10));
  EXPECT_EQ(out.size(), 70010u);
}

}  // namespace
}  // namespace midge::net
