// `log_type debug` (and -v): a line for each packet a client sends and each
// packet sent to it, in Mosquitto 2.0's words, so that an administrator
// watching `midge -v` sees what `mosquitto -v` shows. Nothing is formatted
// unless debug lines are logged.
#include <string>

#include "broker/broker.h"

namespace midge::broker {

namespace {

std::string publish_line(const std::string& head, bool dup, uint8_t qos, bool retain, uint16_t mid,
                         std::string_view topic, size_t bytes) {
  return head + " (d" + (dup ? "1" : "0") + ", q" + std::to_string(qos) + ", r" + (retain ? "1" : "0") + ", m" +
         std::to_string(mid) + ", '" + std::string(topic) + "', ... (" + std::to_string(bytes) + " bytes))";
}

const char* ack_name(protocol::PacketType type) {
  switch (type) {
    case protocol::PacketType::kPuback: return "PUBACK";
    case protocol::PacketType::kPubrec: return "PUBREC";
    case protocol::PacketType::kPubrel: return "PUBREL";
    default: return "PUBCOMP";
  }
}

unsigned code(protocol::ReasonCode reason) { return static_cast<unsigned>(reason); }

}  // namespace

void Broker::debug(const std::string& line) { router_.log(util::LogType::kDebug, line); }

void Broker::debug_received(const Session& session, const protocol::Packet& packet) {
  const std::string from = " from " + session.client_id;
  if (const auto* ack = std::get_if<protocol::AckPacket>(&packet)) {
    const bool with_code = ack->type == protocol::PacketType::kPuback || ack->type == protocol::PacketType::kPubcomp;
    debug(std::string("Received ") + ack_name(ack->type) + from + " (Mid: " + std::to_string(ack->packet_id) +
          (with_code ? ", RC:" + std::to_string(code(ack->reason)) : std::string()) + ")");
  } else if (const auto* sub = std::get_if<protocol::SubscribePacket>(&packet)) {
    debug("Received SUBSCRIBE" + from);
    for (const protocol::Subscription& s : sub->subscriptions) {
      debug("\t" + s.filter + " (QoS " + std::to_string(s.options.max_qos) + ")");
    }
  } else if (const auto* unsub = std::get_if<protocol::UnsubscribePacket>(&packet)) {
    debug("Received UNSUBSCRIBE" + from);
    for (const std::string& f : unsub->filters) debug("\t" + f);
  } else if (std::holds_alternative<protocol::PingreqPacket>(packet)) {
    debug("Received PINGREQ" + from);
  }  // DISCONNECT: logged by the connection, before its "disconnected" line
}

void Broker::debug_received_publish(const Session& session, const protocol::PublishView& p,
                                    protocol::ReasonCode outcome) {
  const char* what = outcome == protocol::ReasonCode::kNotAuthorized ? "Denied"
                     : outcome == protocol::ReasonCode::kSuccess     ? "Received"
                                                                     : "Dropped too large";
  debug(publish_line(std::string(what) + " PUBLISH from " + session.client_id, p.dup, p.qos, p.retain, p.packet_id,
                     p.topic, p.payload.size()));
}

void Broker::debug_sent(const Link& link, const protocol::Packet& packet) {
  const std::string to = " to " + (link.session ? link.session->client_id : std::string());
  if (const auto* connack = std::get_if<protocol::ConnackPacket>(&packet)) {
    const unsigned rc = link.version == protocol::Version::kV5 ? code(connack->reason)
                                                              : protocol::to_v3_connack_code(connack->reason);
    debug("Sending CONNACK" + to + " (" + (connack->session_present ? "1" : "0") + ", " + std::to_string(rc) + ")");
  } else if (std::holds_alternative<protocol::UnsubackPacket>(packet)) {
    debug("Sending UNSUBACK" + to);
  } else if (std::holds_alternative<protocol::PingrespPacket>(packet)) {
    debug("Sending PINGRESP" + to);
  } else if (const auto* d = std::get_if<protocol::DisconnectPacket>(&packet)) {
    debug("Sending DISCONNECT" + to + " (rc" + std::to_string(code(d->reason)) + ")");
  }
}

void Broker::debug_sent_ack(const Link& link, protocol::PacketType type, uint16_t id, protocol::ReasonCode reason) {
  const bool with_code = type == protocol::PacketType::kPuback || type == protocol::PacketType::kPubrec;
  debug(std::string("Sending ") + ack_name(type) + " to " + (link.session ? link.session->client_id : std::string()) +
        " (m" + std::to_string(id) + (with_code ? ", rc" + std::to_string(code(reason)) : std::string()) + ")");
}

void Broker::debug_sent_publish(const Session& session, const Message& m, uint8_t qos, bool retain,
                                uint16_t packet_id, bool dup) {
  std::string_view topic = m.topic;
  const std::string_view mount = session.link->mount_point();
  if (!mount.empty() && topic.starts_with(mount)) topic.remove_prefix(mount.size());
  debug(publish_line("Sending PUBLISH to " + session.client_id, dup, qos, retain, packet_id, topic, m.payload.size()));
}

void Broker::debug_will(const protocol::ConnectPacket& c) {
  if (!c.will) {
    debug("No will message specified.");
    return;
  }
  debug("Will message specified (" + std::to_string(c.will->payload.size()) + " bytes) (r" +
        (c.will->retain ? "1" : "0") + ", q" + std::to_string(c.will->qos) + ").");
  debug("\t" + c.will->topic);
}

}  // namespace midge::broker
