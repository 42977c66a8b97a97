// How the store lays its records out in RocksDB: keys, and a small binary
// codec for values. Pure functions of bytes (no RocksDB here), so the
// layout is tested on its own.
//
// Keys (bytewise order; everything of one session is contiguous, so that
// loading reads it in one run and erase_session is one DeleteRange):
//   "R" topic                                   retained message
//   "S" u16 len, client id, 'm'                 session fields
//   "S" u16 len, client id, 'u' filter          subscription
//   "S" u16 len, client id, 'q' u64 seq         delivery: the message
//   "S" u16 len, client id, 'i' u64 seq         delivery: in-flight state
//   "S" u16 len, client id, 'x' u16 packet id   incoming QoS 2 id
//   "T" u8 origin, u64 id                       transit message ($share: + member)
//   "M" u8 receiver, u8 origin                  channel marker
//   "W"                                         worker count of the last run
// Numbers are big-endian (keys sort by them). The client id's length comes
// before it, so "a" and "ab" never share a prefix.
//
// Values start with kFormatVersion. Decoding is strict: a wrong version, a
// value out of range, a short read or a trailing byte makes it fail (with a
// reason in `why`), never read out of bounds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "broker/store.h"
#include "util/time.h"

namespace midge::broker {
struct Delivery;
struct Session;
struct SessionSubscription;
struct RetainSource;
}  // namespace midge::broker

namespace midge::store {

inline constexpr uint8_t kFormatVersion = 1;

inline constexpr char kRetainedTag = 'R';
inline constexpr char kSessionTag = 'S';
inline constexpr char kTransitTag = 'T';
inline constexpr char kMarkerTag = 'M';
inline constexpr char kWorkersTag = 'W';

inline constexpr char kSessionFields = 'm';
inline constexpr char kSubscription = 'u';
inline constexpr char kDeliveryMessage = 'q';
inline constexpr char kDeliveryState = 'i';
inline constexpr char kIncoming = 'x';

// Both clocks read at one instant: deadlines are kept as wall-clock
// milliseconds since the epoch and converted to and from steady time with it.
struct Clocks {
  TimePoint steady;
  int64_t wall_ms = 0;
  static Clocks now();
};
int64_t to_wall_ms(TimePoint t, const Clocks& clocks);
TimePoint from_wall_ms(int64_t wall_ms, const Clocks& clocks);

// --- Keys -------------------------------------------------------------------

std::string retained_key(std::string_view topic);
// "S" + length + client id: the prefix of every record of the session.
std::string session_prefix(std::string_view client_id);
std::string session_key(std::string_view client_id, char kind);
std::string subscription_key(std::string_view client_id, std::string_view filter);
std::string delivery_key(std::string_view client_id, char kind, uint64_t seq);
std::string incoming_key(std::string_view client_id, uint16_t packet_id);
std::string transit_key(unsigned origin, uint64_t id);
// [transit_key(origin, 0), transit_end(origin, up_to)) holds the transits
// of `origin` with an id up to `up_to` included.
std::string transit_end(unsigned origin, uint64_t up_to);
std::string marker_key(unsigned receiver, unsigned origin);
std::string workers_key();
// The smallest key above every key that starts with `prefix` (for
// DeleteRange); empty when there is none (a prefix of only 0xFF bytes).
std::string prefix_end(std::string_view prefix);

struct SessionKey {
  std::string_view prefix;     // "S" + length + client id
  std::string_view client_id;
  char kind = 0;
  std::string_view rest;       // after the kind byte
};
bool parse_session_key(std::string_view key, SessionKey& out);
// Exactly 8 (or 2) big-endian bytes.
bool parse_u64(std::string_view bytes, uint64_t& out);
bool parse_u16(std::string_view bytes, uint16_t& out);
// A printable rendering of any key, for problem reports.
std::string describe_key(std::string_view key);
std::string describe_session(std::string_view client_id);  // session "id"

// --- Values -----------------------------------------------------------------

std::string encode_retained(const broker::Message& message, const broker::RetainSource* source,
                            const Clocks& clocks);
bool decode_retained(std::string_view value, const Clocks& clocks, broker::StoredRetained& out,
                     const char*& why);

// Fills every field of `out` but client_id and the per-record lists.
std::string encode_session(const broker::Session& session, unsigned worker, const Clocks& clocks);
bool decode_session(std::string_view value, const Clocks& clocks, broker::StoredSession& out,
                    const char*& why);

std::string encode_subscription(const broker::SessionSubscription& subscription);
bool decode_subscription(std::string_view value, broker::StoredSubscription& out, const char*& why);

// The message part of a delivery (message, qos, retain, from_retained,
// subscription ids).
std::string encode_delivery(const broker::Delivery& delivery, uint16_t packet_id, const Clocks& clocks);
bool decode_delivery(std::string_view value, const Clocks& clocks, broker::StoredDelivery& out,
                     const char*& why);
// The in-flight part (packet id, released).
std::string encode_inflight(uint16_t packet_id, bool released);
bool decode_inflight(std::string_view value, broker::StoredDelivery& out, const char*& why);

std::string encode_incoming();
bool decode_incoming(std::string_view value, const char*& why);

std::string encode_transit(const broker::Message& message,
                           const std::vector<broker::Journal::Receiver>& receivers,
                           const Clocks& clocks);
// A $share transit: the same, then the member (qos, subscription id, client id).
std::string encode_shared_transit(const broker::Message& message, broker::Journal::Receiver receiver,
                                  const broker::Journal::SharedTarget& target, const Clocks& clocks);
bool decode_transit(std::string_view value, const Clocks& clocks, broker::StoredTransit& out,
                    const char*& why);

std::string encode_marker(uint64_t seq);
bool decode_marker(std::string_view value, uint64_t& seq, const char*& why);

std::string encode_workers(unsigned workers);
bool decode_workers(std::string_view value, unsigned& workers, const char*& why);

}  // namespace midge::store
