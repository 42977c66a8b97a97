// The Prometheus text writer, the histogram, and the /metrics endpoint
// transport (fed requests whole and one byte at a time).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "net/metrics_endpoint.h"
#include "net/prometheus.h"
#include "util/histogram.h"

namespace midge::net {
namespace {

using Type = PrometheusText::Type;

TEST(PrometheusText, FamiliesSamplesAndLabels) {
  PrometheusText t;
  t.family("midge_x_total", Type::kCounter, "Things \\ counted\nhere.");
  t.sample("midge_x_total", {}, uint64_t{42});
  t.sample("midge_x_total", {{"listener", "1883"}, {"qos", "1"}}, uint64_t{7});
  t.family("midge_g", Type::kGauge, "A gauge.");
  t.sample("midge_g", {{"path", "a\"b\\c\nd"}}, int64_t{-3});
  t.sample("midge_g", {}, 0.25);
  EXPECT_EQ(t.text(),
            "# HELP midge_x_total Things \\\\ counted\\nhere.\n"
            "# TYPE midge_x_total counter\n"
            "midge_x_total 42\n"
            "midge_x_total{listener=\"1883\",qos=\"1\"} 7\n"
            "# HELP midge_g A gauge.\n"
            "# TYPE midge_g gauge\n"
            "midge_g{path=\"a\\\"b\\\\c\\nd\"} -3\n"
            "midge_g 0.25\n");
}

TEST(PrometheusText, HistogramBucketsAreCumulativeAndEndWithInf) {
  PrometheusText t;
  t.family("h_seconds", Type::kHistogram, "H.");
  const std::vector<double> bounds = {0.001, 0.5};
  const std::vector<uint64_t> counts = {2, 0, 3};
  t.histogram("h_seconds", {{"worker", "0"}}, bounds, counts, 1.5);
  EXPECT_EQ(t.text(),
            "# HELP h_seconds H.\n"
            "# TYPE h_seconds histogram\n"
            "h_seconds_bucket{worker=\"0\",le=\"0.001\"} 2\n"
            "h_seconds_bucket{worker=\"0\",le=\"0.5\"} 2\n"
            "h_seconds_bucket{worker=\"0\",le=\"+Inf\"} 5\n"
            "h_seconds_sum{worker=\"0\"} 1.5\n"
            "h_seconds_count{worker=\"0\"} 5\n");
}

TEST(PrometheusText, SnakeCase) {
  EXPECT_EQ(PrometheusText::snake_case("Keep Alive timeout"), "keep_alive_timeout");
  EXPECT_EQ(PrometheusText::snake_case("Client identifier not valid"), "client_identifier_not_valid");
  EXPECT_EQ(PrometheusText::snake_case("  Odd--name!"), "odd_name");
}

TEST(Histogram, BoundsAreInclusiveAndTheLastBucketTakesTheRest) {
  util::Histogram h;
  h.record(0);
  h.record(5'000);  // le 5 us
  h.record(5'001);  // le 10 us
  h.record(5'000'000'000);  // +Inf
  const auto s = h.snapshot();
  EXPECT_EQ(s.counts[0], 2u);
  EXPECT_EQ(s.counts[1], 1u);
  EXPECT_EQ(s.counts[util::Histogram::kBuckets - 1], 1u);
  EXPECT_EQ(s.sum_ns, 5'000'010'001u);
}

struct Fed {
  Transport::Result result;
  std::string wire;
  std::string error;
  int renders;
};

// Feeds `request` in pieces of `step` bytes, as reads would.
Fed feed(const std::string& request, size_t step) {
  int renders = 0;
  MetricsEndpoint e([&renders] {
    ++renders;
    return std::string("m 1\n");
  });
  std::string payload;
  Transport::Result r = Transport::Result::kOk;
  for (size_t i = 0; i < request.size() && r == Transport::Result::kOk; i += step) {
    r = e.feed(std::string_view(request).substr(i, step), payload);
  }
  EXPECT_TRUE(payload.empty());  // no MQTT byte ever
  std::string wire = e.wire().bytes();
  return {r, wire, e.error(), renders};
}

TEST(MetricsEndpoint, AnswersGetMetricsWholeOrByteByByte) {
  const std::string get = "GET /metrics?x=1 HTTP/1.1\r\nHost: h\r\nAccept: text/plain\r\n\r\n";
  for (size_t step : {get.size(), size_t{1}}) {
    const Fed f = feed(get, step);
    EXPECT_EQ(f.result, Transport::Result::kClose);
    EXPECT_EQ(f.renders, 1);
    EXPECT_EQ(f.wire,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
              "Content-Length: 4\r\nConnection: close\r\n\r\nm 1\n");
  }
}

TEST(MetricsEndpoint, HeadHasNoBody) {
  const Fed f = feed("HEAD /metrics HTTP/1.1\r\n\r\n", 100);
  EXPECT_EQ(f.result, Transport::Result::kClose);
  EXPECT_NE(f.wire.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_TRUE(f.wire.ends_with("\r\n\r\n"));
}

TEST(MetricsEndpoint, RefusesOtherPathsMethodsBodiesAndBadRequests) {
  struct Case {
    std::string request;
    std::string status_line;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"},
      {"GET /metrics/x HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"},
      {"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n"},
      {"GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 400 Bad Request\r\n"},
      {"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
      {"GET /metrics HTTP/2.0\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
      {"GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
  };
  for (const Case& c : cases) {
    const Fed f = feed(c.request, 512);
    EXPECT_EQ(f.result, Transport::Result::kError) << c.request.substr(0, 40);
    EXPECT_TRUE(f.wire.starts_with(c.status_line)) << f.wire;
    EXPECT_EQ(f.renders, 0);
    EXPECT_TRUE(f.error.starts_with("HTTP ")) << f.error;
  }
  EXPECT_NE(feed("PUT /metrics HTTP/1.1\r\n\r\n", 64).wire.find("Allow: GET, HEAD\r\n"), std::string::npos);
}

TEST(MetricsEndpoint, OneRequestPerConnection) {
  int renders = 0;
  MetricsEndpoint e([&renders] {
    ++renders;
    return std::string("m 1\n");
  });
  std::string payload;
  const std::string get = "GET /metrics HTTP/1.1\r\n\r\n";
  EXPECT_EQ(e.feed(get + get, payload), Transport::Result::kClose);
  EXPECT_EQ(e.feed(get, payload), Transport::Result::kClose);
  EXPECT_EQ(renders, 1);
}

}  // namespace
}  // namespace midge::net
