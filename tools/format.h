// Printing received messages like mosquitto_sub: payload only, -v
// ("topic payload"), or -F FORMAT with %-codes, @-strftime codes and
// \-escapes (mosquitto_sub(1), "OUTPUT FORMAT").
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "protocol/packets.h"
#include "tools/client_options.h"

namespace midge::tools {

// Checks a -F string up front; on error prints the Mosquitto message and
// returns false.
bool validate_format(Tool tool, const std::string& format);

// Property identifiers in the order the message carried them (see
// wire_order.h); %j prints properties in this order. Empty: identifier order.
using PropertyOrder = std::vector<uint8_t>;

// Appends the text printed for one message (newline included unless -N).
// `received` is the wall-clock time of receipt.
void format_message(const ClientConfig& config, const protocol::PublishPacket& msg,
                    const timespec& received, const PropertyOrder& order, std::string& out);

}  // namespace midge::tools
