// MQTT packet encoder: computes the size first, reserves once, then writes.
// Pure (no sockets, threads, clocks or logging).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "broker/codec/packets.h"

namespace shardmq::broker::codec {

// Appends the encoding of `packet` for protocol `version` to `out`.
// MQTT 5-only fields are dropped for 3.1/3.1.1 (properties, and reason codes where the 3.1.1
// packet has none: PUBACK/PUBREC/PUBREL/PUBCOMP, UNSUBACK, DISCONNECT).
void Encode(const Packet& packet, ProtocolVersion version, std::string* out);

// Size in bytes of Encode(packet, version) output, fixed header included.
size_t EncodedSize(const Packet& packet, ProtocolVersion version);

// Fast path for outgoing PUBLISH: the payload is passed separately so one shared payload can be
// encoded for many subscribers without copying it into a Publish first. `header.payload` is
// ignored.
void EncodePublish(const Publish& header, std::string_view payload, ProtocolVersion version,
                   std::string* out);
size_t PublishSize(const Publish& header, size_t payload_size, ProtocolVersion version);

}  // namespace shardmq::broker::codec
