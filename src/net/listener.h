// A configured listener: its listening sockets (one per address it binds),
// served by worker 0's loop, which hand accepted sockets to the workers in
// turn; its connection count (max_connections); and what its connections
// speak over TCP, as a Transport made per connection (none for plain MQTT,
// WebSocket, TLS, or WebSocket inside TLS; the metrics endpoint for
// `protocol http`).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/authenticator.h"
#include "net/transport.h"

namespace midge::net {

class Worker;
class TlsContext;
class Acceptor;

struct ListenerOptions {
  uint16_t port = 1883;
  std::string address;        // empty: every interface, IPv4 and IPv6
  std::string socket_domain;  // "", "ipv4", "ipv6"
  bool websocket = false;
  bool http = false;          // `protocol http`: the metrics endpoint, no MQTT
  std::string http_dir;       // websocket listeners: files served to plain HTTP GETs
  std::shared_ptr<TlsContext> tls;  // null: no TLS
  int max_connections = -1;   // -1: no limit
  // use_identity_as_username / use_subject_as_username: the client's
  // certificate (or PSK identity) names the user, instead of a password.
  std::optional<PeerIdentity> identity_as_username;
  // use_username_as_clientid: the user name replaces the client id.
  bool username_as_client_id = false;
  uint8_t max_qos = 2;  // highest QoS of this listener's clients
  // per_listener_settings: this listener's password file and
  // allow_anonymous; null: the broker's.
  std::shared_ptr<const broker::AccessPolicy> access;
  std::string mount_point;    // prefix of this listener's clients' topics ("" = none)
  std::string where;          // "file:line" of its declaration, for messages
};

class Listener {
 public:
  using Say = std::function<void(const std::string&)>;
  Listener(ListenerOptions options, std::vector<std::unique_ptr<Worker>>& workers);
  ~Listener();

  // Binds and listens on every address, logging each as Mosquitto does.
  // `ipv6_optional`: an address family the machine lacks is only a warning.
  // Returns the error that stops the start-up, or "" (see listening()).
  std::string open(bool ipv6_optional, const Say& say);
  // Stops accepting (on worker 0's thread).
  void close();
  const ListenerOptions& options() const { return options_; }
  // The transport of a new connection; null for plain TCP, and when a TLS
  // session cannot be created (the connection is then dropped).
  std::unique_ptr<Transport> make_transport() const;
  bool tls() const { return options_.tls != nullptr; }
  bool listening() const { return !acceptors_.empty(); }
  // Its counters in each worker's broker::Stats (Stats::of).
  uint16_t traffic_slot() const { return traffic_slot_; }
  // How metrics name it: the port, or the unix socket's path.
  std::string label() const;

  // Connections open on this listener (max_connections); see ListenerSlot.
  std::atomic<int> open_connections{0};

 private:
  ListenerOptions options_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  size_t next_worker_ = 0;  // shared by its acceptors: round robin
  uint16_t traffic_slot_ = 0;
  friend class Acceptor;
};

}  // namespace midge::net
