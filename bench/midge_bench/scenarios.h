// The scenarios of midge_bench. Each runs to completion on the calling
// thread, fills `report` and returns false when a --check count check (or
// the run itself) failed.
#pragma once

#include <netinet/in.h>

#include <string>

#include "midge_bench/link.h"
#include "midge_bench/options.h"
#include "midge_bench/stats.h"

namespace midge::bench {

// fan-in, fan-out, pairs, shared, latency.
bool run_flow(const Options& options, const Link& link, Report& report);
bool run_connections(const Options& options, const Link& link, Report& report);
bool run_handshakes(const Options& options, const Link& link, Report& report);
bool run_retained(const Options& options, const Link& link, Report& report);
// load-retained, load-sessions, probe-retained, probe-session.
bool run_populate(const Options& options, const Link& link, Report& report);

// Helpers shared by the scenarios.
bool resolve(const Options& options, sockaddr_in& out);
// A name unique to this run, used in client ids and topics.
std::string run_tag();
// `persistent`: a session that outlives the connection (3.1.1 clean session
// false; 5.0 the same with the longest session expiry).
protocol::Packet connect_packet(const Options& options, const std::string& client_id,
                                bool persistent = false);
double seconds(int64_t ns);

}  // namespace midge::bench
