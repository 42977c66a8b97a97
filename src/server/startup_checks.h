// What start-up reads from disk before it opens a socket, and `midge
// --test-config`, which reads all of it and opens no socket.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "net/tls.h"

namespace midge::server {

// A listener's TLS context, or null without TLS (certfile and keyfile, or
// psk_hint; config/parser.cc refuses any other TLS option alone). Null with
// `error` when a file cannot be used.
std::shared_ptr<net::TlsContext> listener_tls(const config::Config& cfg, const config::Listener& l,
                                              std::string& error);

// --test-config: loads `config_file` and every file start-up would read
// (password files, ACL files, TLS certificates, keys and PSK files,
// http_dir). Prints each problem as "FILE:LINE: ..." on stderr and returns
// 1, or prints that the configuration is OK and returns 0.
int test_config(const std::string& config_file);

}  // namespace midge::server
