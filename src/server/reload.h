// SIGHUP: what a re-read configuration changes. Settings the workers hold
// (broker::Settings), the global password_file/acl_file and the log
// destinations take effect at once; listeners, TLS file paths, users and
// threads need a restart, and say so.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace midge::server {

struct ConfigChanges {
  std::vector<std::string> applied;  // "max_queued_messages 1000 -> 500"
  std::vector<std::string> restart;  // "listener 1883: changed (needs a restart)"
};

ConfigChanges compare_configs(const config::Config& before, const config::Config& after);

}  // namespace midge::server
