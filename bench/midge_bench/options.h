// Command-line options of midge_bench.
#pragma once

#include <cstdint>
#include <string>

#include "protocol/packets.h"

namespace midge::bench {

struct Options {
  std::string host = "127.0.0.1";
  int port = 1883;
  std::string scenario = "fan-in";  // fan-in fan-out pairs shared latency connections
                                    // handshakes retained load-retained load-sessions
                                    // probe-retained probe-session
  std::string label;                // free text copied into the report (e.g. broker name)
  int publishers = -1;              // -1: the scenario's default
  int subscribers = -1;
  int qos = 0;
  size_t payload = 64;
  int window = -1;          // outstanding messages per publisher; 0 = open loop (flood);
                            // -1: the scenario default (100; latency 0)
  double duration = 5;      // seconds of sending (when messages == 0)
  uint64_t messages = 0;    // total messages to send (all publishers), 0 = use duration
  double rate = 0;          // total messages/s over all publishers, 0 = as fast as possible
  double drain_timeout = 10;  // seconds to wait for the last deliveries
  double connect_timeout = 20;
  protocol::Version version = protocol::Version::kV311;
  bool json = false;
  bool check = false;
  bool quiet = false;
  int broker_pid = 0;
  int connections = 10000;  // connections scenario
  int sources = 0;          // 127.0.0.x source addresses; 0 = one per 10000 connections
  int connect_concurrency = 256;
  double hold = 1;          // seconds idle connections are held before measuring memory
  int retained = 100000;    // retained scenario
  int handshakes = 10000;   // handshakes scenario
  bool persistent = false;  // flow subscribers hold persistent sessions
  int sessions = 100000;    // load-sessions, probe-session
  int queued = 10;          // load-sessions: QoS 1 messages queued per session
  // Under MQTT: TLS and/or WebSocket (both: wss).
  bool tls = false;
  std::string cafile;
  std::string cert;
  std::string key;
  bool insecure = false;  // no certificate check
  bool ws = false;
  std::string ws_path = "/mqtt";
};

// Parses argv; on error or --help prints to stderr and returns false with
// `exit_code` set.
bool parse_options(int argc, char** argv, Options& options, int& exit_code);

}  // namespace midge::bench
