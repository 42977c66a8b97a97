#include "server/systemd.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <string>

namespace midge::server::systemd {

void ready() { sd_notify(0, "READY=1\nSTATUS=Accepting connections"); }

// MONOTONIC_USEC lets systemd 253+ (Type=notify-reload) match the reload to this message.
void reloading() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const long long usec = static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1000;
  const std::string message = "RELOADING=1\nSTATUS=Reloading the configuration\nMONOTONIC_USEC=" + std::to_string(usec);
  sd_notify(0, message.c_str());
}

void stopping() { sd_notify(0, "STOPPING=1\nSTATUS=Stopping"); }

}  // namespace midge::server::systemd
