// MQTT 5 s2.2.2.2 property table, transcribed as one bit mask per packet:
//
//   id    property                        type      packets
//   0x01  Payload Format Indicator        byte      PUBLISH, Will
//   0x02  Message Expiry Interval         u32       PUBLISH, Will
//   0x03  Content Type                    string    PUBLISH, Will
//   0x08  Response Topic                  string    PUBLISH, Will
//   0x09  Correlation Data                binary    PUBLISH, Will
//   0x0B  Subscription Identifier         varint    PUBLISH (may repeat), SUBSCRIBE
//   0x11  Session Expiry Interval         u32       CONNECT, CONNACK, DISCONNECT
//   0x12  Assigned Client Identifier      string    CONNACK
//   0x13  Server Keep Alive               u16       CONNACK
//   0x15  Authentication Method           string    CONNECT, CONNACK, AUTH
//   0x16  Authentication Data             binary    CONNECT, CONNACK, AUTH
//   0x17  Request Problem Information     byte      CONNECT
//   0x18  Will Delay Interval             u32       Will
//   0x19  Request Response Information    byte      CONNECT
//   0x1A  Response Information            string    CONNACK
//   0x1C  Server Reference                string    CONNACK, DISCONNECT
//   0x1F  Reason String                   string    CONNACK, PUBACK..PUBCOMP, SUBACK, UNSUBACK,
//                                                   DISCONNECT, AUTH
//   0x21  Receive Maximum                 u16       CONNECT, CONNACK
//   0x22  Topic Alias Maximum             u16       CONNECT, CONNACK
//   0x23  Topic Alias                     u16       PUBLISH
//   0x24  Maximum QoS                     byte      CONNACK
//   0x25  Retain Available                byte      CONNACK
//   0x26  User Property                   pair      all but PINGREQ/PINGRESP (may repeat)
//   0x27  Maximum Packet Size             u32       CONNECT, CONNACK
//   0x28  Wildcard Subscription Available byte      CONNACK
//   0x29  Subscription Identifier Avail.  byte      CONNACK
//   0x2A  Shared Subscription Available   byte      CONNACK
//
// s2.2.2.2: "A Control Packet which contains an Identifier which is not valid for its packet
// type, or contains a value not of the specified data type, is a Malformed Packet."
// Property Identifiers are Variable Byte Integers, but every defined one is a single byte below
// 0x80, so reading one byte and rejecting unknown values is equivalent.
#include "broker/codec/property_codec.h"

#include <string>
#include <string_view>

#include "common/utf8.h"

namespace shardmq::broker::codec {
namespace {

using Id = PropertyId;

constexpr uint64_t Bit(Id id) { return uint64_t{1} << static_cast<uint8_t>(id); }

constexpr uint64_t kWillProperties = Bit(Id::kPayloadFormatIndicator) |
                                     Bit(Id::kMessageExpiryInterval) | Bit(Id::kContentType) |
                                     Bit(Id::kResponseTopic) | Bit(Id::kCorrelationData) |
                                     Bit(Id::kWillDelayInterval) | Bit(Id::kUserProperty);

constexpr uint64_t AllowedIn(PropertyContext context) {
  switch (context) {
    case PropertyContext::kConnect:
      return Bit(Id::kSessionExpiryInterval) | Bit(Id::kAuthenticationMethod) |
             Bit(Id::kAuthenticationData) | Bit(Id::kRequestProblemInformation) |
             Bit(Id::kRequestResponseInformation) | Bit(Id::kReceiveMaximum) |
             Bit(Id::kTopicAliasMaximum) | Bit(Id::kUserProperty) | Bit(Id::kMaximumPacketSize);
    case PropertyContext::kWill:
      return kWillProperties;
    case PropertyContext::kConnack:
      return Bit(Id::kSessionExpiryInterval) | Bit(Id::kAssignedClientIdentifier) |
             Bit(Id::kServerKeepAlive) | Bit(Id::kAuthenticationMethod) |
             Bit(Id::kAuthenticationData) | Bit(Id::kResponseInformation) |
             Bit(Id::kServerReference) | Bit(Id::kReasonString) | Bit(Id::kReceiveMaximum) |
             Bit(Id::kTopicAliasMaximum) | Bit(Id::kMaximumQos) | Bit(Id::kRetainAvailable) |
             Bit(Id::kUserProperty) | Bit(Id::kMaximumPacketSize) |
             Bit(Id::kWildcardSubscriptionAvailable) | Bit(Id::kSubscriptionIdentifierAvailable) |
             Bit(Id::kSharedSubscriptionAvailable);
    case PropertyContext::kPublish:
      return Bit(Id::kPayloadFormatIndicator) | Bit(Id::kMessageExpiryInterval) |
             Bit(Id::kContentType) | Bit(Id::kResponseTopic) | Bit(Id::kCorrelationData) |
             Bit(Id::kSubscriptionIdentifier) | Bit(Id::kTopicAlias) | Bit(Id::kUserProperty);
    case PropertyContext::kPubResponse:
    case PropertyContext::kSuback:
    case PropertyContext::kUnsuback:
      return Bit(Id::kReasonString) | Bit(Id::kUserProperty);
    case PropertyContext::kSubscribe:
      return Bit(Id::kSubscriptionIdentifier) | Bit(Id::kUserProperty);
    case PropertyContext::kUnsubscribe:
      return Bit(Id::kUserProperty);
    case PropertyContext::kDisconnect:
      return Bit(Id::kSessionExpiryInterval) | Bit(Id::kServerReference) | Bit(Id::kReasonString) |
             Bit(Id::kUserProperty);
    case PropertyContext::kAuth:
      return Bit(Id::kAuthenticationMethod) | Bit(Id::kAuthenticationData) |
             Bit(Id::kReasonString) | Bit(Id::kUserProperty);
  }
  return 0;
}

// --- decoding ---

bool ReadString(ByteReader& r, std::string* out) {
  std::string_view s;
  if (!r.ReadLengthPrefixed(&s) || !utf8::IsValidMqttString(s)) return false;
  out->assign(s.data(), s.size());
  return true;
}

bool ReadBinary(ByteReader& r, std::string* out) {
  std::string_view s;
  if (!r.ReadLengthPrefixed(&s)) return false;
  out->assign(s.data(), s.size());
  return true;
}

// Result of reading one property value.
enum class ValueResult { kOk, kMalformed, kOutOfRange };

ValueResult ReadFlagByte(ByteReader& r, std::optional<uint8_t>* out) {
  uint8_t v = 0;
  if (!r.ReadU8(&v)) return ValueResult::kMalformed;
  if (v > 1) return ValueResult::kOutOfRange;
  *out = v;
  return ValueResult::kOk;
}

ValueResult ReadU16(ByteReader& r, std::optional<uint16_t>* out, bool zero_allowed = true) {
  uint16_t v = 0;
  if (!r.ReadU16(&v)) return ValueResult::kMalformed;
  if (v == 0 && !zero_allowed) return ValueResult::kOutOfRange;
  *out = v;
  return ValueResult::kOk;
}

ValueResult ReadU32(ByteReader& r, std::optional<uint32_t>* out, bool zero_allowed = true) {
  uint32_t v = 0;
  if (!r.ReadU32(&v)) return ValueResult::kMalformed;
  if (v == 0 && !zero_allowed) return ValueResult::kOutOfRange;
  *out = v;
  return ValueResult::kOk;
}

ValueResult ReadStringProperty(ByteReader& r, std::optional<std::string>* out) {
  return ReadString(r, &out->emplace()) ? ValueResult::kOk : ValueResult::kMalformed;
}

ValueResult ReadBinaryProperty(ByteReader& r, std::optional<std::string>* out) {
  return ReadBinary(r, &out->emplace()) ? ValueResult::kOk : ValueResult::kMalformed;
}

ValueResult ReadValue(ByteReader& r, Id id, Properties* p) {
  switch (id) {
    case Id::kPayloadFormatIndicator:
      return ReadFlagByte(r, &p->payload_format_indicator);
    case Id::kMessageExpiryInterval:
      return ReadU32(r, &p->message_expiry_interval);
    case Id::kContentType:
      return ReadStringProperty(r, &p->content_type);
    case Id::kResponseTopic:
      return ReadStringProperty(r, &p->response_topic);
    case Id::kCorrelationData:
      return ReadBinaryProperty(r, &p->correlation_data);
    case Id::kSubscriptionIdentifier: {
      uint32_t v = 0;
      if (!r.ReadVarInt(&v)) return ValueResult::kMalformed;
      // s3.3.2.3.8 / s3.8.2.1.2: "It is a Protocol Error if the Subscription Identifier has a
      // value of 0."
      if (v == 0) return ValueResult::kOutOfRange;
      p->subscription_identifiers.push_back(v);
      return ValueResult::kOk;
    }
    case Id::kSessionExpiryInterval:
      return ReadU32(r, &p->session_expiry_interval);
    case Id::kAssignedClientIdentifier:
      return ReadStringProperty(r, &p->assigned_client_identifier);
    case Id::kServerKeepAlive:
      return ReadU16(r, &p->server_keep_alive);
    case Id::kAuthenticationMethod:
      return ReadStringProperty(r, &p->authentication_method);
    case Id::kAuthenticationData:
      return ReadBinaryProperty(r, &p->authentication_data);
    case Id::kRequestProblemInformation:
      return ReadFlagByte(r, &p->request_problem_information);
    case Id::kWillDelayInterval:
      return ReadU32(r, &p->will_delay_interval);
    case Id::kRequestResponseInformation:
      return ReadFlagByte(r, &p->request_response_information);
    case Id::kResponseInformation:
      return ReadStringProperty(r, &p->response_information);
    case Id::kServerReference:
      return ReadStringProperty(r, &p->server_reference);
    case Id::kReasonString:
      return ReadStringProperty(r, &p->reason_string);
    case Id::kReceiveMaximum:
      // s3.1.2.11.3 / s3.2.2.3.3: "It is a Protocol Error to include the Receive Maximum value
      // more than once or for it to have the value 0."
      return ReadU16(r, &p->receive_maximum, /*zero_allowed=*/false);
    case Id::kTopicAliasMaximum:
      return ReadU16(r, &p->topic_alias_maximum);
    case Id::kTopicAlias:
      // 0 is a Protocol Error too (s3.3.2.3.4), but the session layer checks aliases against
      // the negotiated Topic Alias Maximum and reports it; decode the value as sent.
      return ReadU16(r, &p->topic_alias);
    case Id::kMaximumQos:
      return ReadFlagByte(r, &p->maximum_qos);
    case Id::kRetainAvailable:
      return ReadFlagByte(r, &p->retain_available);
    case Id::kUserProperty: {
      std::string key;
      std::string value;
      if (!ReadString(r, &key) || !ReadString(r, &value)) return ValueResult::kMalformed;
      p->user_properties.emplace_back(std::move(key), std::move(value));
      return ValueResult::kOk;
    }
    case Id::kMaximumPacketSize:
      // s3.1.2.11.4 / s3.2.2.3.6: "It is a Protocol Error ... for the value to be set to zero."
      return ReadU32(r, &p->maximum_packet_size, /*zero_allowed=*/false);
    case Id::kWildcardSubscriptionAvailable:
      return ReadFlagByte(r, &p->wildcard_subscription_available);
    case Id::kSubscriptionIdentifierAvailable:
      return ReadFlagByte(r, &p->subscription_identifier_available);
    case Id::kSharedSubscriptionAvailable:
      return ReadFlagByte(r, &p->shared_subscription_available);
  }
  return ValueResult::kMalformed;  // not reached: AllowedIn() only admits the ids above
}

// --- encoding ---

size_t StringSize(const std::optional<std::string>& s) { return s ? 1 + 2 + s->size() : 0; }
template <typename T>
size_t IntSize(const std::optional<T>& v) {
  return v ? 1 + sizeof(T) : 0;
}

}  // namespace

ReasonCode DecodeProperties(ByteReader& reader, PropertyContext context, Properties* props) {
  uint32_t length = 0;
  ByteReader r;
  if (!reader.ReadVarInt(&length) || !reader.Split(length, &r)) {
    return ReasonCode::kMalformedPacket;
  }
  const uint64_t allowed = AllowedIn(context);
  uint64_t seen = 0;
  while (!r.empty()) {
    uint8_t raw_id = 0;
    if (!r.ReadU8(&raw_id)) return ReasonCode::kMalformedPacket;
    const uint64_t bit = raw_id < 64 ? uint64_t{1} << raw_id : 0;
    if ((allowed & bit) == 0) return ReasonCode::kMalformedPacket;
    const auto id = static_cast<Id>(raw_id);
    if ((seen & bit) != 0 && id != Id::kUserProperty &&
        !(id == Id::kSubscriptionIdentifier && context == PropertyContext::kPublish)) {
      // Every property section of s3.x: "It is a Protocol Error to include <it> more than once."
      return ReasonCode::kProtocolError;
    }
    seen |= bit;
    switch (ReadValue(r, id, props)) {
      case ValueResult::kOk:
        break;
      case ValueResult::kMalformed:
        return ReasonCode::kMalformedPacket;
      case ValueResult::kOutOfRange:
        return ReasonCode::kProtocolError;
    }
  }
  return ReasonCode::kSuccess;
}

size_t PropertiesSize(const Properties& p, PropertyContext context) {
  const uint64_t allowed = AllowedIn(context);
  auto on = [allowed](Id id) { return (allowed & Bit(id)) != 0; };
  size_t n = 0;
  if (on(Id::kPayloadFormatIndicator)) n += IntSize(p.payload_format_indicator);
  if (on(Id::kMessageExpiryInterval)) n += IntSize(p.message_expiry_interval);
  if (on(Id::kContentType)) n += StringSize(p.content_type);
  if (on(Id::kResponseTopic)) n += StringSize(p.response_topic);
  if (on(Id::kCorrelationData)) n += StringSize(p.correlation_data);
  if (on(Id::kSubscriptionIdentifier)) {
    for (uint32_t id : p.subscription_identifiers) {
      n += 1 + VarIntSize(id);
      if (context == PropertyContext::kSubscribe) break;
    }
  }
  if (on(Id::kSessionExpiryInterval)) n += IntSize(p.session_expiry_interval);
  if (on(Id::kAssignedClientIdentifier)) n += StringSize(p.assigned_client_identifier);
  if (on(Id::kServerKeepAlive)) n += IntSize(p.server_keep_alive);
  if (on(Id::kAuthenticationMethod)) n += StringSize(p.authentication_method);
  if (on(Id::kAuthenticationData)) n += StringSize(p.authentication_data);
  if (on(Id::kRequestProblemInformation)) n += IntSize(p.request_problem_information);
  if (on(Id::kWillDelayInterval)) n += IntSize(p.will_delay_interval);
  if (on(Id::kRequestResponseInformation)) n += IntSize(p.request_response_information);
  if (on(Id::kResponseInformation)) n += StringSize(p.response_information);
  if (on(Id::kServerReference)) n += StringSize(p.server_reference);
  if (on(Id::kReasonString)) n += StringSize(p.reason_string);
  if (on(Id::kReceiveMaximum)) n += IntSize(p.receive_maximum);
  if (on(Id::kTopicAliasMaximum)) n += IntSize(p.topic_alias_maximum);
  if (on(Id::kTopicAlias)) n += IntSize(p.topic_alias);
  if (on(Id::kMaximumQos)) n += IntSize(p.maximum_qos);
  if (on(Id::kRetainAvailable)) n += IntSize(p.retain_available);
  if (on(Id::kUserProperty)) {
    for (const auto& [key, value] : p.user_properties) n += 1 + 2 + key.size() + 2 + value.size();
  }
  if (on(Id::kMaximumPacketSize)) n += IntSize(p.maximum_packet_size);
  if (on(Id::kWildcardSubscriptionAvailable)) n += IntSize(p.wildcard_subscription_available);
  if (on(Id::kSubscriptionIdentifierAvailable)) {
    n += IntSize(p.subscription_identifier_available);
  }
  if (on(Id::kSharedSubscriptionAvailable)) n += IntSize(p.shared_subscription_available);
  return n;
}

void WriteProperties(ByteWriter& w, const Properties& p, PropertyContext context, size_t size) {
  w.VarInt(size);
  if (size == 0) return;
  const uint64_t allowed = AllowedIn(context);
  auto on = [allowed](Id id) { return (allowed & Bit(id)) != 0; };
  auto u8 = [&](Id id, const std::optional<uint8_t>& v) {
    if (on(id) && v) {
      w.U8(static_cast<uint8_t>(id));
      w.U8(*v);
    }
  };
  auto u16 = [&](Id id, const std::optional<uint16_t>& v) {
    if (on(id) && v) {
      w.U8(static_cast<uint8_t>(id));
      w.U16(*v);
    }
  };
  auto u32 = [&](Id id, const std::optional<uint32_t>& v) {
    if (on(id) && v) {
      w.U8(static_cast<uint8_t>(id));
      w.U32(*v);
    }
  };
  auto str = [&](Id id, const std::optional<std::string>& v) {
    if (on(id) && v) {
      w.U8(static_cast<uint8_t>(id));
      w.LengthPrefixed(*v);
    }
  };
  // Same order as PropertiesSize (ascending identifier).
  u8(Id::kPayloadFormatIndicator, p.payload_format_indicator);
  u32(Id::kMessageExpiryInterval, p.message_expiry_interval);
  str(Id::kContentType, p.content_type);
  str(Id::kResponseTopic, p.response_topic);
  str(Id::kCorrelationData, p.correlation_data);
  if (on(Id::kSubscriptionIdentifier)) {
    for (uint32_t id : p.subscription_identifiers) {
      w.U8(static_cast<uint8_t>(Id::kSubscriptionIdentifier));
      w.VarInt(id);
      if (context == PropertyContext::kSubscribe) break;
    }
  }
  u32(Id::kSessionExpiryInterval, p.session_expiry_interval);
  str(Id::kAssignedClientIdentifier, p.assigned_client_identifier);
  u16(Id::kServerKeepAlive, p.server_keep_alive);
  str(Id::kAuthenticationMethod, p.authentication_method);
  str(Id::kAuthenticationData, p.authentication_data);
  u8(Id::kRequestProblemInformation, p.request_problem_information);
  u32(Id::kWillDelayInterval, p.will_delay_interval);
  u8(Id::kRequestResponseInformation, p.request_response_information);
  str(Id::kResponseInformation, p.response_information);
  str(Id::kServerReference, p.server_reference);
  str(Id::kReasonString, p.reason_string);
  u16(Id::kReceiveMaximum, p.receive_maximum);
  u16(Id::kTopicAliasMaximum, p.topic_alias_maximum);
  u16(Id::kTopicAlias, p.topic_alias);
  u8(Id::kMaximumQos, p.maximum_qos);
  u8(Id::kRetainAvailable, p.retain_available);
  if (on(Id::kUserProperty)) {
    for (const auto& [key, value] : p.user_properties) {
      w.U8(static_cast<uint8_t>(Id::kUserProperty));
      w.LengthPrefixed(key);
      w.LengthPrefixed(value);
    }
  }
  u32(Id::kMaximumPacketSize, p.maximum_packet_size);
  u8(Id::kWildcardSubscriptionAvailable, p.wildcard_subscription_available);
  u8(Id::kSubscriptionIdentifierAvailable, p.subscription_identifier_available);
  u8(Id::kSharedSubscriptionAvailable, p.shared_subscription_available);
}

}  // namespace shardmq::broker::codec
