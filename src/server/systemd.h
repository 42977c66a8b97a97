// Tells systemd where the broker is in its life, for units of Type=notify
// (sd_notify(3) through libsystemd). Without $NOTIFY_SOCKET (not started by
// systemd) each call does nothing.
#pragma once

namespace midge::server::systemd {

// Listeners open, workers running: `systemctl start` returns.
void ready();
// SIGHUP: a reload begins; ready() again when it is done.
void reloading();
// SIGTERM/SIGINT: the stop begins.
void stopping();

}  // namespace midge::server::systemd
