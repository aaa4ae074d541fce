// Raw MQTT bytes for tests, built independently of broker/codec so that the codec never grades its
// own homework (like Mosquitto's test/*/gen_* helpers). Do not include broker/codec here.
//
// Everything is spelled out the way the spec draws it (MQTT 3.1.1 s2-s3, MQTT 5 s1.5, s2, s3):
//   packet          = first byte (type << 4 | flags), Remaining Length (variable byte integer),
//   body UTF-8 string    = two-byte big-endian length, bytes binary data     = two-byte big-endian
//   length, bytes properties (v5) = property length (variable byte integer), then id + value per
//   property
// The builders do no validation, so tests can build malformed packets with them too: pass a QoS of
// 3, a bad flags byte or a raw property block and get exactly those bytes.
//
// `level` is the CONNECT protocol level: 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1) or 5 (5.0). Builders
// write a property block only when level >= 5.
//
// The option structs give every member a default so designated initializers can name only what
// a test cares about (and -Wmissing-field-initializers stays quiet).
//
// Header-only; part of shardmq_test_support.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardmq::wire {

using Bytes = std::vector<uint8_t>;

// ---- Conversions ----------------------------------------------------------------------------

inline Bytes FromString(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string ToString(const Bytes& b) { return std::string(b.begin(), b.end()); }

// Parses hex digits, ignoring spaces, newlines, commas and "0x" prefixes: Hex("10 0c 00 04").
// Malformed hex (odd digit count or a non-hex character) aborts: it is a bug in the test itself.
inline Bytes Hex(std::string_view text) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out;
  int high = -1;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == ' ' || c == '\n' || c == '\t' || c == ',') continue;
    if (c == '0' && i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X')) {
      ++i;
      continue;
    }
    int v = nibble(c);
    if (v < 0) __builtin_trap();  // bad test literal
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) __builtin_trap();  // odd number of hex digits in a test literal
  return out;
}

// "10 0c 00 04 ..." (lower case, space separated), for failure messages.
inline std::string ToHex(const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    if (i > 0) out.push_back(' ');
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0x0F]);
  }
  return out;
}
inline std::string ToHex(const Bytes& b) { return ToHex(b.data(), b.size()); }
inline std::string ToHex(std::string_view s) {
  return ToHex(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Concatenates any number of Bytes.
template <typename... Parts>
Bytes Cat(const Parts&... parts) {
  Bytes out;
  (out.insert(out.end(), parts.begin(), parts.end()), ...);
  return out;
}

// ---- Data types (MQTT 5 s1.5) ---------------------------------------------------------------

inline Bytes U8(uint8_t v) { return {v}; }
inline Bytes U16(uint16_t v) { return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; }
inline Bytes U32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// Variable Byte Integer, minimal encoding (s1.5.5): 7 bits per byte, low bits first, high bit set
// on every byte but the last. Values above 268435455 produce 5+ bytes (malformed on purpose).
inline Bytes Vbi(uint32_t v) {
  Bytes out;
  do {
    uint8_t byte = v % 128;
    v /= 128;
    if (v > 0) byte |= 0x80;
    out.push_back(byte);
  } while (v > 0);
  return out;
}

// UTF-8 Encoded String (s1.5.4) / Binary Data (s1.5.6): two-byte length then the bytes. The
// length is taken modulo 65536; tests wanting a lying length build it with U16 + FromString.
inline Bytes Str(std::string_view s) {
  return Cat(U16(static_cast<uint16_t>(s.size())), FromString(s));
}
inline Bytes Bin(std::string_view s) { return Str(s); }

// ---- Properties (MQTT 5 s2.2.2) -------------------------------------------------------------

// Wraps concatenated properties in a property block: Vbi(length) + properties.
inline Bytes Props(const Bytes& properties = {}) {
  return Cat(Vbi(static_cast<uint32_t>(properties.size())), properties);
}

// One property each: identifier byte (a VBI, but every defined id fits in one byte) + value.
namespace prop {
inline Bytes Byte(uint8_t id, uint8_t v) { return {id, v}; }
inline Bytes Two(uint8_t id, uint16_t v) { return Cat(U8(id), U16(v)); }
inline Bytes Four(uint8_t id, uint32_t v) { return Cat(U8(id), U32(v)); }
inline Bytes VarInt(uint8_t id, uint32_t v) { return Cat(U8(id), Vbi(v)); }
inline Bytes String(uint8_t id, std::string_view v) { return Cat(U8(id), Str(v)); }
inline Bytes Binary(uint8_t id, std::string_view v) { return Cat(U8(id), Bin(v)); }

inline Bytes PayloadFormatIndicator(uint8_t v) { return Byte(0x01, v); }
inline Bytes MessageExpiryInterval(uint32_t v) { return Four(0x02, v); }
inline Bytes ContentType(std::string_view v) { return String(0x03, v); }
inline Bytes ResponseTopic(std::string_view v) { return String(0x08, v); }
inline Bytes CorrelationData(std::string_view v) { return Binary(0x09, v); }
inline Bytes SubscriptionIdentifier(uint32_t v) { return VarInt(0x0B, v); }
inline Bytes SessionExpiryInterval(uint32_t v) { return Four(0x11, v); }
inline Bytes AssignedClientIdentifier(std::string_view v) { return String(0x12, v); }
inline Bytes ServerKeepAlive(uint16_t v) { return Two(0x13, v); }
inline Bytes AuthenticationMethod(std::string_view v) { return String(0x15, v); }
inline Bytes AuthenticationData(std::string_view v) { return Binary(0x16, v); }
inline Bytes RequestProblemInformation(uint8_t v) { return Byte(0x17, v); }
inline Bytes WillDelayInterval(uint32_t v) { return Four(0x18, v); }
inline Bytes RequestResponseInformation(uint8_t v) { return Byte(0x19, v); }
inline Bytes ResponseInformation(std::string_view v) { return String(0x1A, v); }
inline Bytes ServerReference(std::string_view v) { return String(0x1C, v); }
inline Bytes ReasonString(std::string_view v) { return String(0x1F, v); }
inline Bytes ReceiveMaximum(uint16_t v) { return Two(0x21, v); }
inline Bytes TopicAliasMaximum(uint16_t v) { return Two(0x22, v); }
inline Bytes TopicAlias(uint16_t v) { return Two(0x23, v); }
inline Bytes MaximumQos(uint8_t v) { return Byte(0x24, v); }
inline Bytes RetainAvailable(uint8_t v) { return Byte(0x25, v); }
inline Bytes UserProperty(std::string_view k, std::string_view v) {
  return Cat(U8(0x26), Str(k), Str(v));
}
inline Bytes MaximumPacketSize(uint32_t v) { return Four(0x27, v); }
inline Bytes WildcardSubscriptionAvailable(uint8_t v) { return Byte(0x28, v); }
inline Bytes SubscriptionIdentifierAvailable(uint8_t v) { return Byte(0x29, v); }
inline Bytes SharedSubscriptionAvailable(uint8_t v) { return Byte(0x2A, v); }
}  // namespace prop

// ---- Packets (MQTT 5 s3) --------------------------------------------------------------------

// Fixed header + body: first byte, Vbi(body size), body.
inline Bytes Packet(uint8_t first_byte, const Bytes& body) {
  return Cat(U8(first_byte), Vbi(static_cast<uint32_t>(body.size())), body);
}

// Property block for `level`: Props(properties) for v5, nothing before.
inline Bytes PropsFor(int level, const Bytes& properties) {
  return level >= 5 ? Props(properties) : Bytes{};
}

struct ConnectOptions {
  int level = 4;
  std::optional<std::string> protocol_name{};  // default: "MQIsdp" for level 3, else "MQTT"
  bool clean_start = true;
  uint16_t keep_alive = 60;
  Bytes properties{};  // v5 CONNECT properties, without the length
  std::string client_id = "client";
  bool will = false;
  uint8_t will_qos = 0;
  bool will_retain = false;
  Bytes will_properties{};  // v5, without the length
  std::string will_topic{};
  std::string will_payload{};
  std::optional<std::string> username{};
  std::optional<std::string> password{};
  uint8_t extra_flags = 0;  // OR-ed into the Connect Flags byte (e.g. 0x01 = reserved bit)
};

// CONNECT (s3.1). Connect Flags: bit 7 user name, 6 password, 5 will retain, 4-3 will QoS,
// 2 will flag, 1 clean start, 0 reserved. Payload order: client id, [will properties], will topic,
// will payload, user name, password; each present only when its flag is set.
inline Bytes Connect(const ConnectOptions& o) {
  std::string name = o.protocol_name.value_or(o.level == 3 ? "MQIsdp" : "MQTT");
  uint8_t flags = o.extra_flags;
  if (o.username) flags |= 0x80;
  if (o.password) flags |= 0x40;
  if (o.will_retain) flags |= 0x20;
  flags |= static_cast<uint8_t>((o.will_qos & 0x03) << 3);
  if (o.will) flags |= 0x04;
  if (o.clean_start) flags |= 0x02;
  Bytes body = Cat(Str(name), U8(static_cast<uint8_t>(o.level)), U8(flags), U16(o.keep_alive),
                   PropsFor(o.level, o.properties), Str(o.client_id));
  if (o.will) {
    body = Cat(body, PropsFor(o.level, o.will_properties), Str(o.will_topic), Bin(o.will_payload));
  }
  if (o.username) body = Cat(body, Str(*o.username));
  if (o.password) body = Cat(body, Bin(*o.password));
  return Packet(0x10, body);
}

// CONNACK (s3.2): acknowledge flags (bit 0 session present), return/reason code, [properties].
inline Bytes Connack(int level, bool session_present, uint8_t code, const Bytes& properties = {}) {
  return Packet(0x20, Cat(U8(session_present ? 1 : 0), U8(code), PropsFor(level, properties)));
}

struct PublishOptions {
  int level = 4;
  bool dup = false;
  uint8_t qos = 0;  // written as given, so 3 builds the malformed QoS 3
  bool retain = false;
  std::string topic = "a/b";
  uint16_t packet_id = 0;  // written when qos > 0
  Bytes properties{};      // v5, without the length
  std::string payload{};
};

// PUBLISH (s3.3): flags DUP(3) QoS(2-1) RETAIN(0); topic, [packet id], [properties], payload.
inline Bytes Publish(const PublishOptions& o) {
  uint8_t first = 0x30;
  if (o.dup) first |= 0x08;
  first |= static_cast<uint8_t>((o.qos & 0x03) << 1);
  if (o.retain) first |= 0x01;
  Bytes body = Str(o.topic);
  if (o.qos > 0) body = Cat(body, U16(o.packet_id));
  body = Cat(body, PropsFor(o.level, o.properties), FromString(o.payload));
  return Packet(first, body);
}

// PUBACK (0x40), PUBREC (0x50), PUBREL (0x62), PUBCOMP (0x70), s3.4-s3.7, in each of the three
// forms MQTT 5 allows: packet id only (also the 3.1.x form); + reason code; + reason + properties.
inline Bytes PubResponse(uint8_t first_byte, uint16_t packet_id) {
  return Packet(first_byte, U16(packet_id));
}
inline Bytes PubResponse(uint8_t first_byte, uint16_t packet_id, uint8_t reason) {
  return Packet(first_byte, Cat(U16(packet_id), U8(reason)));
}
inline Bytes PubResponse(uint8_t first_byte, uint16_t packet_id, uint8_t reason,
                         const Bytes& properties) {
  return Packet(first_byte, Cat(U16(packet_id), U8(reason), Props(properties)));
}
inline constexpr uint8_t kPuback = 0x40;
inline constexpr uint8_t kPubrec = 0x50;
inline constexpr uint8_t kPubrel = 0x62;
inline constexpr uint8_t kPubcomp = 0x70;

// Subscription Options byte (MQTT 5 s3.8.3.1): retain handling (5-4), RAP (3), no local (2),
// maximum QoS (1-0). In 3.1.1 only the QoS bits are defined.
inline uint8_t SubOptions(uint8_t max_qos, bool no_local = false, bool retain_as_published = false,
                          uint8_t retain_handling = 0) {
  return static_cast<uint8_t>((retain_handling & 0x03) << 4 | (retain_as_published ? 0x08 : 0) |
                              (no_local ? 0x04 : 0) | (max_qos & 0x03));
}

// SUBSCRIBE (s3.8), first byte 0x82: packet id, [properties], (filter, options byte)*.
inline Bytes Subscribe(int level, uint16_t packet_id,
                       const std::vector<std::pair<std::string, uint8_t>>& subscriptions,
                       const Bytes& properties = {}) {
  Bytes body = Cat(U16(packet_id), PropsFor(level, properties));
  for (const auto& [filter, options] : subscriptions) body = Cat(body, Str(filter), U8(options));
  return Packet(0x82, body);
}

// SUBACK (s3.9): packet id, [properties], one return/reason code per subscription.
inline Bytes Suback(int level, uint16_t packet_id, const Bytes& codes,
                    const Bytes& properties = {}) {
  return Packet(0x90, Cat(U16(packet_id), PropsFor(level, properties), codes));
}

// UNSUBSCRIBE (s3.10), first byte 0xA2: packet id, [properties], filter*.
inline Bytes Unsubscribe(int level, uint16_t packet_id, const std::vector<std::string>& filters,
                         const Bytes& properties = {}) {
  Bytes body = Cat(U16(packet_id), PropsFor(level, properties));
  for (const auto& filter : filters) body = Cat(body, Str(filter));
  return Packet(0xA2, body);
}

// UNSUBACK (s3.11): packet id; v5 adds properties and one reason code per filter. 3.1.x: the
// packet id only (`codes` and `properties` ignored).
inline Bytes Unsuback(int level, uint16_t packet_id, const Bytes& codes = {},
                      const Bytes& properties = {}) {
  if (level < 5) return Packet(0xB0, U16(packet_id));
  return Packet(0xB0, Cat(U16(packet_id), Props(properties), codes));
}

inline Bytes Pingreq() { return {0xC0, 0x00}; }
inline Bytes Pingresp() { return {0xD0, 0x00}; }

// DISCONNECT (s3.14): empty (3.1.x, or v5 normal disconnection), reason only, reason + properties.
inline Bytes Disconnect() { return {0xE0, 0x00}; }
inline Bytes Disconnect(uint8_t reason) { return Packet(0xE0, U8(reason)); }
inline Bytes Disconnect(uint8_t reason, const Bytes& properties) {
  return Packet(0xE0, Cat(U8(reason), Props(properties)));
}

// AUTH (MQTT 5 s3.15): empty (success), or reason + properties.
inline Bytes Auth() { return {0xF0, 0x00}; }
inline Bytes Auth(uint8_t reason, const Bytes& properties) {
  return Packet(0xF0, Cat(U8(reason), Props(properties)));
}

}  // namespace shardmq::wire
