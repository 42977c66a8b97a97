// `protocol http` listeners: the Prometheus endpoint. A Transport (see
// transport.h) that reads one HTTP request head (parsed by http_request.h,
// bounded like a WebSocket upgrade), answers GET or HEAD /metrics with the
// text `render` returns, anything else with 404, 405 or 400, and then the
// connection closes (one request per connection, Connection: close). No MQTT
// byte ever flows. Pure but for `render`.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "net/http_request.h"
#include "net/out_queue.h"
#include "net/transport.h"

namespace midge::net {

using MetricsRender = std::function<std::string()>;

// The Prometheus text format's media type.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// The answer to one parsed request (calls `render` for GET /metrics only).
HttpAnswer answer_metrics_request(const HttpRequest& request, const MetricsRender& render);

class MetricsEndpoint final : public Transport {
 public:
  explicit MetricsEndpoint(MetricsRender render) : render_(std::move(render)) {}

  // Collects the request head; once whole, queues the answer in wire():
  // kClose after a 200, kError (error() says what was refused) otherwise.
  Result feed(std::string_view data, std::string& payload) override;
  void push(OutQueue& out, bool closing) override;
  OutQueue& wire() override { return wire_; }
  const OutQueue& wire() const override { return wire_; }
  std::string error() const override { return error_; }
  bool established() const override { return false; }

 private:
  Result answer(HttpAnswer a, const std::string& what);
  MetricsRender render_;
  std::string request_;
  OutQueue wire_;
  bool answered_ = false;
  std::string error_;
};

}  // namespace midge::net
