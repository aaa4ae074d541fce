#include "broker/session/protocol_errors.h"

namespace shardmq::broker::session {

using codec::ReasonCode;

std::optional<uint8_t> V3ConnackCode(ReasonCode reason) {
  switch (reason) {
    case ReasonCode::kUnsupportedProtocolVersion: return 0x01;
    case ReasonCode::kClientIdentifierNotValid: return 0x02;
    case ReasonCode::kServerUnavailable:
    case ReasonCode::kServerBusy:
    case ReasonCode::kServerShuttingDown: return 0x03;
    case ReasonCode::kBadUserNameOrPassword: return 0x04;
    case ReasonCode::kNotAuthorized:
    case ReasonCode::kBanned: return 0x05;
    default: return std::nullopt;
  }
}

bool IsConnackReason(ReasonCode reason) {
  switch (reason) {
    case ReasonCode::kUnspecifiedError:
    case ReasonCode::kMalformedPacket:
    case ReasonCode::kProtocolError:
    case ReasonCode::kImplementationSpecificError:
    case ReasonCode::kUnsupportedProtocolVersion:
    case ReasonCode::kClientIdentifierNotValid:
    case ReasonCode::kBadUserNameOrPassword:
    case ReasonCode::kNotAuthorized:
    case ReasonCode::kServerUnavailable:
    case ReasonCode::kServerBusy:
    case ReasonCode::kBanned:
    case ReasonCode::kBadAuthenticationMethod:
    case ReasonCode::kTopicNameInvalid:
    case ReasonCode::kPacketTooLarge:
    case ReasonCode::kQuotaExceeded:
    case ReasonCode::kPayloadFormatInvalid:
    case ReasonCode::kRetainNotSupported:
    case ReasonCode::kQosNotSupported:
    case ReasonCode::kUseAnotherServer:
    case ReasonCode::kServerMoved:
    case ReasonCode::kConnectionRateExceeded: return true;
    default: return false;
  }
}

}  // namespace shardmq::broker::session
