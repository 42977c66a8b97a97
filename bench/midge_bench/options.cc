#include "midge_bench/options.h"

#include <getopt.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace midge::bench {

namespace {

constexpr const char* kUsage = R"(usage: midge_bench [options]
  --host H              broker address (127.0.0.1)
  --port P              broker port (1883)
  --scenario S          fan-in | fan-out | pairs | shared | latency | connections |
                        handshakes | retained | load-retained | load-sessions |
                        probe-retained | probe-session (bench/recovery.sh)
  --publishers N        publishers (fan-in 8, fan-out 1, pairs 100, shared 8, latency 1)
  --subscribers N       subscribers (fan-in 1, fan-out 100, pairs = publishers, shared 4)
  --qos Q               0, 1 or 2 (0)
  --payload BYTES       payload size, at least 16 (64)
  --window N            outstanding messages per publisher, 0 = open loop flood (100);
                        QoS 0: counted end to end (sent - received by the slowest
                        subscriber); QoS 1/2: also bounded by unacknowledged messages
  --duration S          seconds of sending (5); probe-*: give up after S seconds
  --messages N          total messages to send instead of a duration
  --rate R              total messages/s over all publishers (latency: 10000)
  --drain-timeout S     seconds to wait for the last deliveries (10)
  --mqtt-version V      4 (3.1.1) or 5 (4)
  --broker-pid PID      read the broker's memory from /proc/PID/status
  --connections N       connections scenario: idle connections (10000)
  --sources K           connections scenario: 127.0.0.x source addresses (N/10000 + 1)
  --hold S              connections scenario: idle seconds before measuring (1)
  --retained N          retained, load-retained, probe-retained: retained topics (100000)
  --handshakes N        handshakes scenario: connections opened (CONNECT, CONNACK,
                        DISCONNECT, close) with at most --concurrency in flight (10000)
  --persistent          fan-in, fan-out, pairs, shared: subscribers hold persistent
                        sessions (3.1.1 clean session false; 5.0 session expiry)
  --sessions N          load-sessions, probe-session: persistent sessions (100000)
  --queued K            load-sessions: QoS 1 messages queued per session (10)
  --concurrency N       connections and handshakes scenarios: connects in flight (256)
  --tls                 MQTT over TLS (full handshakes, no session resumption)
  --cafile F            CA certificates to check the broker's certificate with
                        (default: the system's)
  --cert F --key F      client certificate and key
  --insecure            do not check the broker's certificate
  --ws                  MQTT over WebSocket (subprotocol mqtt); with --tls: wss
  --ws-path P           the upgrade request's path (/mqtt)
  --label TEXT          copied into the report (e.g. the broker's name)
  --json                also print one JSON line per scenario
  --check               exit 1 when a count check fails (QoS 0 with a window:
                        none lost; QoS 1: none lost; QoS 2: none lost or duplicated)
  --quiet               no table
)";

enum Opt : int {
  kHost = 1000, kPort, kScenario, kPublishers, kSubscribers, kQos, kPayload, kWindow,
  kDuration, kMessages, kRate, kDrain, kVersion, kBrokerPid, kConnections, kSources, kHold,
  kRetained, kLabel, kJson, kCheck, kQuiet, kHelp, kHandshakes, kConcurrency, kTls, kCafile,
  kCert, kKey, kInsecure, kWs, kWsPath, kPersistent, kSessions, kQueued,
};

bool number(const char* text, double& out) {
  char* end = nullptr;
  out = std::strtod(text, &end);
  return end != text && *end == '\0' && out >= 0;
}

}  // namespace

bool parse_options(int argc, char** argv, Options& o, int& exit_code) {
  static const option kLong[] = {
      {"host", required_argument, nullptr, kHost},
      {"port", required_argument, nullptr, kPort},
      {"scenario", required_argument, nullptr, kScenario},
      {"publishers", required_argument, nullptr, kPublishers},
      {"subscribers", required_argument, nullptr, kSubscribers},
      {"qos", required_argument, nullptr, kQos},
      {"payload", required_argument, nullptr, kPayload},
      {"window", required_argument, nullptr, kWindow},
      {"duration", required_argument, nullptr, kDuration},
      {"messages", required_argument, nullptr, kMessages},
      {"rate", required_argument, nullptr, kRate},
      {"drain-timeout", required_argument, nullptr, kDrain},
      {"mqtt-version", required_argument, nullptr, kVersion},
      {"broker-pid", required_argument, nullptr, kBrokerPid},
      {"connections", required_argument, nullptr, kConnections},
      {"sources", required_argument, nullptr, kSources},
      {"hold", required_argument, nullptr, kHold},
      {"retained", required_argument, nullptr, kRetained},
      {"label", required_argument, nullptr, kLabel},
      {"json", no_argument, nullptr, kJson},
      {"check", no_argument, nullptr, kCheck},
      {"quiet", no_argument, nullptr, kQuiet},
      {"help", no_argument, nullptr, kHelp},
      {"handshakes", required_argument, nullptr, kHandshakes},
      {"concurrency", required_argument, nullptr, kConcurrency},
      {"tls", no_argument, nullptr, kTls},
      {"cafile", required_argument, nullptr, kCafile},
      {"cert", required_argument, nullptr, kCert},
      {"key", required_argument, nullptr, kKey},
      {"insecure", no_argument, nullptr, kInsecure},
      {"ws", no_argument, nullptr, kWs},
      {"ws-path", required_argument, nullptr, kWsPath},
      {"persistent", no_argument, nullptr, kPersistent},
      {"sessions", required_argument, nullptr, kSessions},
      {"queued", required_argument, nullptr, kQueued},
      {nullptr, 0, nullptr, 0},
  };
  exit_code = 2;
  int c = 0;
  while ((c = getopt_long(argc, argv, "", kLong, nullptr)) != -1) {
    double v = 0;
    const bool numeric = optarg != nullptr && number(optarg, v);
    auto need_number = [&](const char* name) {
      if (!numeric) std::fprintf(stderr, "midge_bench: --%s needs a number\n", name);
      return numeric;
    };
    switch (c) {
      case kHost: o.host = optarg; break;
      case kScenario: o.scenario = optarg; break;
      case kLabel: o.label = optarg; break;
      case kJson: o.json = true; break;
      case kCheck: o.check = true; break;
      case kQuiet: o.quiet = true; break;
      case kTls: o.tls = true; break;
      case kCafile: o.cafile = optarg; break;
      case kCert: o.cert = optarg; break;
      case kKey: o.key = optarg; break;
      case kInsecure: o.insecure = true; break;
      case kWs: o.ws = true; break;
      case kWsPath: o.ws_path = optarg; break;
      case kPersistent: o.persistent = true; break;
      case kSessions: if (!need_number("sessions") || v < 1) return false; o.sessions = static_cast<int>(v); break;
      case kQueued: if (!need_number("queued")) return false; o.queued = static_cast<int>(v); break;
      case kHandshakes: if (!need_number("handshakes")) return false; o.handshakes = static_cast<int>(v); break;
      case kConcurrency: if (!need_number("concurrency") || v < 1) return false; o.connect_concurrency = static_cast<int>(v); break;
      case kHelp: std::fputs(kUsage, stdout); exit_code = 0; return false;
      case kPort: if (!need_number("port")) return false; o.port = static_cast<int>(v); break;
      case kPublishers: if (!need_number("publishers")) return false; o.publishers = static_cast<int>(v); break;
      case kSubscribers: if (!need_number("subscribers")) return false; o.subscribers = static_cast<int>(v); break;
      case kQos: if (!need_number("qos") || v > 2) return false; o.qos = static_cast<int>(v); break;
      case kPayload: if (!need_number("payload")) return false; o.payload = static_cast<size_t>(v); break;
      case kWindow: if (!need_number("window")) return false; o.window = static_cast<int>(v); break;
      case kDuration: if (!need_number("duration")) return false; o.duration = v; break;
      case kMessages: if (!need_number("messages")) return false; o.messages = static_cast<uint64_t>(v); break;
      case kRate: if (!need_number("rate")) return false; o.rate = v; break;
      case kDrain: if (!need_number("drain-timeout")) return false; o.drain_timeout = v; break;
      case kBrokerPid: if (!need_number("broker-pid")) return false; o.broker_pid = static_cast<int>(v); break;
      case kConnections: if (!need_number("connections")) return false; o.connections = static_cast<int>(v); break;
      case kSources: if (!need_number("sources")) return false; o.sources = static_cast<int>(v); break;
      case kHold: if (!need_number("hold")) return false; o.hold = v; break;
      case kRetained: if (!need_number("retained")) return false; o.retained = static_cast<int>(v); break;
      case kVersion:
        if (!need_number("mqtt-version") || (v != 4 && v != 5)) return false;
        o.version = v == 5 ? protocol::Version::kV5 : protocol::Version::kV311;
        break;
      default: std::fputs(kUsage, stderr); return false;
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "midge_bench: unexpected argument %s\n", argv[optind]);
    return false;
  }
  static constexpr std::string_view kScenarios[] = {"fan-in", "fan-out", "pairs", "shared",
                                                    "latency", "connections", "handshakes",
                                                    "retained", "load-retained", "load-sessions",
                                                    "probe-retained", "probe-session"};
  bool known = false;
  for (std::string_view s : kScenarios) known = known || s == o.scenario;
  if (!known) {
    std::fprintf(stderr, "midge_bench: unknown scenario %s\n", o.scenario.c_str());
    return false;
  }
  if ((!o.cafile.empty() || !o.cert.empty() || !o.key.empty() || o.insecure) && !o.tls) {
    std::fprintf(stderr, "midge_bench: --cafile, --cert, --key and --insecure need --tls\n");
    return false;
  }
  return true;
}

}  // namespace midge::bench
