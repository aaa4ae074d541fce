// Shared helpers for the codec tests: gtest printers for the packet types (so a failed EXPECT_EQ
// shows fields, not a byte dump) and small Decode/Encode wrappers.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "broker/codec/decoder.h"
#include "broker/codec/encoder.h"
#include "broker/codec/packets.h"
#include "tests/support/mqtt_wire.h"

namespace shardmq::broker::codec {

inline const char* ReasonCodeName(ReasonCode code) {
  switch (code) {
    case ReasonCode::kSuccess:
      return "kSuccess";
    case ReasonCode::kGrantedQos1:
      return "kGrantedQos1";
    case ReasonCode::kGrantedQos2:
      return "kGrantedQos2";
    case ReasonCode::kDisconnectWithWill:
      return "kDisconnectWithWill";
    case ReasonCode::kNoMatchingSubscribers:
      return "kNoMatchingSubscribers";
    case ReasonCode::kNoSubscriptionExisted:
      return "kNoSubscriptionExisted";
    case ReasonCode::kContinueAuthentication:
      return "kContinueAuthentication";
    case ReasonCode::kReauthenticate:
      return "kReauthenticate";
    case ReasonCode::kUnspecifiedError:
      return "kUnspecifiedError";
    case ReasonCode::kMalformedPacket:
      return "kMalformedPacket";
    case ReasonCode::kProtocolError:
      return "kProtocolError";
    case ReasonCode::kImplementationSpecificError:
      return "kImplementationSpecificError";
    case ReasonCode::kUnsupportedProtocolVersion:
      return "kUnsupportedProtocolVersion";
    case ReasonCode::kClientIdentifierNotValid:
      return "kClientIdentifierNotValid";
    case ReasonCode::kBadUserNameOrPassword:
      return "kBadUserNameOrPassword";
    case ReasonCode::kNotAuthorized:
      return "kNotAuthorized";
    case ReasonCode::kServerUnavailable:
      return "kServerUnavailable";
    case ReasonCode::kServerBusy:
      return "kServerBusy";
    case ReasonCode::kBanned:
      return "kBanned";
    case ReasonCode::kServerShuttingDown:
      return "kServerShuttingDown";
    case ReasonCode::kBadAuthenticationMethod:
      return "kBadAuthenticationMethod";
    case ReasonCode::kKeepAliveTimeout:
      return "kKeepAliveTimeout";
    case ReasonCode::kSessionTakenOver:
      return "kSessionTakenOver";
    case ReasonCode::kTopicFilterInvalid:
      return "kTopicFilterInvalid";
    case ReasonCode::kTopicNameInvalid:
      return "kTopicNameInvalid";
    case ReasonCode::kPacketIdentifierInUse:
      return "kPacketIdentifierInUse";
    case ReasonCode::kPacketIdentifierNotFound:
      return "kPacketIdentifierNotFound";
    case ReasonCode::kReceiveMaximumExceeded:
      return "kReceiveMaximumExceeded";
    case ReasonCode::kTopicAliasInvalid:
      return "kTopicAliasInvalid";
    case ReasonCode::kPacketTooLarge:
      return "kPacketTooLarge";
    case ReasonCode::kMessageRateTooHigh:
      return "kMessageRateTooHigh";
    case ReasonCode::kQuotaExceeded:
      return "kQuotaExceeded";
    case ReasonCode::kAdministrativeAction:
      return "kAdministrativeAction";
    case ReasonCode::kPayloadFormatInvalid:
      return "kPayloadFormatInvalid";
    case ReasonCode::kRetainNotSupported:
      return "kRetainNotSupported";
    case ReasonCode::kQosNotSupported:
      return "kQosNotSupported";
    case ReasonCode::kUseAnotherServer:
      return "kUseAnotherServer";
    case ReasonCode::kServerMoved:
      return "kServerMoved";
    case ReasonCode::kSharedSubscriptionsNotSupported:
      return "kSharedSubscriptionsNotSupported";
    case ReasonCode::kConnectionRateExceeded:
      return "kConnectionRateExceeded";
    case ReasonCode::kMaximumConnectTime:
      return "kMaximumConnectTime";
    case ReasonCode::kSubscriptionIdentifiersNotSupported:
      return "kSubscriptionIdentifiersNotSupported";
    case ReasonCode::kWildcardSubscriptionsNotSupported:
      return "kWildcardSubscriptionsNotSupported";
  }
  return "?";
}

inline void PrintTo(ReasonCode code, std::ostream* os) {
  static constexpr char kDigits[] = "0123456789abcdef";
  auto v = static_cast<uint8_t>(code);
  *os << ReasonCodeName(code) << " (0x" << kDigits[v >> 4] << kDigits[v & 0xF] << ")";
}

inline void PrintTo(DecodeResult::Status status, std::ostream* os) {
  switch (status) {
    case DecodeResult::Status::kNeedMore:
      *os << "kNeedMore";
      return;
    case DecodeResult::Status::kPacket:
      *os << "kPacket";
      return;
    case DecodeResult::Status::kError:
      *os << "kError";
      return;
  }
  *os << "Status(" << static_cast<int>(status) << ")";
}

inline void PrintTo(ProtocolVersion v, std::ostream* os) { *os << "level " << static_cast<int>(v); }

inline void PrintTo(PacketType t, std::ostream* os) { *os << "type " << static_cast<int>(t); }

namespace test_internal {
// Strings may hold binary data: print them as hex when they are not plain printable ASCII.
inline std::string Quote(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7E) return "hex[" + wire::ToHex(s) + "]";
  }
  return "\"" + s + "\"";
}
template <typename T>
void Field(std::ostream* os, const char* name, const std::optional<T>& v) {
  if (!v) return;
  *os << " " << name << "=";
  if constexpr (std::is_same_v<T, std::string>) {
    *os << Quote(*v);
  } else {
    *os << static_cast<uint64_t>(*v);
  }
}
}  // namespace test_internal

inline void PrintTo(const Properties& p, std::ostream* os) {
  using test_internal::Field;
  *os << "{";
  Field(os, "payload_format_indicator", p.payload_format_indicator);
  Field(os, "message_expiry_interval", p.message_expiry_interval);
  Field(os, "content_type", p.content_type);
  Field(os, "response_topic", p.response_topic);
  Field(os, "correlation_data", p.correlation_data);
  if (!p.subscription_identifiers.empty()) {
    *os << " subscription_identifiers=[";
    for (uint32_t id : p.subscription_identifiers) *os << " " << id;
    *os << " ]";
  }
  Field(os, "session_expiry_interval", p.session_expiry_interval);
  Field(os, "assigned_client_identifier", p.assigned_client_identifier);
  Field(os, "server_keep_alive", p.server_keep_alive);
  Field(os, "authentication_method", p.authentication_method);
  Field(os, "authentication_data", p.authentication_data);
  Field(os, "request_problem_information", p.request_problem_information);
  Field(os, "will_delay_interval", p.will_delay_interval);
  Field(os, "request_response_information", p.request_response_information);
  Field(os, "response_information", p.response_information);
  Field(os, "server_reference", p.server_reference);
  Field(os, "reason_string", p.reason_string);
  Field(os, "receive_maximum", p.receive_maximum);
  Field(os, "topic_alias_maximum", p.topic_alias_maximum);
  Field(os, "topic_alias", p.topic_alias);
  Field(os, "maximum_qos", p.maximum_qos);
  Field(os, "retain_available", p.retain_available);
  for (const auto& [k, v] : p.user_properties) {
    *os << " user_property=" << test_internal::Quote(k) << ":" << test_internal::Quote(v);
  }
  Field(os, "maximum_packet_size", p.maximum_packet_size);
  Field(os, "wildcard_subscription_available", p.wildcard_subscription_available);
  Field(os, "subscription_identifier_available", p.subscription_identifier_available);
  Field(os, "shared_subscription_available", p.shared_subscription_available);
  *os << " }";
}

inline void PrintTo(const Will& w, std::ostream* os) {
  *os << "Will{topic=" << test_internal::Quote(w.topic)
      << " payload=" << test_internal::Quote(w.payload) << " qos=" << int{w.qos}
      << " retain=" << w.retain << " properties=";
  PrintTo(w.properties, os);
  *os << "}";
}

inline void PrintTo(const Connect& c, std::ostream* os) {
  *os << "Connect{level=" << static_cast<int>(c.version)
      << " protocol_name=" << test_internal::Quote(c.protocol_name)
      << " clean_start=" << c.clean_start << " keep_alive=" << c.keep_alive
      << " client_id=" << test_internal::Quote(c.client_id) << " will=";
  if (c.will) {
    PrintTo(*c.will, os);
  } else {
    *os << "none";
  }
  *os << " username=" << (c.username ? test_internal::Quote(*c.username) : "none")
      << " password=" << (c.password ? test_internal::Quote(*c.password) : "none")
      << " properties=";
  PrintTo(c.properties, os);
  *os << "}";
}

inline void PrintTo(const Connack& c, std::ostream* os) {
  *os << "Connack{session_present=" << c.session_present << " reason_code=" << int{c.reason_code}
      << " properties=";
  PrintTo(c.properties, os);
  *os << "}";
}

inline void PrintTo(const Publish& p, std::ostream* os) {
  *os << "Publish{dup=" << p.dup << " qos=" << int{p.qos} << " retain=" << p.retain
      << " topic=" << test_internal::Quote(p.topic) << " packet_id=" << p.packet_id
      << " payload=" << test_internal::Quote(p.payload) << " properties=";
  PrintTo(p.properties, os);
  *os << "}";
}

inline void PrintTo(const PubResponse& p, std::ostream* os) {
  *os << "PubResponse{type=" << static_cast<int>(p.type) << " packet_id=" << p.packet_id
      << " reason=";
  PrintTo(p.reason, os);
  *os << " properties=";
  PrintTo(p.properties, os);
  *os << "}";
}

inline void PrintTo(const Subscribe& s, std::ostream* os) {
  *os << "Subscribe{packet_id=" << s.packet_id << " subscriptions=[";
  for (const auto& r : s.subscriptions) {
    *os << " {" << test_internal::Quote(r.filter) << " max_qos=" << int{r.max_qos}
        << " nl=" << r.no_local << " rap=" << r.retain_as_published
        << " rh=" << int{r.retain_handling} << "}";
  }
  *os << " ] properties=";
  PrintTo(s.properties, os);
  *os << "}";
}

inline void PrintCodes(const std::vector<uint8_t>& codes, std::ostream* os) {
  *os << "[" << wire::ToHex(codes.data(), codes.size()) << "]";
}

inline void PrintTo(const Suback& s, std::ostream* os) {
  *os << "Suback{packet_id=" << s.packet_id << " reason_codes=";
  PrintCodes(s.reason_codes, os);
  *os << " properties=";
  PrintTo(s.properties, os);
  *os << "}";
}

inline void PrintTo(const Unsubscribe& u, std::ostream* os) {
  *os << "Unsubscribe{packet_id=" << u.packet_id << " filters=[";
  for (const auto& f : u.filters) *os << " " << test_internal::Quote(f);
  *os << " ] properties=";
  PrintTo(u.properties, os);
  *os << "}";
}

inline void PrintTo(const Unsuback& u, std::ostream* os) {
  *os << "Unsuback{packet_id=" << u.packet_id << " reason_codes=";
  PrintCodes(u.reason_codes, os);
  *os << " properties=";
  PrintTo(u.properties, os);
  *os << "}";
}

inline void PrintTo(const Pingreq&, std::ostream* os) { *os << "Pingreq{}"; }
inline void PrintTo(const Pingresp&, std::ostream* os) { *os << "Pingresp{}"; }

inline void PrintTo(const Disconnect& d, std::ostream* os) {
  *os << "Disconnect{reason=";
  PrintTo(d.reason, os);
  *os << " properties=";
  PrintTo(d.properties, os);
  *os << "}";
}

inline void PrintTo(const Auth& a, std::ostream* os) {
  *os << "Auth{reason=";
  PrintTo(a.reason, os);
  *os << " properties=";
  PrintTo(a.properties, os);
  *os << "}";
}

namespace test_internal {
inline std::string Describe(const Packet& packet) {
  std::ostringstream os;
  std::visit([&os](const auto& p) { PrintTo(p, &os); }, packet);
  return os.str();
}
}  // namespace test_internal

// Decode over a byte vector.
inline DecodeResult DecodeBytes(const wire::Bytes& bytes, std::optional<ProtocolVersion> version,
                                const DecoderLimits& limits = {}) {
  return Decode(std::span<const uint8_t>(bytes.data(), bytes.size()), version, limits);
}

// Encode into a fresh byte vector.
inline wire::Bytes EncodeBytes(const Packet& packet, ProtocolVersion version) {
  std::string out;
  Encode(packet, version, &out);
  return wire::FromString(out);
}

// "1 kPacket consumed=9 <packet>" / "kError kMalformedPacket", for failure messages.
inline std::string DescribeResult(const DecodeResult& r) {
  std::ostringstream os;
  PrintTo(r.status, &os);
  os << " consumed=" << r.consumed << " needed=" << r.needed;
  if (r.status == DecodeResult::Status::kError) {
    os << " error=";
    PrintTo(r.error, &os);
    if (r.connect_level) os << " connect_level=" << int{*r.connect_level};
  }
  if (r.status == DecodeResult::Status::kPacket) os << " " << test_internal::Describe(r.packet);
  return os.str();
}

}  // namespace shardmq::broker::codec
