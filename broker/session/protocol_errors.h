// The one place where protocol failures (codec::ReasonCode) become what the client sees.
#pragma once

#include <cstdint>
#include <optional>

#include "broker/codec/packets.h"

namespace shardmq::broker::session {

// CONNACK return code (MQTT 3.1.1 s3.2.2.3) for a failed CONNECT, or nullopt when a 3.1/3.1.1
// client just gets its connection closed (3.1.1 has no code for e.g. a malformed packet).
std::optional<uint8_t> V3ConnackCode(codec::ReasonCode reason);

// Whether `reason` may be sent in a v5 CONNACK (MQTT 5 s3.2.2.2).
bool IsConnackReason(codec::ReasonCode reason);

}  // namespace shardmq::broker::session
