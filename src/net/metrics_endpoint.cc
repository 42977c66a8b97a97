#include "net/metrics_endpoint.h"

#include <algorithm>

#include "net/websocket.h"

namespace midge::net {
namespace {

// The same bound as a WebSocket upgrade request (and http_dir requests).
constexpr size_t kMaxHead = WebSocket::kMaxRequest + 4;

HttpAnswer refusal(int status, std::string why, std::string_view extra = {}) {
  return {status, http_response_head(status, 0, extra), std::move(why)};
}

}  // namespace

HttpAnswer answer_metrics_request(const HttpRequest& request, const MetricsRender& render) {
  const bool head = request.method == "HEAD";
  if (request.method != "GET" && !head) return refusal(405, "method not allowed", "Allow: GET, HEAD\r\n");
  if (request.has_body) return refusal(400, "request with a body");
  const std::string_view path = std::string_view(request.target).substr(0, request.target.find_first_of("?#"));
  if (path != "/metrics") return refusal(404, "not found (the metrics are at /metrics)");
  std::string body = render();
  const std::string type = "Content-Type: " + std::string(kMetricsContentType) + "\r\n";
  HttpAnswer a{200, http_response_head(200, body.size(), type), {}};
  if (!head) a.response += body;
  return a;
}

MetricsEndpoint::Result MetricsEndpoint::feed(std::string_view data, std::string& /*payload*/) {
  if (answered_) return Result::kClose;  // what follows the request is ignored
  const size_t had = request_.size();
  const size_t from = had >= 3 ? had - 3 : 0;
  request_.append(data.substr(0, kMaxHead - std::min(had, kMaxHead)));
  const size_t end = request_.find("\r\n\r\n", from);
  if (end == std::string::npos) {
    if (request_.size() < kMaxHead) return Result::kOk;
    return answer(refusal(400, "request head too large"), "request");
  }
  const HttpParse p = parse_http_request(std::string_view(request_).substr(0, end + 4), kMaxHead);
  if (p.status != HttpParse::kDone) return answer(refusal(400, "bad HTTP request (" + p.error + ")"), "request");
  return answer(answer_metrics_request(p.request, render_),
                p.request.method.substr(0, 16) + " " + p.request.target.substr(0, 200));
}

MetricsEndpoint::Result MetricsEndpoint::answer(HttpAnswer a, const std::string& what) {
  answered_ = true;
  std::string().swap(request_);
  wire_.bytes().append(a.response);
  if (a.status < 400) return Result::kClose;
  // Logged by the Connection with the client's address; Beast checked that
  // method and target are printable.
  error_ = "HTTP " + std::to_string(a.status) + " for " + what + ": " + a.why;
  return Result::kError;
}

void MetricsEndpoint::push(OutQueue& out, bool /*closing*/) {
  out.release();  // the broker never writes to these connections
}

}  // namespace midge::net
