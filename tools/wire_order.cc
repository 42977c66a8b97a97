#include "tools/wire_order.h"

namespace midge::tools {
namespace {

// Reads bytes front to back; every read fails once the data runs out.
struct Reader {
  std::string_view data;
  size_t pos = 0;

  bool skip(size_t n) {
    if (data.size() - pos < n) return false;
    pos += n;
    return true;
  }
  std::optional<uint32_t> u16() {
    if (data.size() - pos < 2) return std::nullopt;
    uint32_t v = static_cast<uint8_t>(data[pos]) << 8 | static_cast<uint8_t>(data[pos + 1]);
    pos += 2;
    return v;
  }
  std::optional<uint32_t> varint() {  // [MQTT-1.5.5]: at most 4 bytes
    uint32_t v = 0;
    for (int shift = 0; shift < 28 && pos < data.size(); shift += 7) {
      auto b = static_cast<uint8_t>(data[pos++]);
      v |= static_cast<uint32_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    return std::nullopt;
  }
  bool skip_string() {  // UTF-8 string or binary data: 2-byte length first
    auto n = u16();
    return n && skip(*n);
  }
};

// Skips one property value of a PUBLISH (MQTT 5.0 section 3.3.2.3).
bool skip_value(Reader& r, uint8_t id) {
  switch (id) {
    case 0x01: return r.skip(1);                     // payload format indicator
    case 0x02: return r.skip(4);                     // message expiry interval
    case 0x03:                                       // content type
    case 0x08:                                       // response topic
    case 0x09: return r.skip_string();               // correlation data
    case 0x0B: return r.varint().has_value();        // subscription identifier
    case 0x23: return r.skip(2);                     // topic alias
    case 0x26: return r.skip_string() && r.skip_string();  // user property
    default: return false;
  }
}

}  // namespace

std::optional<PublishOrder> publish_property_order(std::string_view packet) {
  if (packet.empty() || (static_cast<uint8_t>(packet[0]) >> 4) != 3) return std::nullopt;
  PublishOrder out;
  out.qos = (static_cast<uint8_t>(packet[0]) >> 1) & 3;
  Reader r{packet, 1};
  if (!r.varint() || !r.skip_string()) return out;
  if (out.qos > 0) {
    auto id = r.u16();
    if (!id) return out;
    out.packet_id = static_cast<uint16_t>(*id);
  }
  auto length = r.varint();
  if (!length || packet.size() - r.pos < *length) return out;
  Reader props{packet.substr(r.pos, *length)};
  while (props.pos < props.data.size()) {
    auto id = static_cast<uint8_t>(props.data[props.pos++]);  // every PUBLISH id is < 0x80
    if (!skip_value(props, id)) {
      out.ids.clear();
      return out;
    }
    out.ids.push_back(id);
  }
  return out;
}

}  // namespace midge::tools
