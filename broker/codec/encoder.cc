// MQTT encoder. Each packet is planned first (Remaining Length and property block sizes), the
// output reserved once, then written; EncodedSize() runs the same plan, so it always equals what
// Encode() appends.
//
// Choices the headers leave open:
//  - CONNECT is encoded for the `version` argument: its protocol name and level follow from it
//    ("MQIsdp"/3, "MQTT"/4, "MQTT"/5); Connect::version and Connect::protocol_name are not read.
//  - MQTT 5 properties are encoded only when set and only if the packet may carry them
//    (MQTT 5 s2.2.2.2); SUBSCRIBE carries at most the first Subscription Identifier.
//  - MQTT 5 short forms, as the spec allows: PUBACK/PUBREC/PUBREL/PUBCOMP with Success and no
//    properties are 2 bytes, with another reason and no properties 3; DISCONNECT with Success
//    and no properties is empty, with another reason and no properties 1 byte; AUTH with Success
//    and no properties is empty, otherwise it always has a Property Length (s3.15.2.2.1 has no
//    1-byte form).
//  - AUTH does not exist before MQTT 5: for 3.1/3.1.1 nothing is written (size 0).
//  - PUBLISH with QoS 0 never has DUP set (s3.3.1.1) nor a packet identifier.
#include "broker/codec/encoder.h"

#include <cassert>
#include <string_view>
#include <type_traits>
#include <variant>

#include "broker/codec/byte_writer.h"
#include "broker/codec/property_codec.h"

namespace shardmq::broker::codec {
namespace {

// Sizes computed before writing.
struct Plan {
  bool skip = false;      // nothing to write (AUTH before MQTT 5)
  size_t body = 0;        // Remaining Length
  size_t props = 0;       // property bytes, without the Property Length
  size_t will_props = 0;  // CONNECT will property bytes
};

bool IsV5(ProtocolVersion v) { return v == ProtocolVersion::kV5; }

size_t StringSize(std::string_view s) { return 2 + s.size(); }

// Property Length field plus the properties.
size_t PropertyBlockSize(size_t props) { return VarIntSize(props) + props; }

size_t TotalSize(const Plan& plan) { return plan.skip ? 0 : 1 + VarIntSize(plan.body) + plan.body; }

std::string_view ProtocolName(ProtocolVersion v) {
  return v == ProtocolVersion::kV31 ? std::string_view("MQIsdp") : std::string_view("MQTT");
}

// --- CONNECT (s3.1) ---

Plan PlanFor(const Connect& c, ProtocolVersion v) {
  Plan plan;
  plan.body = StringSize(ProtocolName(v)) + 1 + 1 + 2;  // name, level, flags, keep alive
  if (IsV5(v)) {
    plan.props = PropertiesSize(c.properties, PropertyContext::kConnect);
    plan.body += PropertyBlockSize(plan.props);
  }
  plan.body += StringSize(c.client_id);
  if (c.will) {
    if (IsV5(v)) {
      plan.will_props = PropertiesSize(c.will->properties, PropertyContext::kWill);
      plan.body += PropertyBlockSize(plan.will_props);
    }
    plan.body += StringSize(c.will->topic) + StringSize(c.will->payload);
  }
  if (c.username) plan.body += StringSize(*c.username);
  if (c.password) plan.body += StringSize(*c.password);
  return plan;
}

uint8_t FirstByte(const Connect&) { return 0x10; }

void WriteBody(ByteWriter& w, const Connect& c, ProtocolVersion v, const Plan& plan) {
  w.LengthPrefixed(ProtocolName(v));
  w.U8(static_cast<uint8_t>(v));
  uint8_t flags = 0;
  if (c.clean_start) flags |= 0x02;
  if (c.will) {
    flags |= 0x04;
    flags |= static_cast<uint8_t>((c.will->qos & 0x03) << 3);
    if (c.will->retain) flags |= 0x20;
  }
  if (c.password) flags |= 0x40;
  if (c.username) flags |= 0x80;
  w.U8(flags);
  w.U16(c.keep_alive);
  if (IsV5(v)) WriteProperties(w, c.properties, PropertyContext::kConnect, plan.props);
  w.LengthPrefixed(c.client_id);
  if (c.will) {
    if (IsV5(v)) WriteProperties(w, c.will->properties, PropertyContext::kWill, plan.will_props);
    w.LengthPrefixed(c.will->topic);
    w.LengthPrefixed(c.will->payload);
  }
  if (c.username) w.LengthPrefixed(*c.username);
  if (c.password) w.LengthPrefixed(*c.password);
}

// --- CONNACK (s3.2) ---

Plan PlanFor(const Connack& c, ProtocolVersion v) {
  Plan plan;
  plan.body = 2;
  if (IsV5(v)) {
    plan.props = PropertiesSize(c.properties, PropertyContext::kConnack);
    plan.body += PropertyBlockSize(plan.props);
  }
  return plan;
}

uint8_t FirstByte(const Connack&) { return 0x20; }

void WriteBody(ByteWriter& w, const Connack& c, ProtocolVersion v, const Plan& plan) {
  // 3.1 has no Session Present: the byte is reserved.
  w.U8(c.session_present && v != ProtocolVersion::kV31 ? 0x01 : 0x00);
  w.U8(c.reason_code);
  if (IsV5(v)) WriteProperties(w, c.properties, PropertyContext::kConnack, plan.props);
}

// --- PUBLISH (s3.3) ---

Plan PlanPublish(const Publish& p, size_t payload_size, ProtocolVersion v) {
  Plan plan;
  plan.body = StringSize(p.topic) + (p.qos > 0 ? 2 : 0) + payload_size;
  if (IsV5(v)) {
    plan.props = PropertiesSize(p.properties, PropertyContext::kPublish);
    plan.body += PropertyBlockSize(plan.props);
  }
  return plan;
}

uint8_t PublishFirstByte(const Publish& p) {
  const uint8_t qos = p.qos & 0x03;
  uint8_t first = static_cast<uint8_t>(0x30 | (qos << 1));
  if (p.dup && qos > 0) first |= 0x08;
  if (p.retain) first |= 0x01;
  return first;
}

// --- PUBACK, PUBREC, PUBREL, PUBCOMP (s3.4 - s3.7) ---

Plan PlanFor(const PubResponse& p, ProtocolVersion v) {
  Plan plan;
  plan.body = 2;
  if (IsV5(v)) {
    plan.props = PropertiesSize(p.properties, PropertyContext::kPubResponse);
    if (plan.props > 0) {
      plan.body += 1 + PropertyBlockSize(plan.props);
    } else if (p.reason != ReasonCode::kSuccess) {
      plan.body += 1;
    }
  }
  return plan;
}

uint8_t FirstByte(const PubResponse& p) {
  assert(p.type == PacketType::kPuback || p.type == PacketType::kPubrec ||
         p.type == PacketType::kPubrel || p.type == PacketType::kPubcomp);
  // PUBREL's fixed header flags are 0b0010 (s3.6.1).
  return static_cast<uint8_t>(static_cast<uint8_t>(p.type) << 4) |
         (p.type == PacketType::kPubrel ? 0x02 : 0x00);
}

void WriteBody(ByteWriter& w, const PubResponse& p, ProtocolVersion v, const Plan& plan) {
  w.U16(p.packet_id);
  if (plan.body > 2) w.U8(static_cast<uint8_t>(p.reason));
  if (plan.props > 0) WriteProperties(w, p.properties, PropertyContext::kPubResponse, plan.props);
}

// --- SUBSCRIBE (s3.8) ---

Plan PlanFor(const Subscribe& s, ProtocolVersion v) {
  Plan plan;
  plan.body = 2;
  if (IsV5(v)) {
    plan.props = PropertiesSize(s.properties, PropertyContext::kSubscribe);
    plan.body += PropertyBlockSize(plan.props);
  }
  for (const SubscriptionRequest& sub : s.subscriptions) plan.body += StringSize(sub.filter) + 1;
  return plan;
}

uint8_t FirstByte(const Subscribe&) { return 0x82; }

void WriteBody(ByteWriter& w, const Subscribe& s, ProtocolVersion v, const Plan& plan) {
  w.U16(s.packet_id);
  if (IsV5(v)) WriteProperties(w, s.properties, PropertyContext::kSubscribe, plan.props);
  for (const SubscriptionRequest& sub : s.subscriptions) {
    w.LengthPrefixed(sub.filter);
    uint8_t options = sub.max_qos & 0x03;
    if (IsV5(v)) {
      if (sub.no_local) options |= 0x04;
      if (sub.retain_as_published) options |= 0x08;
      options |= static_cast<uint8_t>((sub.retain_handling & 0x03) << 4);
    }
    w.U8(options);
  }
}

// --- SUBACK (s3.9) ---

Plan PlanFor(const Suback& s, ProtocolVersion v) {
  Plan plan;
  plan.body = 2 + s.reason_codes.size();
  if (IsV5(v)) {
    plan.props = PropertiesSize(s.properties, PropertyContext::kSuback);
    plan.body += PropertyBlockSize(plan.props);
  }
  return plan;
}

uint8_t FirstByte(const Suback&) { return 0x90; }

void WriteBody(ByteWriter& w, const Suback& s, ProtocolVersion v, const Plan& plan) {
  w.U16(s.packet_id);
  if (IsV5(v)) WriteProperties(w, s.properties, PropertyContext::kSuback, plan.props);
  w.Raw(std::string_view(reinterpret_cast<const char*>(s.reason_codes.data()),
                         s.reason_codes.size()));
}

// --- UNSUBSCRIBE (s3.10) ---

Plan PlanFor(const Unsubscribe& u, ProtocolVersion v) {
  Plan plan;
  plan.body = 2;
  if (IsV5(v)) {
    plan.props = PropertiesSize(u.properties, PropertyContext::kUnsubscribe);
    plan.body += PropertyBlockSize(plan.props);
  }
  for (const std::string& filter : u.filters) plan.body += StringSize(filter);
  return plan;
}

uint8_t FirstByte(const Unsubscribe&) { return 0xA2; }

void WriteBody(ByteWriter& w, const Unsubscribe& u, ProtocolVersion v, const Plan& plan) {
  w.U16(u.packet_id);
  if (IsV5(v)) WriteProperties(w, u.properties, PropertyContext::kUnsubscribe, plan.props);
  for (const std::string& filter : u.filters) w.LengthPrefixed(filter);
}

// --- UNSUBACK (s3.11): 3.1.x has the packet id only ---

Plan PlanFor(const Unsuback& u, ProtocolVersion v) {
  Plan plan;
  plan.body = 2;
  if (IsV5(v)) {
    plan.props = PropertiesSize(u.properties, PropertyContext::kUnsuback);
    plan.body += PropertyBlockSize(plan.props) + u.reason_codes.size();
  }
  return plan;
}

uint8_t FirstByte(const Unsuback&) { return 0xB0; }

void WriteBody(ByteWriter& w, const Unsuback& u, ProtocolVersion v, const Plan& plan) {
  w.U16(u.packet_id);
  if (!IsV5(v)) return;
  WriteProperties(w, u.properties, PropertyContext::kUnsuback, plan.props);
  w.Raw(std::string_view(reinterpret_cast<const char*>(u.reason_codes.data()),
                         u.reason_codes.size()));
}

// --- PINGREQ, PINGRESP (s3.12, s3.13) ---

Plan PlanFor(const Pingreq&, ProtocolVersion) { return Plan{}; }
Plan PlanFor(const Pingresp&, ProtocolVersion) { return Plan{}; }
uint8_t FirstByte(const Pingreq&) { return 0xC0; }
uint8_t FirstByte(const Pingresp&) { return 0xD0; }
void WriteBody(ByteWriter&, const Pingreq&, ProtocolVersion, const Plan&) {}
void WriteBody(ByteWriter&, const Pingresp&, ProtocolVersion, const Plan&) {}

// --- DISCONNECT (s3.14): empty in 3.1.x ---

Plan PlanFor(const Disconnect& d, ProtocolVersion v) {
  Plan plan;
  if (!IsV5(v)) return plan;
  plan.props = PropertiesSize(d.properties, PropertyContext::kDisconnect);
  if (plan.props > 0) {
    plan.body = 1 + PropertyBlockSize(plan.props);
  } else if (d.reason != ReasonCode::kSuccess) {
    plan.body = 1;
  }
  return plan;
}

uint8_t FirstByte(const Disconnect&) { return 0xE0; }

void WriteBody(ByteWriter& w, const Disconnect& d, ProtocolVersion v, const Plan& plan) {
  if (plan.body == 0) return;
  w.U8(static_cast<uint8_t>(d.reason));
  if (plan.props > 0) WriteProperties(w, d.properties, PropertyContext::kDisconnect, plan.props);
}

// --- AUTH (s3.15): MQTT 5 only ---

Plan PlanFor(const Auth& a, ProtocolVersion v) {
  Plan plan;
  if (!IsV5(v)) {
    plan.skip = true;
    return plan;
  }
  plan.props = PropertiesSize(a.properties, PropertyContext::kAuth);
  if (plan.props > 0 || a.reason != ReasonCode::kSuccess) {
    plan.body = 1 + PropertyBlockSize(plan.props);
  }
  return plan;
}

uint8_t FirstByte(const Auth&) { return 0xF0; }

void WriteBody(ByteWriter& w, const Auth& a, ProtocolVersion, const Plan& plan) {
  if (plan.body == 0) return;
  w.U8(static_cast<uint8_t>(a.reason));
  WriteProperties(w, a.properties, PropertyContext::kAuth, plan.props);
}

// Writes the fixed header and reserves the whole packet. Returns the start offset for the
// size check.
size_t BeginPacket(ByteWriter& w, std::string* out, uint8_t first, const Plan& plan) {
  const size_t start = out->size();
  ReserveFor(out, TotalSize(plan));
  w.U8(first);
  w.VarInt(plan.body);
  return start;
}

template <typename T>
void EncodeOne(const T& packet, ProtocolVersion v, std::string* out) {
  const Plan plan = PlanFor(packet, v);
  if (plan.skip) return;
  ByteWriter w(out);
  [[maybe_unused]] const size_t start = BeginPacket(w, out, FirstByte(packet), plan);
  WriteBody(w, packet, v, plan);
  assert(out->size() - start == TotalSize(plan));  // the plan and the writer agree
}

}  // namespace

void EncodePublish(const Publish& header, std::string_view payload, ProtocolVersion version,
                   std::string* out) {
  const Plan plan = PlanPublish(header, payload.size(), version);
  ByteWriter w(out);
  [[maybe_unused]] const size_t start = BeginPacket(w, out, PublishFirstByte(header), plan);
  w.LengthPrefixed(header.topic);
  if (header.qos > 0) w.U16(header.packet_id);
  if (IsV5(version)) WriteProperties(w, header.properties, PropertyContext::kPublish, plan.props);
  w.Raw(payload);
  assert(out->size() - start == TotalSize(plan));
}

size_t PublishSize(const Publish& header, size_t payload_size, ProtocolVersion version) {
  return TotalSize(PlanPublish(header, payload_size, version));
}

void Encode(const Packet& packet, ProtocolVersion version, std::string* out) {
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Publish>) {
          EncodePublish(p, p.payload, version, out);
        } else {
          EncodeOne(p, version, out);
        }
      },
      packet);
}

size_t EncodedSize(const Packet& packet, ProtocolVersion version) {
  return std::visit(
      [&](const auto& p) -> size_t {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Publish>) {
          return PublishSize(p, p.payload.size(), version);
        } else {
          return TotalSize(PlanFor(p, version));
        }
      },
      packet);
}

}  // namespace shardmq::broker::codec
