#include "store/records.h"

#include <chrono>
#include <cstdio>
#include <limits>
#include <utility>

#include "broker/retained_store.h"
#include "broker/session.h"
#include "protocol/properties.h"
#include "protocol/wire.h"

namespace midge::store {
namespace {

using broker::Message;

// --- Writing ------------------------------------------------------------------

void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }

template <typename T>
void put_be(std::string& out, T v) {
  for (int shift = (sizeof(T) - 1) * 8; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
  }
}

void put_str(std::string& out, std::string_view s) {
  put_be<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

void put_opt_str(std::string& out, const std::string* s) {
  put_u8(out, s ? 1 : 0);
  if (s) put_str(out, *s);
}

void put_time(std::string& out, std::optional<TimePoint> t, const Clocks& clocks) {
  put_u8(out, t ? 1 : 0);
  if (t) put_be<uint64_t>(out, static_cast<uint64_t>(to_wall_ms(*t, clocks)));
}

std::string start_value() {
  std::string out;
  put_u8(out, kFormatVersion);
  return out;
}

void put_message(std::string& out, const Message& m, const Clocks& clocks) {
  put_str(out, m.topic);
  put_str(out, m.payload);
  put_str(out, m.pass_through);
  put_str(out, m.origin_client_id);
  put_u8(out, m.qos);
  put_u8(out, m.retain ? 1 : 0);
  put_time(out, m.expires_at, clocks);
}

// --- Reading --------------------------------------------------------------------

// A strict cursor: every read checks the bytes left; the first failure
// sticks and names what was being read.
class In {
 public:
  explicit In(std::string_view data) : data_(data) {}

  bool fail(const char* why) {
    if (!why_) why_ = why;
    return false;
  }
  template <typename T>
  bool be(T& v, const char* what) {
    if (why_ || data_.size() - pos_ < sizeof(T)) return fail(what);
    v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>((v << 8) | static_cast<uint8_t>(data_[pos_ + i]));
    pos_ += sizeof(T);
    return true;
  }
  bool u8(uint8_t& v, const char* what) { return be(v, what); }
  bool flag(bool& v, const char* what) {
    uint8_t b = 0;
    if (!u8(b, what)) return false;
    if (b > 1) return fail(what);
    v = b == 1;
    return true;
  }
  bool str(std::string_view& s, const char* what) {
    uint32_t n = 0;
    if (!be(n, what)) return false;
    if (data_.size() - pos_ < n) return fail(what);
    s = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool opt_str(std::optional<std::string>& s, const char* what) {
    bool present = false;
    std::string_view v;
    if (!flag(present, what)) return false;
    if (!present) return true;
    if (!str(v, what)) return false;
    s.emplace(v);
    return true;
  }
  bool time(std::optional<TimePoint>& t, const Clocks& clocks, const char* what) {
    bool present = false;
    uint64_t ms = 0;
    if (!flag(present, what)) return false;
    if (!present) return true;
    if (!be(ms, what)) return false;
    t = from_wall_ms(static_cast<int64_t>(ms), clocks);
    return true;
  }
  bool version() {
    uint8_t v = 0;
    if (!u8(v, "empty value")) return false;
    return v == kFormatVersion || fail("unknown format version");
  }
  // True when everything was read without error and nothing is left.
  bool finish(const char*& why) {
    if (!why_ && pos_ != data_.size()) why_ = "trailing bytes";
    why = why_ ? why_ : "";
    return why_ == nullptr;
  }
  size_t remaining() const { return data_.size() - pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  const char* why_ = nullptr;
};

bool qos_ok(uint8_t qos) { return qos <= 2; }

bool read_message(In& in, const Clocks& clocks, broker::MessagePtr& out) {
  broker::MessageFields f;
  uint8_t qos = 0;
  if (!in.str(f.topic, "message topic") || !in.str(f.payload, "message payload") ||
      !in.str(f.pass_through, "message properties") || !in.str(f.origin_client_id, "message origin") ||
      !in.u8(qos, "message qos") || !in.flag(f.retain, "message retain") ||
      !in.time(f.expires_at, clocks, "message expiry")) {
    return false;
  }
  if (!qos_ok(qos)) return in.fail("message qos above 2");
  f.qos = qos;
  out = Message::create(f);
  return true;
}

// Will properties in their v5 wire form (property length first).
std::string will_properties(const protocol::Properties& props) {
  std::string out;
  protocol::detail::encode_properties(props, protocol::detail::properties_size(props), out);
  return out;
}

void put_will(std::string& out, const protocol::Will* will) {
  put_u8(out, will ? 1 : 0);
  if (!will) return;
  put_str(out, will->topic);
  put_str(out, will->payload);
  put_u8(out, will->qos);
  put_u8(out, will->retain ? 1 : 0);
  put_str(out, will_properties(will->properties));
}

bool read_will(In& in, std::optional<protocol::Will>& out) {
  bool present = false;
  if (!in.flag(present, "will flag")) return false;
  if (!present) return true;
  std::string_view topic, payload, props;
  protocol::Will will;
  if (!in.str(topic, "will topic") || !in.str(payload, "will payload") || !in.u8(will.qos, "will qos") ||
      !in.flag(will.retain, "will retain") || !in.str(props, "will properties")) {
    return false;
  }
  if (!qos_ok(will.qos)) return in.fail("will qos above 2");
  protocol::detail::Reader reader(props);
  if (protocol::detail::decode_properties(reader, protocol::detail::PropertyContext::kWill, will.properties)
          .failed() ||
      !reader.empty()) {
    return in.fail("will properties do not decode");
  }
  will.topic = topic;
  will.payload = payload;
  out = std::move(will);
  return true;
}

std::optional<TimePoint> maybe(MaybeTime t) {
  if (!t) return std::nullopt;
  return *t;
}

}  // namespace

// --- Clocks -----------------------------------------------------------------------

Clocks Clocks::now() {
  using namespace std::chrono;
  return {Clock::now(), duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count()};
}

namespace {
// Deadlines are clamped to +-200 years around now: far enough for a session
// that never expires (136 years), near enough that no conversion overflows.
constexpr int64_t kMaxSpanMs = int64_t{200} * 366 * 24 * 3600 * 1000;
int64_t clamp_span(int64_t ms) { return std::max(-kMaxSpanMs, std::min(kMaxSpanMs, ms)); }
}  // namespace

int64_t to_wall_ms(TimePoint t, const Clocks& clocks) {
  using namespace std::chrono;
  Duration::rep span = 0;
  if (__builtin_sub_overflow(t.time_since_epoch().count(), clocks.steady.time_since_epoch().count(), &span)) {
    using Limits = std::numeric_limits<Duration::rep>;
    span = t > clocks.steady ? Limits::max() : Limits::min();
  }
  return clocks.wall_ms + clamp_span(duration_cast<milliseconds>(Duration(span)).count());
}

TimePoint from_wall_ms(int64_t wall_ms, const Clocks& clocks) {
  // A value read from disk may be anything: clamp before subtracting.
  int64_t span = 0;
  if (wall_ms > clocks.wall_ms + kMaxSpanMs) {
    span = kMaxSpanMs;
  } else if (wall_ms < clocks.wall_ms - kMaxSpanMs) {
    span = -kMaxSpanMs;
  } else {
    span = wall_ms - clocks.wall_ms;
  }
  return clocks.steady + std::chrono::duration_cast<Duration>(milliseconds(span));
}

// --- Keys ---------------------------------------------------------------------------

std::string retained_key(std::string_view topic) {
  std::string k(1, kRetainedTag);
  k.append(topic);
  return k;
}

std::string session_prefix(std::string_view client_id) {
  std::string k(1, kSessionTag);
  put_be<uint16_t>(k, static_cast<uint16_t>(client_id.size()));
  k.append(client_id);
  return k;
}

std::string session_key(std::string_view client_id, char kind) {
  std::string k = session_prefix(client_id);
  k.push_back(kind);
  return k;
}

std::string subscription_key(std::string_view client_id, std::string_view filter) {
  std::string k = session_key(client_id, kSubscription);
  k.append(filter);
  return k;
}

std::string delivery_key(std::string_view client_id, char kind, uint64_t seq) {
  std::string k = session_key(client_id, kind);
  put_be<uint64_t>(k, seq);
  return k;
}

std::string incoming_key(std::string_view client_id, uint16_t packet_id) {
  std::string k = session_key(client_id, kIncoming);
  put_be<uint16_t>(k, packet_id);
  return k;
}

std::string transit_key(unsigned origin, uint64_t id) {
  std::string k(1, kTransitTag);
  put_u8(k, static_cast<uint8_t>(origin));
  put_be<uint64_t>(k, id);
  return k;
}

std::string transit_end(unsigned origin, uint64_t up_to) {
  if (up_to != std::numeric_limits<uint64_t>::max()) return transit_key(origin, up_to + 1);
  std::string prefix(1, kTransitTag);
  put_u8(prefix, static_cast<uint8_t>(origin));
  return prefix_end(prefix);
}

std::string marker_key(unsigned receiver, unsigned origin) {
  std::string k(1, kMarkerTag);
  put_u8(k, static_cast<uint8_t>(receiver));
  put_u8(k, static_cast<uint8_t>(origin));
  return k;
}

std::string workers_key() { return std::string(1, kWorkersTag); }

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xFF) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
  return end;
}

bool parse_session_key(std::string_view key, SessionKey& out) {
  if (key.size() < 4 || key[0] != kSessionTag) return false;
  uint16_t n = 0;
  if (!parse_u16(key.substr(1, 2), n) || key.size() < size_t{3} + n + 1) return false;
  out.prefix = key.substr(0, 3 + n);
  out.client_id = key.substr(3, n);
  out.kind = key[3 + n];
  out.rest = key.substr(4 + n);
  return true;
}

bool parse_u64(std::string_view bytes, uint64_t& out) {
  In in(bytes);
  const char* why = nullptr;
  return bytes.size() == 8 && in.be(out, "") && in.finish(why);
}

bool parse_u16(std::string_view bytes, uint16_t& out) {
  In in(bytes);
  const char* why = nullptr;
  return bytes.size() == 2 && in.be(out, "") && in.finish(why);
}

namespace {
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

std::string describe_session_key(const SessionKey& k) {
  std::string out = describe_session(k.client_id) + " ";
  uint64_t seq = 0;
  uint16_t id = 0;
  switch (k.kind) {
    case kSessionFields: return out + "fields";
    case kSubscription: return out + "subscription \"" + printable(k.rest) + "\"";
    case kDeliveryMessage:
    case kDeliveryState:
      if (parse_u64(k.rest, seq)) {
        return out + (k.kind == kDeliveryMessage ? "delivery " : "in-flight state ") + std::to_string(seq);
      }
      break;
    case kIncoming:
      if (parse_u16(k.rest, id)) return out + "incoming QoS 2 id " + std::to_string(id);
      break;
  }
  return out + "record \"" + printable(std::string_view(&k.kind, 1)) + printable(k.rest) + "\"";
}
}  // namespace

std::string describe_session(std::string_view client_id) {
  return "session \"" + printable(client_id) + "\"";
}

std::string describe_key(std::string_view key) {
  SessionKey sk;
  uint64_t id = 0;
  if (!key.empty() && key[0] == kRetainedTag) return "retained \"" + printable(key.substr(1)) + "\"";
  if (parse_session_key(key, sk)) return describe_session_key(sk);
  if (key.size() == 10 && key[0] == kTransitTag && parse_u64(key.substr(2), id)) {
    return "transit " + std::to_string(static_cast<uint8_t>(key[1])) + "/" + std::to_string(id);
  }
  if (key.size() == 3 && key[0] == kMarkerTag) {
    return "marker " + std::to_string(static_cast<uint8_t>(key[1])) + "<-" +
           std::to_string(static_cast<uint8_t>(key[2]));
  }
  return "key \"" + printable(key) + "\"";
}

// --- Values -------------------------------------------------------------------------

std::string encode_retained(const Message& message, const broker::RetainSource* source,
                            const Clocks& clocks) {
  std::string out = start_value();
  put_message(out, message, clocks);
  // 0: no source; 1: its user, the broker's rules; 2: then its listener's port.
  put_u8(out, !source ? 0 : source->listener_port == 0 ? 1 : 2);
  put_opt_str(out, source ? source->username.get() : nullptr);
  if (source && source->listener_port != 0) put_be<uint16_t>(out, source->listener_port);
  return out;
}

bool decode_retained(std::string_view value, const Clocks& clocks, broker::StoredRetained& out,
                     const char*& why) {
  In in(value);
  uint8_t source = 0;
  if (in.version() && read_message(in, clocks, out.message) && in.u8(source, "retain source") &&
      (source <= 2 || in.fail("retain source"))) {
    out.has_source = source != 0;
    if (in.opt_str(out.username, "retain source user") && source == 2) {
      in.be(out.listener_port, "retain source listener");
    }
  }
  return in.finish(why);
}

std::string encode_session(const broker::Session& s, unsigned worker, const Clocks& clocks) {
  std::string out = start_value();
  put_u8(out, static_cast<uint8_t>(s.version));
  put_be<uint32_t>(out, s.expiry_interval);
  put_opt_str(out, s.username.get());
  put_time(out, maybe(s.expires_at), clocks);
  put_will(out, s.will.get());
  put_time(out, maybe(s.will_at), clocks);
  put_be<uint32_t>(out, worker);
  put_be<uint16_t>(out, s.last_packet_id);
  put_u8(out, s.link ? 0 : 1);  // offline (a session that never expires has no deadline)
  return out;
}

bool decode_session(std::string_view value, const Clocks& clocks, broker::StoredSession& out,
                    const char*& why) {
  In in(value);
  uint8_t version = 0;
  uint32_t worker = 0;
  uint8_t offline = 0;
  if (in.version() && in.u8(version, "protocol version") && in.be(out.expiry_interval, "expiry interval") &&
      in.opt_str(out.username, "user name") && in.time(out.expires_at, clocks, "session deadline") &&
      read_will(in, out.will) && in.time(out.will_at, clocks, "will deadline") && in.be(worker, "worker") &&
      in.be(out.last_packet_id, "last packet id") && in.u8(offline, "offline flag")) {
    if (version < 3 || version > 5) in.fail("unknown protocol version");
    if (offline > 1) in.fail("offline flag");
    out.version = static_cast<protocol::Version>(version);
    out.worker = worker;
    out.offline = offline == 1;
  }
  return in.finish(why);
}

std::string encode_subscription(const broker::SessionSubscription& s) {
  std::string out = start_value();
  put_u8(out, s.options.max_qos);
  put_u8(out, s.options.no_local ? 1 : 0);
  put_u8(out, s.options.retain_as_published ? 1 : 0);
  put_u8(out, s.options.retain_handling);
  put_be<uint32_t>(out, s.subscription_id);
  return out;
}

bool decode_subscription(std::string_view value, broker::StoredSubscription& out, const char*& why) {
  In in(value);
  auto& o = out.options;
  if (in.version() && in.u8(o.max_qos, "maximum qos") && in.flag(o.no_local, "no local") &&
      in.flag(o.retain_as_published, "retain as published") && in.u8(o.retain_handling, "retain handling") &&
      in.be(out.subscription_id, "subscription id")) {
    if (!qos_ok(o.max_qos)) in.fail("maximum qos above 2");
    if (o.retain_handling > 2) in.fail("retain handling above 2");
  }
  return in.finish(why);
}

std::string encode_delivery(const broker::Delivery& d, uint16_t packet_id, const Clocks& clocks) {
  std::string out = start_value();
  put_message(out, *d.message, clocks);
  put_u8(out, d.qos);
  put_u8(out, d.retain ? 1 : 0);
  // Flags: 1 from a retained replay; 2 queued, the id its own (not sent).
  const bool queued_id = packet_id == 0 && d.packet_id != 0;
  put_u8(out, (d.from_retained ? 1 : 0) | (queued_id ? 2 : 0));
  put_be<uint16_t>(out, queued_id ? d.packet_id : packet_id);
  put_be<uint32_t>(out, static_cast<uint32_t>(d.subscription_ids.size()));
  for (uint32_t id : d.subscription_ids) put_be<uint32_t>(out, id);
  return out;
}

bool decode_delivery(std::string_view value, const Clocks& clocks, broker::StoredDelivery& out,
                     const char*& why) {
  In in(value);
  uint32_t count = 0;
  uint8_t flags = 0;
  if (in.version() && read_message(in, clocks, out.message) && in.u8(out.qos, "delivery qos") &&
      in.flag(out.retain, "delivery retain") && in.u8(flags, "delivery flags") &&
      in.be(out.packet_id, "packet id") && in.be(count, "subscription id count")) {
    if (flags > 3) in.fail("delivery flags");
    out.from_retained = (flags & 1) != 0;
    if ((flags & 2) != 0) out.queued_packet_id = std::exchange(out.packet_id, 0);
    if (!qos_ok(out.qos)) in.fail("delivery qos above 2");
    if ((out.packet_id != 0 || out.queued_packet_id != 0) && out.qos == 0) in.fail("packet id of a QoS 0 message");
    if (count > in.remaining() / 4) in.fail("subscription ids truncated");
    out.subscription_ids.resize(in.remaining() / 4 >= count ? count : 0);
    for (auto& id : out.subscription_ids) in.be(id, "subscription id");
  }
  return in.finish(why);
}

std::string encode_inflight(uint16_t packet_id, bool released) {
  std::string out = start_value();
  put_be<uint16_t>(out, packet_id);
  put_u8(out, released ? 1 : 0);
  return out;
}

bool decode_inflight(std::string_view value, broker::StoredDelivery& out, const char*& why) {
  In in(value);
  if (in.version() && in.be(out.packet_id, "packet id") && in.flag(out.released, "released")) {
    if (out.packet_id == 0) in.fail("packet id 0");
  }
  return in.finish(why);
}

std::string encode_incoming() { return start_value(); }

bool decode_incoming(std::string_view value, const char*& why) {
  In in(value);
  in.version();
  return in.finish(why);
}

std::string encode_transit(const Message& message, const std::vector<broker::Journal::Receiver>& receivers,
                           const Clocks& clocks) {
  std::string out = start_value();
  put_message(out, message, clocks);
  put_be<uint32_t>(out, static_cast<uint32_t>(receivers.size()));
  for (const auto& r : receivers) {
    put_u8(out, r.worker);
    put_be<uint64_t>(out, r.seq);
  }
  return out;
}

namespace {
// Set in a transit's receiver count: a $share transit, its member follows
// the receivers (so a cut one never reads as a plain transit).
constexpr uint32_t kSharedTransit = 0x80000000u;
}  // namespace

std::string encode_shared_transit(const Message& message, broker::Journal::Receiver receiver,
                                  const broker::Journal::SharedTarget& target, const Clocks& clocks) {
  std::string out = start_value();
  put_message(out, message, clocks);
  put_be<uint32_t>(out, 1 | kSharedTransit);
  put_u8(out, receiver.worker);
  put_be<uint64_t>(out, receiver.seq);
  put_u8(out, target.qos);
  put_be<uint32_t>(out, target.subscription_id);
  put_str(out, target.client_id);
  return out;
}

bool decode_transit(std::string_view value, const Clocks& clocks, broker::StoredTransit& out,
                    const char*& why) {
  In in(value);
  uint32_t count = 0;
  if (in.version() && read_message(in, clocks, out.message) && in.be(count, "receiver count")) {
    const bool shared = (count & kSharedTransit) != 0;
    count &= ~kSharedTransit;
    if (count > in.remaining() / 9) in.fail("receivers truncated");
    out.receivers.resize(in.remaining() / 9 >= count ? count : 0);
    for (auto& r : out.receivers) {
      if (!in.u8(r.worker, "receiver") || !in.be(r.seq, "receiver seq")) break;
    }
    broker::StoredTransit::Member m;
    std::string_view client;
    if (shared && in.u8(m.qos, "member qos") && (qos_ok(m.qos) || in.fail("member qos")) &&
        in.be(m.subscription_id, "member subscription id") && in.str(client, "member client id")) {
      m.client_id = std::string(client);
      out.member = std::move(m);
    }
  }
  return in.finish(why);
}

std::string encode_marker(uint64_t seq) {
  std::string out = start_value();
  put_be<uint64_t>(out, seq);
  return out;
}

bool decode_marker(std::string_view value, uint64_t& seq, const char*& why) {
  In in(value);
  if (in.version()) in.be(seq, "marker seq");
  return in.finish(why);
}

std::string encode_workers(unsigned workers) {
  std::string out = start_value();
  put_be<uint32_t>(out, workers);
  return out;
}

bool decode_workers(std::string_view value, unsigned& workers, const char*& why) {
  In in(value);
  uint32_t w = 0;
  if (in.version()) in.be(w, "worker count");
  workers = w;
  return in.finish(why);
}

}  // namespace midge::store
