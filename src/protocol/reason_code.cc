#include "protocol/reason_code.h"

namespace midge::protocol {

uint8_t to_v3_connack_code(ReasonCode code) {
  switch (code) {
    case ReasonCode::kSuccess: return 0;
    case ReasonCode::kUnsupportedProtocolVersion: return 1;
    case ReasonCode::kClientIdentifierNotValid: return 2;
    case ReasonCode::kBadUserNameOrPassword: return 4;
    case ReasonCode::kNotAuthorized:
    case ReasonCode::kBanned:
    case ReasonCode::kBadAuthenticationMethod:
    case ReasonCode::kPacketTooLarge: return 5;  // a will over message_size_limit: as Mosquitto
    default: break;
  }
  // Server unavailable, busy, moved, rate limits and every other failure:
  // 3 "Server unavailable" is the closest 3.1.1 return code.
  return 3;
}

ReasonCode from_v3_connack_code(uint8_t code) {
  switch (code) {
    case 0: return ReasonCode::kSuccess;
    case 1: return ReasonCode::kUnsupportedProtocolVersion;
    case 2: return ReasonCode::kClientIdentifierNotValid;
    case 3: return ReasonCode::kServerUnavailable;
    case 4: return ReasonCode::kBadUserNameOrPassword;
    case 5: return ReasonCode::kNotAuthorized;
    default: return ReasonCode::kUnspecifiedError;
  }
}

const char* reason_code_name(ReasonCode code) {
  switch (code) {
    case ReasonCode::kSuccess: return "Success";
    case ReasonCode::kGrantedQos1: return "Granted QoS 1";
    case ReasonCode::kGrantedQos2: return "Granted QoS 2";
    case ReasonCode::kDisconnectWithWill: return "Disconnect with Will Message";
    case ReasonCode::kNoMatchingSubscribers: return "No matching subscribers";
    case ReasonCode::kNoSubscriptionExisted: return "No subscription existed";
    case ReasonCode::kContinueAuthentication: return "Continue authentication";
    case ReasonCode::kReauthenticate: return "Re-authenticate";
    case ReasonCode::kUnspecifiedError: return "Unspecified error";
    case ReasonCode::kMalformedPacket: return "Malformed Packet";
    case ReasonCode::kProtocolError: return "Protocol Error";
    case ReasonCode::kImplementationSpecificError: return "Implementation specific error";
    case ReasonCode::kUnsupportedProtocolVersion: return "Unsupported Protocol Version";
    case ReasonCode::kClientIdentifierNotValid: return "Client Identifier not valid";
    case ReasonCode::kBadUserNameOrPassword: return "Bad User Name or Password";
    case ReasonCode::kNotAuthorized: return "Not authorized";
    case ReasonCode::kServerUnavailable: return "Server unavailable";
    case ReasonCode::kServerBusy: return "Server busy";
    case ReasonCode::kBanned: return "Banned";
    case ReasonCode::kServerShuttingDown: return "Server shutting down";
    case ReasonCode::kBadAuthenticationMethod: return "Bad authentication method";
    case ReasonCode::kKeepAliveTimeout: return "Keep Alive timeout";
    case ReasonCode::kSessionTakenOver: return "Session taken over";
    case ReasonCode::kTopicFilterInvalid: return "Topic Filter invalid";
    case ReasonCode::kTopicNameInvalid: return "Topic Name invalid";
    case ReasonCode::kPacketIdentifierInUse: return "Packet Identifier in use";
    case ReasonCode::kPacketIdentifierNotFound: return "Packet Identifier not found";
    case ReasonCode::kReceiveMaximumExceeded: return "Receive Maximum exceeded";
    case ReasonCode::kTopicAliasInvalid: return "Topic Alias invalid";
    case ReasonCode::kPacketTooLarge: return "Packet too large";
    case ReasonCode::kMessageRateTooHigh: return "Message rate too high";
    case ReasonCode::kQuotaExceeded: return "Quota exceeded";
    case ReasonCode::kAdministrativeAction: return "Administrative action";
    case ReasonCode::kPayloadFormatInvalid: return "Payload format invalid";
    case ReasonCode::kRetainNotSupported: return "Retain not supported";
    case ReasonCode::kQosNotSupported: return "QoS not supported";
    case ReasonCode::kUseAnotherServer: return "Use another server";
    case ReasonCode::kServerMoved: return "Server moved";
    case ReasonCode::kSharedSubscriptionsNotSupported: return "Shared Subscriptions not supported";
    case ReasonCode::kConnectionRateExceeded: return "Connection rate exceeded";
    case ReasonCode::kMaximumConnectTime: return "Maximum connect time";
    case ReasonCode::kSubscriptionIdentifiersNotSupported:
      return "Subscription Identifiers not supported";
    case ReasonCode::kWildcardSubscriptionsNotSupported:
      return "Wildcard Subscriptions not supported";
  }
  return "Unknown reason code";
}

}  // namespace midge::protocol
