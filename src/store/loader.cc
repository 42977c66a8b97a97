#include "store/loader.h"

#include <utility>

namespace midge::store {

void Loader::problem(const std::string& line) const {
  if (visitor_.problem) visitor_.problem(line);
}

void Loader::bad(std::string_view key, const char* why) const {
  problem("store: skipped " + describe_key(key) + ": " + why);
}

void Loader::record(std::string_view key, std::string_view value) {
  SessionKey sk;
  if (parse_session_key(key, sk)) {
    if (!pending_ || pending_->prefix != sk.prefix) {
      finish();
      pending_.emplace();
      pending_->prefix = sk.prefix;
      pending_->session.client_id = sk.client_id;
      resume_ = key;
    }
    session_record(sk, key, value);
    return;
  }
  finish();
  resume_ = key;
  resume_.push_back('\0');  // the next key after this one
  switch (key.empty() ? 0 : key[0]) {
    case kRetainedTag: return retained(key, value);
    case kTransitTag: return transit(key, value);
    case kMarkerTag: return marker(key, value);
    case kWorkersTag: return;  // read by RocksStore::open
    case kSessionTag: return bad(key, "malformed session key");
    default: return bad(key, "unknown kind of record");
  }
}

void Loader::finish() {
  if (!pending_) return;
  Pending p = std::move(*pending_);
  pending_.reset();
  emit_session(p);
}

void Loader::retained(std::string_view key, std::string_view value) {
  broker::StoredRetained r;
  const char* why = "";
  if (!decode_retained(value, clocks_, r, why)) return bad(key, why);
  if (r.message->topic != key.substr(1)) return bad(key, "topic differs from its key");
  if (visitor_.retained) visitor_.retained(std::move(r));
}

void Loader::transit(std::string_view key, std::string_view value) {
  broker::StoredTransit t;
  const char* why = "";
  if (key.size() != 10 || !parse_u64(key.substr(2), t.id)) return bad(key, "malformed key");
  if (!decode_transit(value, clocks_, t, why)) return bad(key, why);
  t.origin = static_cast<uint8_t>(key[1]);
  if (visitor_.transit) visitor_.transit(std::move(t));
}

void Loader::marker(std::string_view key, std::string_view value) {
  uint64_t seq = 0;
  const char* why = "";
  if (key.size() != 3) return bad(key, "malformed key");
  if (!decode_marker(value, seq, why)) return bad(key, why);
  if (visitor_.marker) visitor_.marker(static_cast<uint8_t>(key[1]), static_cast<uint8_t>(key[2]), seq);
}

void Loader::session_record(const SessionKey& key, std::string_view full_key, std::string_view value) {
  Pending& p = *pending_;
  const char* why = "";
  switch (key.kind) {
    case kSessionFields: {
      if (!key.rest.empty()) return bad(full_key, "malformed key");
      if (!decode_session(value, clocks_, p.session, why)) {
        p.broken = true;
        return bad(full_key, why);
      }
      p.has_fields = true;
      return;
    }
    case kSubscription: {
      broker::StoredSubscription s;
      if (!decode_subscription(value, s, why)) return bad(full_key, why);
      s.filter = key.rest;
      p.session.subscriptions.push_back(std::move(s));
      return;
    }
    case kDeliveryMessage:
    case kDeliveryState: return delivery_record(key, full_key, value);
    case kIncoming: {
      uint16_t id = 0;
      if (!parse_u16(key.rest, id) || id == 0) return bad(full_key, "malformed key");
      if (!decode_incoming(value, why)) return bad(full_key, why);
      p.session.incoming_qos2.push_back(id);
      return;
    }
    default: return bad(full_key, "unknown kind of session record");
  }
}

void Loader::delivery_record(const SessionKey& key, std::string_view full_key, std::string_view value) {
  Pending& p = *pending_;
  broker::StoredDelivery d;
  const char* why = "";
  if (!parse_u64(key.rest, d.seq)) return bad(full_key, "malformed key");
  if (key.kind == kDeliveryMessage) {
    if (!decode_delivery(value, clocks_, d, why)) return bad(full_key, why);
    p.messages.push_back(std::move(d));
  } else {
    if (!decode_inflight(value, d, why)) return bad(full_key, why);
    p.states.push_back({d.seq, d.packet_id, d.released});
  }
}

void Loader::lone_state(Pending& p, const State& state) {
  if (!state.released) {
    return bad(delivery_key(p.session.client_id, kDeliveryState, state.seq),
               "in flight without its message and not released");
  }
  broker::StoredDelivery d;  // message null: released QoS 2
  d.seq = state.seq;
  d.qos = 2;
  d.packet_id = state.packet_id;
  d.released = true;
  p.session.deliveries.push_back(std::move(d));
}

void Loader::merge_deliveries(Pending& p) {
  auto& out = p.session.deliveries;
  if (p.states.empty()) {
    out = std::move(p.messages);  // all queued, never sent
    return;
  }
  out.reserve(p.messages.size() + p.states.size());
  size_t i = 0;
  for (auto& m : p.messages) {
    for (; i < p.states.size() && p.states[i].seq < m.seq; ++i) lone_state(p, p.states[i]);
    if (i < p.states.size() && p.states[i].seq == m.seq) {
      m.packet_id = p.states[i].packet_id;
      m.released = p.states[i].released;
      ++i;
    }
    out.push_back(std::move(m));
  }
  for (; i < p.states.size(); ++i) lone_state(p, p.states[i]);
}

void Loader::emit_session(Pending& p) {
  if (!p.has_fields) {
    if (!p.broken) bad(p.prefix + kSessionFields, "missing");
    problem("store: skipped every record of " + describe_session(p.session.client_id) +
            " (its fields record is missing or broken)");
    return;
  }
  merge_deliveries(p);
  if (visitor_.session) visitor_.session(std::move(p.session));
}

}  // namespace midge::store
