// midge_bench: an MQTT load generator built on the project's own codec.
// One process, one epoll loop; see bench/README.md.
#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <string>

#include "midge_bench/options.h"
#include "midge_bench/scenarios.h"

namespace midge::bench {

bool resolve(const Options& options, sockaddr_in& out) {
  out = {};
  out.sin_family = AF_INET;
  out.sin_port = htons(static_cast<uint16_t>(options.port));
  if (inet_pton(AF_INET, options.host.c_str(), &out.sin_addr) == 1) return true;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(options.host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return false;
  out.sin_addr = reinterpret_cast<const sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return true;
}

std::string run_tag() {
  static const std::string tag = [] {
    std::random_device rd;
    return "mb" + std::to_string(getpid()) + "x" + std::to_string(rd() % 100000);
  }();
  return tag;
}

protocol::Packet connect_packet(const Options& options, const std::string& client_id,
                                bool persistent) {
  protocol::ConnectPacket c;
  c.version = options.version;
  c.clean_start = !persistent;
  if (persistent && options.version == protocol::Version::kV5) {
    c.properties.session_expiry_interval = 0xFFFFFFFF;
  }
  c.keep_alive = 0;  // idle connections must stay; runs are short
  c.client_id = client_id;
  return c;
}

double seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

}  // namespace midge::bench

int main(int argc, char** argv) {
  using namespace midge::bench;
  Options options;
  int code = 0;
  if (!parse_options(argc, argv, options, code)) return code;
  Link link;
  std::string error;
  if (!link.init(options, error)) {
    std::fprintf(stderr, "midge_bench: %s\n", error.c_str());
    return 2;
  }
  Report report;
  bool ok = false;
  if (options.scenario == "connections") {
    ok = run_connections(options, link, report);
  } else if (options.scenario == "handshakes") {
    ok = run_handshakes(options, link, report);
  } else if (options.scenario == "retained") {
    ok = run_retained(options, link, report);
  } else if (options.scenario.starts_with("load-") || options.scenario.starts_with("probe-")) {
    ok = run_populate(options, link, report);
  } else {
    ok = run_flow(options, link, report);
  }
  if (!options.quiet) std::fputs(report.table().c_str(), stdout);
  if (options.json) std::printf("%s\n", report.json().c_str());
  std::fflush(stdout);
  return options.check && !ok ? 1 : 0;
}
