// Turns the store's records, fed in key order, into what the broker's
// RecoveryVisitor takes. A session's records are contiguous: they are
// gathered until the next key leaves its prefix, then handed over as one
// StoredSession. Records that do not decode are skipped and reported.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/store.h"
#include "store/records.h"

namespace midge::store {

class Loader {
 public:
  Loader(const broker::RecoveryVisitor& visitor, const Clocks& clocks) : visitor_(visitor), clocks_(clocks) {}

  void record(std::string_view key, std::string_view value);
  // Hands over the session being gathered, if any.
  void finish();
  // After the scan broke (damage, repaired): forgets the half-gathered
  // session; the scan starts again at resume_key().
  void restart() { pending_.reset(); }
  // The first key whose record has not reached the visitor yet.
  const std::string& resume_key() const { return resume_; }
  void problem(const std::string& line) const;

 private:
  // In-flight state of a delivery ('i' record).
  struct State {
    uint64_t seq = 0;
    uint16_t packet_id = 0;
    bool released = false;
  };
  struct Pending {
    std::string prefix;
    broker::StoredSession session;
    bool has_fields = false;
    bool broken = false;  // its fields record did not decode
    // Both in seq order, as the keys come ('i' sorts before 'q'); merged
    // by seq when the session is handed over.
    std::vector<State> states;
    std::vector<broker::StoredDelivery> messages;
  };

  void retained(std::string_view key, std::string_view value);
  void transit(std::string_view key, std::string_view value);
  void marker(std::string_view key, std::string_view value);
  void session_record(const SessionKey& key, std::string_view full_key, std::string_view value);
  void delivery_record(const SessionKey& key, std::string_view full_key, std::string_view value);
  void emit_session(Pending& p);
  void merge_deliveries(Pending& p);
  // A state without its message: a released QoS 2 message, or an orphan.
  void lone_state(Pending& p, const State& state);
  void bad(std::string_view key, const char* why) const;

  const broker::RecoveryVisitor& visitor_;
  Clocks clocks_;
  std::optional<Pending> pending_;
  std::string resume_;
};

}  // namespace midge::store
