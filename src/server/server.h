// Wiring: command line, configuration, workers, listeners, signals, pid
// file. `run` is the whole broker process; main.cc only calls it.
#pragma once

namespace midge::server {

int run(int argc, char** argv);

}  // namespace midge::server
