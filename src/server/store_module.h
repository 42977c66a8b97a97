// Loads the store module (store/module.h) with `persistence true`, so that
// a broker without persistence never maps librocksdb.so.
#pragma once

#include <string>

#include "store/module.h"

namespace midge::server {

// Where the module is looked for, first found wins: $MIDGE_STORE_MODULE if
// set (tests), else beside the executable (the build tree), else
// MIDGE_STORE_MODULE_DIR relative to it (LIBDIR/midge once installed).
// Paths relative to the executable are resolved from /proc/self/exe.
std::string store_module_path();

// Loads the module and returns its factory; null with `error` naming the
// path tried and dlerror(). Never unloaded: the store's code must outlive
// the store and RocksDB's threads, which end at exit.
store::OpenFunction load_store_module(std::string& error);

}  // namespace midge::server
