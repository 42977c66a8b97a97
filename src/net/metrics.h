// The broker's metrics in the Prometheus text format (served by `protocol
// http` listeners, metrics_endpoint.h): the $SYS counters, per listener,
// per worker, and the store's commit times.
//
// Thread use: a scrape runs on the worker that accepted it and reads every
// worker's counters directly. They are relaxed atomics written by their
// owner with a plain load and store (broker::Stats::add), which on x86 and
// ARM compiles to the same instructions as a plain field: the hot path pays
// nothing for being readable, and a scrape needs no message to the other
// workers nor waits for their loops (a busy or stalled worker is still
// measured). A scrape sees each counter at most a moment old, and sums taken
// from several counters may be a few events apart.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace midge::net {

class Worker;

std::string metrics_text(const std::vector<std::unique_ptr<Worker>>& workers);

}  // namespace midge::net
