// MQTT 5 properties (s2.2.2): which packet may carry which property, and their decoding and
// encoding. Internal to broker/codec; decoder.cc and encoder.cc share the one table here.
#pragma once

#include <cstddef>
#include <cstdint>

#include "broker/codec/byte_reader.h"
#include "broker/codec/byte_writer.h"
#include "broker/codec/packets.h"

namespace shardmq::broker::codec {

// The property sets of MQTT 5 s2.2.2.2 (PUBACK, PUBREC, PUBREL and PUBCOMP share one).
enum class PropertyContext : uint8_t {
  kConnect,
  kWill,
  kConnack,
  kPublish,
  kPubResponse,
  kSubscribe,
  kSuback,
  kUnsubscribe,
  kUnsuback,
  kDisconnect,
  kAuth,
};

// Reads a Property Length and the properties after it into `*props` (which must be empty).
// Returns kSuccess, or:
//  - kMalformedPacket: truncated or overlong lengths, a property not allowed in `context` or an
//    unknown identifier (s2.2.2.2), ill-formed UTF-8 in a string property (s1.5.4).
//  - kProtocolError: a property given twice that may appear once (User Property may repeat
//    anywhere, Subscription Identifier in PUBLISH only), or a value out of range: a 0/1 byte
//    property with another value, Receive Maximum 0, Maximum Packet Size 0, Subscription
//    Identifier 0.
ReasonCode DecodeProperties(ByteReader& reader, PropertyContext context, Properties* props);

// Size of the properties of `props` allowed in `context`, without the Property Length field.
// Properties not allowed in `context` are not encoded (the encoder never emits a packet its peer
// must reject); in SUBSCRIBE only the first Subscription Identifier is.
size_t PropertiesSize(const Properties& props, PropertyContext context);

// Writes the Property Length (`size`, from PropertiesSize) and the properties.
void WriteProperties(ByteWriter& writer, const Properties& props, PropertyContext context,
                     size_t size);

}  // namespace shardmq::broker::codec
