// Compiled into midge_store.so only (module.h).
#include "store/module.h"

extern "C" midge::broker::Store* midge_store_open(const char* dir, const midge::store::RocksStore::Options* options,
                                                  std::string* error) {
  return midge::store::RocksStore::open(dir, *options, *error).release();
}
