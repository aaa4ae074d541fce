// MQTT decoder. Rules that are not obvious from the code:
//
//  - Framing first: the fixed header's first byte (type and flags) is checked as soon as it is
//    seen, then the Remaining Length; the size limit is applied before waiting for the body, so
//    an oversized packet is refused without buffering it.
//  - Within a packet, structural errors (a length running past the end, ill-formed UTF-8, bad
//    flag bits, leftover bytes) are kMalformedPacket; values that parse but are not allowed
//    (packet id 0, a reason code the packet may not carry, duplicated or out-of-range properties)
//    are kProtocolError, following the MQTT 5 s1.2 definitions of the two terms. The same codes
//    are used for 3.1/3.1.1, where the session layer turns either into a plain close.
//  - The decoder serves both ends of a connection (the broker, and the test/bench client), so it
//    decodes every packet type in either direction; the session layer rejects a packet sent the
//    wrong way (a client sending CONNACK, or a Subscription Identifier in a client's PUBLISH).
//
// Error -> reason code:
//   kMalformedPacket              bad fixed-header flags, reserved packet type (0, or 15 before
//                                 MQTT 5), PUBLISH QoS 3 or DUP with QoS 0, Remaining Length
//                                 over 4 bytes or non-minimal, any field past the end, trailing
//                                 bytes, ill-formed UTF-8, CONNECT reserved flag / will flags /
//                                 password without username (3.1.x), subscription options
//                                 reserved bits or QoS 3, property not allowed or unknown,
//                                 empty SUBSCRIBE/UNSUBSCRIBE/SUBACK list (3.1.x)
//   kProtocolError                non-CONNECT before CONNECT, wrong CONNECT protocol name,
//                                 packet id 0, reason code not allowed for the packet,
//                                 duplicated or out-of-range property, Authentication Data
//                                 without Authentication Method, Retain Handling 3, empty
//                                 SUBSCRIBE/UNSUBSCRIBE/SUBACK/UNSUBACK list (MQTT 5), MQTT 5
//                                 PUBLISH with an empty topic and no Topic Alias
//   kPacketTooLarge               whole packet larger than DecoderLimits::max_packet_size
//   kUnsupportedProtocolVersion   CONNECT with a valid name but a level other than 3 (MQIsdp)
//                                 or 4/5 (MQTT)
//   kTopicNameInvalid             PUBLISH topic with '+' or '#', empty PUBLISH topic (3.1.x),
//                                 will topic empty or with '+' or '#'
#include "broker/codec/decoder.h"

#include <initializer_list>
#include <string>
#include <string_view>

#include "broker/codec/byte_reader.h"
#include "broker/codec/property_codec.h"
#include "common/utf8.h"

namespace shardmq::broker::codec {
namespace {

constexpr ReasonCode kOk = ReasonCode::kSuccess;
constexpr ReasonCode kMalformed = ReasonCode::kMalformedPacket;
constexpr ReasonCode kProtocol = ReasonCode::kProtocolError;

// Propagates a non-success ReasonCode.
#define SHARDMQ_CODEC_TRY(expr)                                                        \
  do {                                                                                 \
    const ::shardmq::broker::codec::ReasonCode codec_rc_ = (expr);                     \
    if (codec_rc_ != ::shardmq::broker::codec::ReasonCode::kSuccess) return codec_rc_; \
  } while (0)

// A UTF-8 Encoded String (MQTT 5 s1.5.4, 3.1.1 s1.5.3): ill-formed -> Malformed Packet.
ReasonCode ReadString(ByteReader& r, std::string* out) {
  std::string_view s;
  if (!r.ReadLengthPrefixed(&s) || !utf8::IsValidMqttString(s)) return kMalformed;
  out->assign(s.data(), s.size());
  return kOk;
}

// Binary Data (MQTT 5 s1.5.6): not validated.
ReasonCode ReadBinary(ByteReader& r, std::string* out) {
  std::string_view s;
  if (!r.ReadLengthPrefixed(&s)) return kMalformed;
  out->assign(s.data(), s.size());
  return kOk;
}

ReasonCode ReadU16(ByteReader& r, uint16_t* v) { return r.ReadU16(v) ? kOk : kMalformed; }

ReasonCode ExpectEnd(const ByteReader& r) { return r.empty() ? kOk : kMalformed; }

// A plain loop: std::string_view::find_first_of calls memchr on the set once per character.
bool HasWildcard(std::string_view topic) {
  for (char c : topic) {
    if (c == '+' || c == '#') return true;
  }
  return false;
}

// SUBSCRIBE, UNSUBSCRIBE, SUBACK and UNSUBACK carry at least one entry. MQTT 5 s3.8.3 calls an
// empty list a Protocol Error; 3.1.1 s3.8.3 a "protocol violation", reported as malformed.
ReasonCode EmptyListError(ProtocolVersion v) {
  return v == ProtocolVersion::kV5 ? kProtocol : kMalformed;
}

// A set of reason code bytes.
class ReasonSet {
 public:
  constexpr ReasonSet(std::initializer_list<uint8_t> codes) {
    for (uint8_t c : codes) bits_[c >> 6] |= uint64_t{1} << (c & 63);
  }
  constexpr bool Contains(uint8_t c) const { return ((bits_[c >> 6] >> (c & 63)) & 1) != 0; }

 private:
  uint64_t bits_[4] = {};
};

// Reason codes each packet may carry (MQTT 5 s2.4 and each packet's section).
// CONNACK, s3.2.2.2.
constexpr ReasonSet kConnackReasons = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                       0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                       0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
// PUBACK and PUBREC, s3.4.2.1 and s3.5.2.1.
constexpr ReasonSet kPubackReasons = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
// PUBREL and PUBCOMP, s3.6.2.1 and s3.7.2.1.
constexpr ReasonSet kPubrelReasons = {0x00, 0x92};
// SUBACK: 3.1.1 s3.9.3, then MQTT 5 s3.9.3.
constexpr ReasonSet kSuback311Reasons = {0x00, 0x01, 0x02, 0x80};
constexpr ReasonSet kSubackReasons = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                      0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
// UNSUBACK, s3.11.3.
constexpr ReasonSet kUnsubackReasons = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
// DISCONNECT, s3.14.2.1.
constexpr ReasonSet kDisconnectReasons = {
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
    0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
// AUTH, s3.15.2.1.
constexpr ReasonSet kAuthReasons = {0x00, 0x18, 0x19};

bool IsPubResponseReason(PacketType type, uint8_t rc) {
  const bool pubrel_like = type == PacketType::kPubrel || type == PacketType::kPubcomp;
  return (pubrel_like ? kPubrelReasons : kPubackReasons).Contains(rc);
}

// Checks the first byte of the fixed header (MQTT 5 s2.1.2, s2.1.3; 3.1.1 s2.2).
ReasonCode CheckFirstByte(uint8_t first, std::optional<ProtocolVersion> version) {
  const uint8_t type = first >> 4;
  const uint8_t flags = first & 0x0F;
  if (type == 0) return kMalformed;  // reserved
  if (!version.has_value()) {
    // 3.1.1 s3.1 / MQTT 5 s3.1: the first packet from the client MUST be CONNECT.
    if (type != static_cast<uint8_t>(PacketType::kConnect)) return kProtocol;
  } else if (type == static_cast<uint8_t>(PacketType::kAuth) && *version != ProtocolVersion::kV5) {
    return kMalformed;  // 15 is reserved before MQTT 5
  }
  switch (static_cast<PacketType>(type)) {
    case PacketType::kPublish: {
      const uint8_t qos = (flags >> 1) & 0x03;
      if (qos == 3) return kMalformed;  // s3.3.1.2
      // s3.3.1.1: "The DUP flag MUST be set to 0 for all QoS 0 messages."
      if (qos == 0 && (flags & 0x08) != 0) return kMalformed;
      return kOk;
    }
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      if (flags == 0x02) return kOk;
      // MQTT 3.1 (level 3) sets DUP on retried PUBREL/SUBSCRIBE/UNSUBSCRIBE; 3.1.1 removed it.
      if (flags == 0x0A && version == ProtocolVersion::kV31) return kOk;
      return kMalformed;
    default:
      return flags == 0 ? kOk : kMalformed;
  }
}

// --- one function per packet: `r` holds exactly the Remaining Length bytes ---

ReasonCode DecodeConnect(ByteReader& r, DecodeResult* result) {
  // s3.1.2.1 / 3.1.1 s3.1.2.1: a wrong protocol name means this is not MQTT; the server MAY
  // disconnect and must not answer in MQTT terms, so connect_level stays unset.
  std::string_view name;
  uint8_t level = 0;
  if (!r.ReadLengthPrefixed(&name)) return kMalformed;
  const bool mqtt = name == "MQTT";
  const bool mqisdp = name == "MQIsdp";
  if (!mqtt && !mqisdp) return kProtocol;
  if (!r.ReadU8(&level)) return kMalformed;
  result->connect_level = level;
  ProtocolVersion v = ProtocolVersion::kV311;
  if (mqisdp && level == 3) {
    v = ProtocolVersion::kV31;
  } else if (mqtt && level == 4) {
    v = ProtocolVersion::kV311;
  } else if (mqtt && level == 5) {
    v = ProtocolVersion::kV5;
  } else {
    // 3.1.1 s3.1.2.2: answer CONNACK 0x01 (MQTT 5: 0x84), then disconnect.
    return ReasonCode::kUnsupportedProtocolVersion;
  }

  Connect& c = result->packet.emplace<Connect>();
  c.version = v;
  c.protocol_name.assign(name.data(), name.size());

  uint8_t flags = 0;
  if (!r.ReadU8(&flags) || !r.ReadU16(&c.keep_alive)) return kMalformed;
  // s3.1.2.3: "The Server MUST validate that the reserved flag in the CONNECT packet is set to 0".
  if ((flags & 0x01) != 0) return kMalformed;
  c.clean_start = (flags & 0x02) != 0;
  const bool will_flag = (flags & 0x04) != 0;
  const uint8_t will_qos = (flags >> 3) & 0x03;
  const bool will_retain = (flags & 0x20) != 0;
  const bool password_flag = (flags & 0x40) != 0;
  const bool username_flag = (flags & 0x80) != 0;
  // s3.1.2.6, s3.1.2.7: without a will, Will QoS and Will Retain MUST be 0; QoS 3 is invalid.
  if (!will_flag && (will_qos != 0 || will_retain)) return kMalformed;
  if (will_qos == 3) return kMalformed;
  // 3.1.1 s3.1.2.9: "If the User Name Flag is set to 0, the Password Flag MUST be set to 0".
  // MQTT 5 s3.1.2.9 dropped that rule.
  if (password_flag && !username_flag && v != ProtocolVersion::kV5) return kMalformed;

  if (v == ProtocolVersion::kV5) {
    SHARDMQ_CODEC_TRY(DecodeProperties(r, PropertyContext::kConnect, &c.properties));
  }
  // Payload order (s3.1.3): client id, will properties, will topic, will payload, user name,
  // password.
  SHARDMQ_CODEC_TRY(ReadString(r, &c.client_id));
  if (will_flag) {
    Will& will = c.will.emplace();
    will.qos = will_qos;
    will.retain = will_retain;
    if (v == ProtocolVersion::kV5) {
      SHARDMQ_CODEC_TRY(DecodeProperties(r, PropertyContext::kWill, &will.properties));
    }
    SHARDMQ_CODEC_TRY(ReadString(r, &will.topic));
    SHARDMQ_CODEC_TRY(ReadBinary(r, &will.payload));
  }
  if (username_flag) SHARDMQ_CODEC_TRY(ReadString(r, &c.username.emplace()));
  if (password_flag) SHARDMQ_CODEC_TRY(ReadBinary(r, &c.password.emplace()));
  SHARDMQ_CODEC_TRY(ExpectEnd(r));

  // Checks on values that parsed.
  // s3.1.2.11.10: "It is a Protocol Error to include Authentication Data if there is no
  // Authentication Method."
  if (c.properties.authentication_data && !c.properties.authentication_method) return kProtocol;
  // s3.1.3.3: the Will Topic is a topic name; wildcards or an empty name make it invalid.
  if (c.will && (c.will->topic.empty() || HasWildcard(c.will->topic))) {
    return ReasonCode::kTopicNameInvalid;
  }
  return kOk;
}

ReasonCode DecodeConnack(ByteReader& r, ProtocolVersion v, DecodeResult* result) {
  Connack& c = result->packet.emplace<Connack>();
  uint8_t ack_flags = 0;
  if (!r.ReadU8(&ack_flags) || !r.ReadU8(&c.reason_code)) return kMalformed;
  if (v == ProtocolVersion::kV31) {
    // 3.1 s3.2: the first byte is reserved and unused; there is no Session Present.
    return ExpectEnd(r);
  }
  // s3.2.2.1: bits 7-1 are reserved and MUST be 0.
  if ((ack_flags & 0xFE) != 0) return kMalformed;
  c.session_present = (ack_flags & 0x01) != 0;
  if (v == ProtocolVersion::kV5) {
    SHARDMQ_CODEC_TRY(DecodeProperties(r, PropertyContext::kConnack, &c.properties));
  }
  SHARDMQ_CODEC_TRY(ExpectEnd(r));
  // 3.1.1 return codes are kept raw (0..5; 6..255 are reserved but harmless to a client).
  if (v == ProtocolVersion::kV5 && !kConnackReasons.Contains(c.reason_code)) return kProtocol;
  return kOk;
}

ReasonCode DecodePublish(ByteReader& r, uint8_t flags, ProtocolVersion v, DecodeResult* result) {
  Publish& p = result->packet.emplace<Publish>();
  p.dup = (flags & 0x08) != 0;
  p.qos = (flags >> 1) & 0x03;
  p.retain = (flags & 0x01) != 0;
  std::string_view topic;
  if (!r.ReadLengthPrefixed(&topic) || !utf8::IsValidMqttString(topic)) return kMalformed;
  if (p.qos > 0) SHARDMQ_CODEC_TRY(ReadU16(r, &p.packet_id));
  if (v == ProtocolVersion::kV5) {
    SHARDMQ_CODEC_TRY(DecodeProperties(r, PropertyContext::kPublish, &p.properties));
  }
  // s3.3.3: the payload is the rest of the packet; it may be empty. (A Payload Format Indicator
  // of 1 MAY be checked against the payload; that is the session layer's choice.)
  const std::string_view payload = r.ReadRest();
  // One allocation each (short topics fit the small-string buffer and need none).
  p.topic.assign(topic.data(), topic.size());
  p.payload.assign(payload.data(), payload.size());

  // s2.2.1: PUBLISH with QoS > 0 MUST carry a non-zero Packet Identifier.
  if (p.qos > 0 && p.packet_id == 0) return kProtocol;
  // s3.3.2.1: "The Topic Name in the PUBLISH packet MUST NOT contain wildcard characters."
  if (HasWildcard(topic)) return ReasonCode::kTopicNameInvalid;
  if (topic.empty()) {
    // MQTT 5 s3.3.2.3.4: an empty topic goes with a Topic Alias; "It is a Protocol Error if the
    // Topic Name is zero length and there is no Topic Alias." 3.1.1 s4.7.3: topic names are at
    // least one character long.
    if (v != ProtocolVersion::kV5) return ReasonCode::kTopicNameInvalid;
    if (!p.properties.topic_alias) return kProtocol;
  }
  return kOk;
}

ReasonCode DecodePubResponse(ByteReader& r, PacketType type, ProtocolVersion v,
                             DecodeResult* result) {
  PubResponse& p = result->packet.emplace<PubResponse>();
  p.type = type;
  SHARDMQ_CODEC_TRY(ReadU16(r, &p.packet_id));
  // MQTT 5 s3.4.2.1: Remaining Length 2 means Success without properties; with less than 4 there
  // is no Property Length. 3.1.x: the packet id is all there is.
  if (v == ProtocolVersion::kV5 && !r.empty()) {
    uint8_t rc = 0;
    if (!r.ReadU8(&rc)) return kMalformed;
    p.reason = static_cast<ReasonCode>(rc);
    if (!r.empty()) {
      SHARDMQ_CODEC_TRY(DecodeProperties(r, PropertyContext::kPubResponse, &p.properties));
    }
  }
  SHARDMQ_CODEC_TRY(ExpectEnd(r));
  if (p.packet_id == 0) return kProtocol;  // s2.2.1
  if (!IsPubResponseReason(type, static_cast<uint8_t>(p.reason))) return kProtocol;
  return kOk;
}

ReasonCode DecodeSubscribe(ByteReader& r, ProtocolVersion v, DecodeResult* result) {
  Subscribe& s = result->packet.emplace<Subscribe>();
  SHARDMQ_CODEC_TRY(ReadU16(r, &s.packet_id));
  if (v == ProtocolVersion::kV5) {
    SHARDMQ_CODEC_TRY(DecodeProperties(r, PropertyContext::kSubscribe, &s.properties));
  }
  if (r.empty()) return EmptyListError(v);
  bool retain_handling_3 = false;
  while (!r.empty()) {
    SubscriptionRequest& sub = s.subscriptions.emplace_back();
    // The filter's syntax (wildcard placement, empty filter, $share) is checked by the session
    // layer, which answers with a per-filter reason code instead of closing.
    SHARDMQ_CODEC_TRY(ReadString(r, &sub.filter));
    uint8_t options = 0;
    if (!r.ReadU8(&options)) return kMalformed;
    sub.max_qos = options & 0x03;
    // MQTT 5 s3.8.3.1: Protocol Error; 3.1.1 [MQTT-3.8.3-4]: malformed.
    if (sub.max_qos == 3) return v == ProtocolVersion::kV5 ? ReasonCode::kProtocolError : kMalformed;
    if (v == ProtocolVersion::kV5) {
      if ((options & 0xC0) != 0) return kMalformed;  // s3.8.3.1: bits 6-7 reserved
      sub.no_local = (options & 0x04) != 0;
      sub.retain_as_published = (options & 0x08) != 0;
      sub.retain_handling = (options >> 4) & 0x03;
      // s3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
      if (sub.retain_handling == 3) retain_handling_3 = true;
    } else if ((options & 0xFC) != 0) {
      return kMalformed;  // 3.1.1 s3.8.3.1: bits 2-7 reserved
    }
  }
  if (s.packet_id == 0) return kProtocol;  // s2.2.1
  if (retain_handling_3) return kProtocol;
  return kOk;
}

ReasonCode DecodeSuback(ByteReader& r, ProtocolVersion v, DecodeResult* result) {
  Suback& s = result->packet.emplace<Suback>();
  SHARDMQ_CODEC_TRY(ReadU16(r, &s.packet_id));
  if (v == ProtocolVersion::kV5) {
    SHARDMQ_CODEC_TRY(DecodeProperties(r, PropertyContext::kSuback, &s.properties));
  }
  const std::string_view codes = r.ReadRest();
  if (codes.empty()) return EmptyListError(v);
  s.reason_codes.assign(codes.begin(), codes.end());
  if (s.packet_id == 0) return kProtocol;
  // 3.1 SUBACK carries granted QoS values only; 0x80 (failure) is accepted from it too.
  const ReasonSet& allowed = v == ProtocolVersion::kV5 ? kSubackReasons : kSuback311Reasons;
  for (uint8_t rc : s.reason_codes) {
    if (!allowed.Contains(rc)) return kProtocol;
  }
  return kOk;
}

ReasonCode DecodeUnsubscribe(ByteReader& r, ProtocolVersion v, DecodeResult* result) {
  Unsubscribe& u = result->packet.emplace<Unsubscribe>();
  SHARDMQ_CODEC_TRY(ReadU16(r, &u.packet_id));
  if (v == ProtocolVersion::kV5) {
    SHARDMQ_CODEC_TRY(DecodeProperties(r, PropertyContext::kUnsubscribe, &u.properties));
  }
  if (r.empty()) return EmptyListError(v);  // s3.10.3
  while (!r.empty()) SHARDMQ_CODEC_TRY(ReadString(r, &u.filters.emplace_back()));
  if (u.packet_id == 0) return kProtocol;
  return kOk;
}

ReasonCode DecodeUnsuback(ByteReader& r, ProtocolVersion v, DecodeResult* result) {
  Unsuback& u = result->packet.emplace<Unsuback>();
  SHARDMQ_CODEC_TRY(ReadU16(r, &u.packet_id));
  if (v == ProtocolVersion::kV5) {
    SHARDMQ_CODEC_TRY(DecodeProperties(r, PropertyContext::kUnsuback, &u.properties));
    const std::string_view codes = r.ReadRest();
    if (codes.empty()) return EmptyListError(v);
    u.reason_codes.assign(codes.begin(), codes.end());
  }
  SHARDMQ_CODEC_TRY(ExpectEnd(r));
  if (u.packet_id == 0) return kProtocol;
  for (uint8_t rc : u.reason_codes) {
    if (!kUnsubackReasons.Contains(rc)) return kProtocol;
  }
  return kOk;
}

// DISCONNECT and AUTH (MQTT 5): Remaining Length 0 means Success without properties; 1 means a
// reason code without properties (s3.14.2.2.1 says so for DISCONNECT; accepted for AUTH too).
template <typename T>
ReasonCode DecodeReasonAndProperties(ByteReader& r, PropertyContext context, T* packet) {
  if (r.empty()) return kOk;
  uint8_t rc = 0;
  if (!r.ReadU8(&rc)) return kMalformed;
  packet->reason = static_cast<ReasonCode>(rc);
  if (!r.empty()) SHARDMQ_CODEC_TRY(DecodeProperties(r, context, &packet->properties));
  return ExpectEnd(r);
}

ReasonCode DecodeDisconnect(ByteReader& r, ProtocolVersion v, DecodeResult* result) {
  Disconnect& d = result->packet.emplace<Disconnect>();
  if (v != ProtocolVersion::kV5) return ExpectEnd(r);  // 3.1.1 s3.14: no variable header
  SHARDMQ_CODEC_TRY(DecodeReasonAndProperties(r, PropertyContext::kDisconnect, &d));
  return kDisconnectReasons.Contains(static_cast<uint8_t>(d.reason)) ? kOk : kProtocol;
}

ReasonCode DecodeAuth(ByteReader& r, DecodeResult* result) {
  Auth& a = result->packet.emplace<Auth>();
  SHARDMQ_CODEC_TRY(DecodeReasonAndProperties(r, PropertyContext::kAuth, &a));
  // Whether the Authentication Method is present and matches CONNECT's is the session layer's
  // check (s3.15.2.2.2), as Remaining Length 0 is a valid AUTH without it.
  return kAuthReasons.Contains(static_cast<uint8_t>(a.reason)) ? kOk : kProtocol;
}

ReasonCode DecodeBody(ByteReader& r, uint8_t first, std::optional<ProtocolVersion> version,
                      DecodeResult* result) {
  const auto type = static_cast<PacketType>(first >> 4);
  if (type == PacketType::kConnect) return DecodeConnect(r, result);
  // CheckFirstByte let only CONNECT through without a version.
  const ProtocolVersion v = version.value_or(ProtocolVersion::kV311);
  switch (type) {
    case PacketType::kConnect:
      break;  // handled above
    case PacketType::kConnack:
      return DecodeConnack(r, v, result);
    case PacketType::kPublish:
      return DecodePublish(r, first & 0x0F, v, result);
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return DecodePubResponse(r, type, v, result);
    case PacketType::kSubscribe:
      return DecodeSubscribe(r, v, result);
    case PacketType::kSuback:
      return DecodeSuback(r, v, result);
    case PacketType::kUnsubscribe:
      return DecodeUnsubscribe(r, v, result);
    case PacketType::kUnsuback:
      return DecodeUnsuback(r, v, result);
    case PacketType::kPingreq:
      result->packet.emplace<Pingreq>();
      return ExpectEnd(r);
    case PacketType::kPingresp:
      result->packet.emplace<Pingresp>();
      return ExpectEnd(r);
    case PacketType::kDisconnect:
      return DecodeDisconnect(r, v, result);
    case PacketType::kAuth:
      return DecodeAuth(r, result);
  }
  return kMalformed;  // type 0, already rejected by CheckFirstByte
}

#undef SHARDMQ_CODEC_TRY

// Turns `result` into an error report.
void SetError(DecodeResult* result, ReasonCode error) {
  result->status = DecodeResult::Status::kError;
  result->error = error;
  result->consumed = 0;
  result->needed = 0;
  result->packet.emplace<Pingreq>();  // drop whatever was partly decoded
}

}  // namespace

DecodeResult Decode(std::span<const uint8_t> data, std::optional<ProtocolVersion> version,
                    const DecoderLimits& limits) {
  // Every return names `result`, so it is built in place (no move of a decoded PUBLISH).
  DecodeResult result;
  if (data.empty()) return result;  // kNeedMore, size unknown

  const uint8_t first = data[0];
  if (const ReasonCode rc = CheckFirstByte(first, version); rc != kOk) {
    SetError(&result, rc);
    return result;
  }

  uint32_t remaining_length = 0;
  size_t length_bytes = 0;
  switch (ParseVarInt(data.data() + 1, data.size() - 1, &remaining_length, &length_bytes)) {
    case VarIntStatus::kOk:
      break;
    case VarIntStatus::kNeedMore:
      return result;
    case VarIntStatus::kMalformed:
      SetError(&result, kMalformed);
      return result;
  }
  const size_t total = 1 + length_bytes + static_cast<size_t>(remaining_length);
  // Checked before the body is waited for or allocated; the limit counts the whole packet,
  // fixed header included (as MQTT 5 s3.1.2.11.4 counts Maximum Packet Size).
  if (total > limits.max_packet_size) {
    SetError(&result, ReasonCode::kPacketTooLarge);
    return result;
  }
  if (data.size() < total) {
    result.needed = total;
    return result;
  }

  ByteReader body(data.data() + 1 + length_bytes, remaining_length);
  if (const ReasonCode rc = DecodeBody(body, first, version, &result); rc != kOk) {
    SetError(&result, rc);
    return result;
  }
  result.status = DecodeResult::Status::kPacket;
  result.consumed = total;
  return result;
}

}  // namespace shardmq::broker::codec
