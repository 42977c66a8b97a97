// broker::Store on RocksDB: one database directory, one WriteBatch per
// journal, written atomically by Journal::commit. Records: records.h.
//
// Thread ownership: open(), load(), set_workers() and resume() on one
// thread (the server's); each journal on its worker's thread (RocksDB
// takes concurrent writes to one DB). The store outlives its journals.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "broker/store.h"

namespace rocksdb {
class DB;
struct Options;
}  // namespace rocksdb

namespace midge::store {

class Loader;
class RocksWarnings;

class RocksStore : public broker::Store {
 public:
  struct Options {
    // fsync each batch (persistence_sync true): acknowledged messages survive
    // a power cut. Without it, the WAL write() reaches the page cache before
    // commit() returns, which survives kill -9 but not a power cut.
    bool sync = false;
  };

  // Opens (or creates) the store in `dir`, which must be an existing
  // directory. Damage RocksDB reports at open is repaired (what is lost is
  // reported by load()). Null with `error` set when it cannot be opened.
  static std::unique_ptr<RocksStore> open(const std::string& dir, const Options& options, std::string& error);
  ~RocksStore() override;

  bool load(const broker::RecoveryVisitor& visitor, std::string& error) override;
  unsigned previous_workers() const override { return previous_workers_; }
  void set_workers(unsigned workers) override;
  std::unique_ptr<broker::Journal> journal() override;
  // False while the disk is still failing, and while RocksDB's own
  // recovery runs: after ENOSPC it checks every 5 s or so for room (about
  // one memtable, 16 MiB, free) and resumes by itself; call again later.
  bool resume() override;

 private:
  RocksStore(std::string dir, const Options& options);
  bool open_db(std::string& error);
  bool repair(const std::string& why, std::string& error);
  void read_workers();
  void report_warnings(Loader& loader);
  struct Served {
    std::string from;  // empty: nothing at risk
    std::vector<std::pair<std::string, std::string>> records;
  };
  Served served_at_risk(const std::string& end);
  bool restore(const Served& served, const std::string& end, std::string& error);

  std::string dir_;
  Options options_;
  std::shared_ptr<RocksWarnings> warnings_;  // RocksDB's log (no LOG file)
  std::unique_ptr<rocksdb::Options> db_options_;
  std::unique_ptr<rocksdb::DB> db_;
  // Test hook: MIDGE_STORE_FAULT_FILE, read once at open (see README.md).
  std::string fault_file_;
  unsigned previous_workers_ = 0;
  int repairs_ = 0;
  // Found before load() had a visitor to report them to.
  std::vector<std::string> problems_;
};

}  // namespace midge::store
