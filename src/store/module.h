// The store as a module the broker loads only with `persistence true`
// (midge_store.so, beside the executable in the build tree, in
// LIBDIR/midge once installed): a broker without persistence never maps
// librocksdb.so and the libraries it needs (issue 14, cause T: Mosquitto's
// tests bound the virtual size at 25 MB).
//
// The module holds this folder's code and links librocksdb; the code of
// broker/, protocol/ and util/ it uses is the executable's own (exported
// to it), never a second copy. Built from the same tree as the executable:
// the types below cross without an ABI of their own.
#pragma once

#include <string>

#include "broker/store.h"
#include "store/rocks_store.h"

namespace midge::store {

inline constexpr const char* kModuleFile = "midge_store.so";
inline constexpr const char* kOpenSymbol = "midge_store_open";

// RocksStore::open behind a C name, for dlsym: null with `error` set when
// the store cannot be opened. The caller owns the store (deleting it runs
// the module's destructor).
using OpenFunction = broker::Store* (*)(const char* dir, const RocksStore::Options* options, std::string* error);

}  // namespace midge::store

extern "C" midge::broker::Store* midge_store_open(const char* dir, const midge::store::RocksStore::Options* options,
                                                  std::string* error);
