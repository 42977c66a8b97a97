// persistence true: opens the store the configuration names and reads it
// back into the workers before any listener opens (issue 12).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/shared_state.h"
#include "broker/store.h"
#include "config/config.h"
#include "net/worker.h"

namespace midge::server {

using Say = std::function<void(const std::string&)>;

// The store's directory: persistence_location/persistence_file + ".midge"
// (mosquitto.db.midge by default), beside Mosquitto's file, never it: a
// script that copies mosquitto.db meets no directory.
std::string store_path(const config::Config& cfg);

// Opens the store; null after logging one line when it cannot be (a
// missing persistence_location, a file where the store's directory should
// be, a store RocksDB cannot open): the broker then refuses to start.
// Mosquitto's file (persistence_file) is the store's key: where it was
// removed since the last run, the store is reset (moved aside to
// DIR.discarded) as removing it resets Mosquitto's; where there is none, an
// empty database in Mosquitto's format is written; an existing one is
// never read or changed.
std::unique_ptr<broker::Store> open_store(const config::Config& cfg, const Say& say);

// Reads everything back: retained messages into `shared`, each session to
// the worker that owns its client id, and routes again the messages that
// were handed between workers but whose receiver had not written what it
// did with them. Then gives every worker its journal. False (logged) when
// the store cannot be read at all. `listener_rules`: with
// per_listener_settings, the ACL of the listener on a port (null: none, or
// no such listener), for retained messages checked against their source.
using ListenerRules = std::function<std::shared_ptr<broker::Authorizer>(uint16_t port)>;
bool recover(broker::Store& store, broker::SharedState& shared, std::vector<std::unique_ptr<net::Worker>>& workers,
             const Say& say, const ListenerRules& listener_rules = nullptr);

// Started as root and about to switch user: the store's directory and the files in it become
// `uid`'s, so that the store can go on writing (new files) and be opened by the next start.
// Symbolic links are not followed. False with errno set on failure.
bool hand_over_store(const std::string& dir, uid_t uid, gid_t gid);

}  // namespace midge::server
