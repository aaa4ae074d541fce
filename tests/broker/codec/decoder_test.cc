// Decoder tests, table-driven from raw bytes built by tests/support/mqtt_wire.h (independent of
// the codec) or copied from the spec. Versions: MQTT 3.1 (level 3), 3.1.1 (level 4), 5.0 (level 5).
//
// Spec references: "v5 s2.1.3" is MQTT Version 5.0 (OASIS Standard, 2019) section 2.1.3;
// "3.1.1 s3.8.3" is MQTT Version 3.1.1 (OASIS Standard, 2014). Where the spec names the reason
// code, the error table expects exactly that code; where it only says the packet is invalid
// ("MUST", "protocol violation") the table lists every code the spec would permit.
#include "broker/codec/decoder.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "broker/codec/encoder.h"
#include "broker/codec/packets.h"
#include "gtest/gtest.h"
#include "tests/broker/codec/codec_test_util.h"
#include "tests/support/mqtt_wire.h"

namespace shardmq::broker::codec {
namespace {

namespace w = ::shardmq::wire;
using namespace std::string_literals;  // "\x00..."s keeps embedded NULs
using V = ProtocolVersion;
using Status = DecodeResult::Status;

constexpr std::optional<ProtocolVersion> kBeforeConnect = std::nullopt;

// Number of bytes of the fixed header of a (complete enough) packet: 1 + length of the Remaining
// Length VBI, computed here independently of the codec.
size_t FixedHeaderSize(const w::Bytes& bytes) {
  size_t i = 1;
  while (i < bytes.size() && (bytes[i] & 0x80) != 0) ++i;
  return i + 1;
}

// ---------------------------------------------------------------------------------------------
// Valid packets
// ---------------------------------------------------------------------------------------------

struct ValidCase {
  std::string name;
  std::optional<ProtocolVersion> version;  // the connection's version (nullopt before CONNECT)
  w::Bytes bytes;
  Packet expected;
};

void PrintTo(const ValidCase& c, std::ostream* os) { *os << c.name; }

std::vector<ValidCase> ValidCases() {
  std::vector<ValidCase> cases;
  auto add = [&cases](std::string name, std::optional<ProtocolVersion> v, w::Bytes bytes,
                      Packet expected) {
    cases.push_back({std::move(name), v, std::move(bytes), std::move(expected)});
  };

  // ---- CONNECT (s3.1) ----
  add("V31ConnectMinimal", kBeforeConnect,
      w::Connect({.level = 3, .clean_start = true, .keep_alive = 60, .client_id = "client"}),
      Connect{.version = V::kV31,
              .protocol_name = "MQIsdp",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = "client"});
  // MQTT 3.1 CONNECT as the 3.1 spec draws it: 00 06 "MQIsdp" 03 flags keepalive.
  add("V31ConnectLiteral", kBeforeConnect,
      w::Hex("10 12 00 06 4d 51 49 73 64 70 03 02 00 0a 00 04 63 6c 69 64"),
      Connect{.version = V::kV31,
              .protocol_name = "MQIsdp",
              .clean_start = true,
              .keep_alive = 10,
              .client_id = "clid"});
  add("V31ConnectWillUserPassword", kBeforeConnect,
      w::Connect({.level = 3,
                  .clean_start = false,
                  .keep_alive = 10,
                  .client_id = "c31",
                  .will = true,
                  .will_qos = 1,
                  .will_retain = true,
                  .will_topic = "will/t",
                  .will_payload = "bye",
                  .username = "u",
                  .password = "p"}),
      Connect{.version = V::kV31,
              .protocol_name = "MQIsdp",
              .clean_start = false,
              .keep_alive = 10,
              .client_id = "c31",
              .will = Will{.topic = "will/t", .payload = "bye", .qos = 1, .retain = true},
              .username = "u",
              .password = "p"});
  // 3.1.1 s3.1: 00 04 'M' 'Q' 'T' 'T', level 4, flags 0x02 (clean session), keep alive 60.
  add("V311ConnectLiteral", kBeforeConnect,
      w::Hex("10 10 00 04 4d 51 54 54 04 02 00 3c 00 04 63 6c 69 64"),
      Connect{.version = V::kV311,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = "clid"});
  add("V311ConnectFull", kBeforeConnect,
      w::Connect({.level = 4,
                  .clean_start = false,
                  .keep_alive = 0,
                  .client_id = "dev-1",
                  .will = true,
                  .will_qos = 2,
                  .will_topic = "status/dev-1",
                  .will_payload = "\x00\xff off"s,
                  .username = "user",
                  .password = "\x00\x01\xfe\xff"s}),
      Connect{.version = V::kV311,
              .protocol_name = "MQTT",
              .clean_start = false,
              .keep_alive = 0,
              .client_id = "dev-1",
              .will = Will{.topic = "status/dev-1", .payload = "\x00\xff off"s, .qos = 2},
              .username = "user",
              .password = "\x00\x01\xfe\xff"s});
  add("V311ConnectEmptyClientId", kBeforeConnect, w::Connect({.level = 4, .client_id = ""}),
      Connect{.version = V::kV311,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = ""});
  add("V311ConnectUsernameOnly", kBeforeConnect,
      w::Connect({.level = 4, .client_id = "c", .username = "only-user"}),
      Connect{.version = V::kV311,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = "c",
              .username = "only-user"});
  // s1.5.4: EF BB BF is U+FEFF and MUST NOT be skipped or stripped.
  add("V311ConnectKeepsByteOrderMark", kBeforeConnect,
      w::Connect({.level = 4, .client_id = "\xef\xbb\xbfid"}),
      Connect{.version = V::kV311,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = "\xef\xbb\xbfid"});
  add("V311ConnectWillEmptyPayload", kBeforeConnect,
      w::Connect({.level = 4, .client_id = "c", .will = true, .will_topic = "t"}),
      Connect{.version = V::kV311,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = "c",
              .will = Will{.topic = "t"}});
  add("V5ConnectMinimal", kBeforeConnect, w::Connect({.level = 5}),
      Connect{.version = V::kV5,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = "client"});
  // v5 s3.1.2.11 CONNECT properties and s3.1.3.2 will properties, each one once.
  add("V5ConnectAllProperties", kBeforeConnect,
      w::Connect({.level = 5,
                  .clean_start = true,
                  .keep_alive = 30,
                  .properties = w::Cat(
                      w::prop::SessionExpiryInterval(3600), w::prop::ReceiveMaximum(20),
                      w::prop::MaximumPacketSize(65536), w::prop::TopicAliasMaximum(10),
                      w::prop::RequestResponseInformation(1), w::prop::RequestProblemInformation(0),
                      w::prop::UserProperty("k1", "v1"), w::prop::UserProperty("k1", "v2"),
                      w::prop::AuthenticationMethod("SCRAM-SHA-1"),
                      w::prop::AuthenticationData("\x01\x00\x02"s)),
                  .client_id = "v5-client",
                  .will = true,
                  .will_qos = 2,
                  .will_retain = true,
                  .will_properties = w::Cat(
                      w::prop::WillDelayInterval(30), w::prop::PayloadFormatIndicator(1),
                      w::prop::MessageExpiryInterval(120), w::prop::ContentType("text/plain"),
                      w::prop::ResponseTopic("resp/t"), w::prop::CorrelationData("\x00\xff"s),
                      w::prop::UserProperty("wk", "wv")),
                  .will_topic = "lwt",
                  .will_payload = "gone",
                  .username = "name",
                  .password = "pw"}),
      Connect{.version = V::kV5,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 30,
              .client_id = "v5-client",
              .will = Will{.topic = "lwt",
                           .payload = "gone",
                           .qos = 2,
                           .retain = true,
                           .properties = Properties{.payload_format_indicator = 1,
                                                    .message_expiry_interval = 120,
                                                    .content_type = "text/plain",
                                                    .response_topic = "resp/t",
                                                    .correlation_data = "\x00\xff"s,
                                                    .will_delay_interval = 30,
                                                    .user_properties = {{"wk", "wv"}}}},
              .username = "name",
              .password = "pw",
              .properties = Properties{.session_expiry_interval = 3600,
                                       .authentication_method = "SCRAM-SHA-1",
                                       .authentication_data = "\x01\x00\x02"s,
                                       .request_problem_information = 0,
                                       .request_response_information = 1,
                                       .receive_maximum = 20,
                                       .topic_alias_maximum = 10,
                                       .user_properties = {{"k1", "v1"}, {"k1", "v2"}},
                                       .maximum_packet_size = 65536}});
  // v5 s3.1.2.9: unlike 3.1.1, a password without a user name is allowed.
  add("V5ConnectPasswordWithoutUsername", kBeforeConnect,
      w::Connect({.level = 5, .client_id = "c", .password = "secret"}),
      Connect{.version = V::kV5,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = "c",
              .password = "secret"});
  // decoder.h: `version` is ignored for CONNECT, which carries its own.
  add("ConnectIgnoresNegotiatedVersion", V::kV311, w::Connect({.level = 5, .client_id = "c"}),
      Connect{.version = V::kV5,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = "c"});

  // ---- CONNACK (s3.2; server to client, decoded for round trips and clients) ----
  add("V311ConnackSessionPresent", V::kV311, w::Hex("20 02 01 00"),
      Connack{.session_present = true, .reason_code = 0});
  add("V311ConnackRefused", V::kV311, w::Hex("20 02 00 05"), Connack{.reason_code = 5});
  add("V5ConnackProperties", V::kV5,
      w::Connack(5, false, 0x00,
                 w::Cat(w::prop::AssignedClientIdentifier("auto-1"), w::prop::ServerKeepAlive(30),
                        w::prop::ReceiveMaximum(100), w::prop::MaximumQos(1),
                        w::prop::RetainAvailable(0), w::prop::TopicAliasMaximum(5))),
      Connack{.properties = Properties{.assigned_client_identifier = "auto-1",
                                       .server_keep_alive = 30,
                                       .receive_maximum = 100,
                                       .topic_alias_maximum = 5,
                                       .maximum_qos = 1,
                                       .retain_available = 0}});

  // ---- PUBLISH (s3.3) ----
  // 3.1.1 example: topic "a/b", payload "hi".
  add("V311PublishQos0Literal", V::kV311, w::Hex("30 07 00 03 61 2f 62 68 69"),
      Publish{.topic = "a/b", .payload = "hi"});
  add("V311PublishQos1DupRetain", V::kV311,
      w::Publish({.level = 4,
                  .dup = true,
                  .qos = 1,
                  .retain = true,
                  .topic = "sensors/t",
                  .packet_id = 10,
                  .payload = "21.5"}),
      Publish{.dup = true,
              .qos = 1,
              .retain = true,
              .topic = "sensors/t",
              .packet_id = 10,
              .payload = "21.5"});
  add("V311PublishQos2", V::kV311,
      w::Publish({.level = 4, .qos = 2, .topic = "x", .packet_id = 0xFFFF, .payload = "p"}),
      Publish{.qos = 2, .topic = "x", .packet_id = 0xFFFF, .payload = "p"});
  add("V311PublishEmptyPayload", V::kV311, w::Publish({.level = 4, .topic = "t"}),
      Publish{.topic = "t"});
  // The payload is application data: any bytes, including ones that are not UTF-8.
  add("V311PublishBinaryPayload", V::kV311,
      w::Publish({.level = 4, .topic = "t", .payload = "\x00\xff\xc0\x80"s}),
      Publish{.topic = "t", .payload = "\x00\xff\xc0\x80"s});
  add("V311PublishUtf8Topic", V::kV311,
      w::Publish({.level = 4, .topic = "temp\xc3\xa9rature/\xe6\x97\xa5\xf0\x9f\x98\x80"}),
      Publish{.topic = "temp\xc3\xa9rature/\xe6\x97\xa5\xf0\x9f\x98\x80"});
  add("V311PublishDollarTopic", V::kV311, w::Publish({.level = 4, .topic = "$SYS/x"}),
      Publish{.topic = "$SYS/x"});
  add("V31PublishQos1", V::kV31,
      w::Publish({.level = 3, .qos = 1, .topic = "a", .packet_id = 1, .payload = "v31"}),
      Publish{.qos = 1, .topic = "a", .packet_id = 1, .payload = "v31"});
  add("V311PublishLargePayload", V::kV311,
      w::Publish({.level = 4, .topic = "big", .payload = std::string(20000, 'x')}),
      Publish{.topic = "big", .payload = std::string(20000, 'x')});
  add("V5PublishQos0NoProperties", V::kV5,
      w::Publish({.level = 5, .topic = "a/b", .payload = "hello"}),
      Publish{.topic = "a/b", .payload = "hello"});
  // v5 s3.3.2.3: every PUBLISH property. Written out of id order on purpose.
  add("V5PublishQos1AllProperties", V::kV5,
      w::Publish({.level = 5,
                  .qos = 1,
                  .topic = "a/b",
                  .packet_id = 77,
                  .properties = w::Cat(
                      w::prop::UserProperty("a", "1"), w::prop::PayloadFormatIndicator(1),
                      w::prop::MessageExpiryInterval(60), w::prop::TopicAlias(3),
                      w::prop::ResponseTopic("reply/to"), w::prop::CorrelationData("\x00\x01"s),
                      w::prop::UserProperty("b", "2"), w::prop::SubscriptionIdentifier(1),
                      w::prop::SubscriptionIdentifier(268435455),
                      w::prop::ContentType("application/json")),
                  .payload = "{}"}),
      Publish{.qos = 1,
              .topic = "a/b",
              .packet_id = 77,
              .properties = Properties{.payload_format_indicator = 1,
                                       .message_expiry_interval = 60,
                                       .content_type = "application/json",
                                       .response_topic = "reply/to",
                                       .correlation_data = "\x00\x01"s,
                                       .subscription_identifiers = {1, 268435455},
                                       .topic_alias = 3,
                                       .user_properties = {{"a", "1"}, {"b", "2"}}},
              .payload = "{}"});
  // v5 s3.3.2.3.4: the topic may be empty when a Topic Alias is present.
  add("V5PublishQos2TopicAliasOnly", V::kV5,
      w::Publish({.level = 5,
                  .qos = 2,
                  .topic = "",
                  .packet_id = 5,
                  .properties = w::prop::TopicAlias(7),
                  .payload = "z"}),
      Publish{.qos = 2,
              .topic = "",
              .packet_id = 5,
              .properties = Properties{.topic_alias = 7},
              .payload = "z"});
  add("V5PublishSubscriptionIdentifierMultiByte", V::kV5,
      w::Publish({.level = 5, .topic = "t", .properties = w::prop::SubscriptionIdentifier(16384)}),
      Publish{.topic = "t", .properties = Properties{.subscription_identifiers = {16384}}});
  add("V5PublishLargePayload", V::kV5,
      w::Publish(
          {.level = 5, .qos = 1, .topic = "big", .packet_id = 2, .payload = std::string(300, 'y')}),
      Publish{.qos = 1, .topic = "big", .packet_id = 2, .payload = std::string(300, 'y')});

  // ---- PUBACK / PUBREC / PUBREL / PUBCOMP (s3.4 - s3.7) ----
  // `error` is a non-success reason code the packet may carry: PUBACK/PUBREC s3.4.2.1 allow
  // 0x80 and others, PUBREL/PUBCOMP s3.6.2.1 only 0x92 (Packet Identifier not found).
  struct Ack {
    const char* name;
    uint8_t first_byte;
    PacketType type;
    uint8_t error;
  };
  const Ack acks[] = {{"Puback", w::kPuback, PacketType::kPuback, 0x80},
                      {"Pubrec", w::kPubrec, PacketType::kPubrec, 0x97},
                      {"Pubrel", w::kPubrel, PacketType::kPubrel, 0x92},
                      {"Pubcomp", w::kPubcomp, PacketType::kPubcomp, 0x92}};
  for (const Ack& a : acks) {
    std::string n = a.name;
    const auto error = static_cast<ReasonCode>(a.error);
    add("V31" + n, V::kV31, w::PubResponse(a.first_byte, 1), PubResponse{a.type, 1});
    add("V311" + n, V::kV311, w::PubResponse(a.first_byte, 7), PubResponse{a.type, 7});
    // v5 s3.4.2.1: remaining length 2 means Success and no properties.
    add("V5" + n + "Short", V::kV5, w::PubResponse(a.first_byte, 0x1234),
        PubResponse{a.type, 0x1234});
    // v5 s3.4.2.2: remaining length 3 means no properties.
    add("V5" + n + "ReasonOnly", V::kV5, w::PubResponse(a.first_byte, 9, a.error),
        PubResponse{a.type, 9, error});
    add("V5" + n + "SuccessEmptyProperties", V::kV5, w::PubResponse(a.first_byte, 9, 0x00, {}),
        PubResponse{a.type, 9, ReasonCode::kSuccess});
    add("V5" + n + "WithProperties", V::kV5,
        w::PubResponse(a.first_byte, 10, a.error,
                       w::Cat(w::prop::ReasonString("why"), w::prop::UserProperty("k", "v"))),
        PubResponse{a.type, 10, error,
                    Properties{.reason_string = "why", .user_properties = {{"k", "v"}}}});
  }
  add("V5PubackNoMatchingSubscribers", V::kV5, w::Hex("40 03 00 07 10"),
      PubResponse{PacketType::kPuback, 7, ReasonCode::kNoMatchingSubscribers});
  add("V5PubrecNotAuthorized", V::kV5, w::Hex("50 03 00 07 87"),
      PubResponse{PacketType::kPubrec, 7, ReasonCode::kNotAuthorized});

  // ---- SUBSCRIBE (s3.8) ----
  add("V311Subscribe", V::kV311, w::Subscribe(4, 1, {{"a/b", 1}, {"c/#", 2}, {"+/x", 0}}),
      Subscribe{.packet_id = 1,
                .subscriptions = {{.filter = "a/b", .max_qos = 1},
                                  {.filter = "c/#", .max_qos = 2},
                                  {.filter = "+/x", .max_qos = 0}}});
  // 3.1.1 s3.8 example shape: 82 len, packet id 00 0a, "a/b" QoS 1.
  add("V311SubscribeLiteral", V::kV311, w::Hex("82 08 00 0a 00 03 61 2f 62 01"),
      Subscribe{.packet_id = 10, .subscriptions = {{.filter = "a/b", .max_qos = 1}}});
  add("V31Subscribe", V::kV31, w::Subscribe(3, 2, {{"x/y", 2}}),
      Subscribe{.packet_id = 2, .subscriptions = {{.filter = "x/y", .max_qos = 2}}});
  add("V311SubscribeShared", V::kV311, w::Subscribe(4, 3, {{"$share/g/a/#", 1}}),
      Subscribe{.packet_id = 3, .subscriptions = {{.filter = "$share/g/a/#", .max_qos = 1}}});
  // v5 s3.8.3.1 Subscription Options: QoS(1-0) No Local(2) RAP(3) Retain Handling(5-4).
  add("V5SubscribeOptions", V::kV5,
      w::Subscribe(5, 2,
                   {{"a/b", w::SubOptions(1, /*no_local=*/true)},
                    {"c/d", w::SubOptions(2, false, /*retain_as_published=*/true, 1)},
                    {"e", w::SubOptions(0, false, false, /*retain_handling=*/2)},
                    {"$share/g/f/#", w::SubOptions(1)}},
                   w::Cat(w::prop::SubscriptionIdentifier(42), w::prop::UserProperty("u", "p"))),
      Subscribe{
          .packet_id = 2,
          .properties =
              Properties{.subscription_identifiers = {42}, .user_properties = {{"u", "p"}}},
          .subscriptions = {
              {.filter = "a/b", .max_qos = 1, .no_local = true},
              {.filter = "c/d", .max_qos = 2, .retain_as_published = true, .retain_handling = 1},
              {.filter = "e", .max_qos = 0, .retain_handling = 2},
              {.filter = "$share/g/f/#", .max_qos = 1}}});
  add("V5SubscribeAllOptionBits", V::kV5, w::Subscribe(5, 9, {{"x", 0x2E}}),
      Subscribe{.packet_id = 9,
                .subscriptions = {{.filter = "x",
                                   .max_qos = 2,
                                   .no_local = true,
                                   .retain_as_published = true,
                                   .retain_handling = 2}}});

  // ---- SUBACK (s3.9; server to client) ----
  add("V311Suback", V::kV311, w::Hex("90 05 00 0a 00 01 80"),
      Suback{.packet_id = 10, .reason_codes = {0x00, 0x01, 0x80}});
  add("V5Suback", V::kV5, w::Suback(5, 11, {0x00, 0x02, 0x8F}, w::prop::ReasonString("r")),
      Suback{.packet_id = 11,
             .properties = Properties{.reason_string = "r"},
             .reason_codes = {0x00, 0x02, 0x8F}});

  // ---- UNSUBSCRIBE (s3.10) ----
  add("V311Unsubscribe", V::kV311, w::Unsubscribe(4, 3, {"a/b", "c/#"}),
      Unsubscribe{.packet_id = 3, .filters = {"a/b", "c/#"}});
  add("V31Unsubscribe", V::kV31, w::Unsubscribe(3, 4, {"q"}),
      Unsubscribe{.packet_id = 4, .filters = {"q"}});
  add("V5Unsubscribe", V::kV5, w::Unsubscribe(5, 4, {"a/+"}, w::prop::UserProperty("k", "v")),
      Unsubscribe{.packet_id = 4,
                  .properties = Properties{.user_properties = {{"k", "v"}}},
                  .filters = {"a/+"}});

  // ---- UNSUBACK (s3.11; server to client) ----
  add("V311Unsuback", V::kV311, w::Hex("b0 02 00 0b"), Unsuback{.packet_id = 11});
  add("V5Unsuback", V::kV5, w::Unsuback(5, 11, {0x00, 0x11}),
      Unsuback{.packet_id = 11, .reason_codes = {0x00, 0x11}});

  // ---- PINGREQ / PINGRESP (s3.12, s3.13) ----
  add("V31Pingreq", V::kV31, w::Pingreq(), Pingreq{});
  add("V311Pingreq", V::kV311, w::Pingreq(), Pingreq{});
  add("V5Pingreq", V::kV5, w::Pingreq(), Pingreq{});
  add("V311Pingresp", V::kV311, w::Pingresp(), Pingresp{});
  add("V5Pingresp", V::kV5, w::Pingresp(), Pingresp{});

  // ---- DISCONNECT (s3.14) ----
  add("V31Disconnect", V::kV31, w::Disconnect(), Disconnect{});
  add("V311Disconnect", V::kV311, w::Disconnect(), Disconnect{});
  // v5 s3.14.2.1: remaining length 0 means Normal disconnection, no properties.
  add("V5DisconnectEmpty", V::kV5, w::Disconnect(), Disconnect{});
  // v5 s3.14.2.2.1: remaining length 1 means no properties.
  add("V5DisconnectReasonOnly", V::kV5, w::Disconnect(0x04),
      Disconnect{.reason = ReasonCode::kDisconnectWithWill});
  add("V5DisconnectEmptyProperties", V::kV5, w::Hex("e0 02 00 00"), Disconnect{});
  add("V5DisconnectProperties", V::kV5,
      w::Disconnect(0x80, w::Cat(w::prop::SessionExpiryInterval(0), w::prop::ReasonString("bye"),
                                 w::prop::UserProperty("k", "v"))),
      Disconnect{.reason = ReasonCode::kUnspecifiedError,
                 .properties = Properties{.session_expiry_interval = 0,
                                          .reason_string = "bye",
                                          .user_properties = {{"k", "v"}}}});
  add("V5DisconnectServerReference", V::kV5,
      w::Disconnect(0x9C, w::prop::ServerReference("other:1883")),
      Disconnect{.reason = ReasonCode::kUseAnotherServer,
                 .properties = Properties{.server_reference = "other:1883"}});

  // ---- AUTH (v5 s3.15) ----
  // v5 s3.15.2.1: remaining length 0 means Success and no properties.
  add("V5AuthEmpty", V::kV5, w::Auth(), Auth{});
  add("V5AuthContinue", V::kV5,
      w::Auth(0x18, w::Cat(w::prop::AuthenticationMethod("SCRAM-SHA-1"),
                           w::prop::AuthenticationData("r=abc\x00"s))),
      Auth{.reason = ReasonCode::kContinueAuthentication,
           .properties = Properties{.authentication_method = "SCRAM-SHA-1",
                                    .authentication_data = "r=abc\x00"s}});
  add("V5AuthReauthenticate", V::kV5,
      w::Auth(0x19, w::Cat(w::prop::AuthenticationMethod("PLAIN"), w::prop::ReasonString("re"),
                           w::prop::UserProperty("k", "v"))),
      Auth{.reason = ReasonCode::kReauthenticate,
           .properties = Properties{.authentication_method = "PLAIN",
                                    .reason_string = "re",
                                    .user_properties = {{"k", "v"}}}});
  return cases;
}

class DecoderValidTest : public ::testing::TestWithParam<ValidCase> {};

TEST_P(DecoderValidTest, DecodesExpectedFields) {
  const ValidCase& c = GetParam();
  SCOPED_TRACE("bytes: " + w::ToHex(c.bytes));
  DecodeResult r = DecodeBytes(c.bytes, c.version);
  ASSERT_EQ(r.status, Status::kPacket) << DescribeResult(r);
  EXPECT_EQ(r.consumed, c.bytes.size());
  EXPECT_EQ(r.packet, c.expected);
}

// MQTT is a stream: any prefix of a packet is "need more", consumes nothing, and once the fixed
// header is complete tells the caller the whole packet's size.
TEST_P(DecoderValidTest, EveryPrefixNeedsMore) {
  const ValidCase& c = GetParam();
  const size_t header = FixedHeaderSize(c.bytes);
  // Large payloads: every prefix of the header and the body's edges, not all 20000.
  for (size_t len = 0; len < c.bytes.size(); ++len) {
    if (len > header + 64 && len + 64 < c.bytes.size()) continue;
    w::Bytes prefix(c.bytes.begin(), c.bytes.begin() + static_cast<std::ptrdiff_t>(len));
    DecodeResult r = DecodeBytes(prefix, c.version);
    ASSERT_EQ(r.status, Status::kNeedMore)
        << "prefix of " << len << " bytes: " << DescribeResult(r);
    EXPECT_EQ(r.consumed, 0u) << "prefix of " << len << " bytes";
    if (len >= header) {
      EXPECT_EQ(r.needed, c.bytes.size()) << "prefix of " << len << " bytes";
    } else {
      EXPECT_EQ(r.needed, 0u) << "prefix of " << len << " bytes (Remaining Length incomplete)";
    }
  }
}

// Bytes after the packet belong to the next packet: they are neither consumed nor looked at.
TEST_P(DecoderValidTest, StopsAtPacketEnd) {
  const ValidCase& c = GetParam();
  for (const w::Bytes& tail : {w::Pingreq(), w::Hex("30"), w::Hex("ff ff ff ff ff")}) {
    DecodeResult r = DecodeBytes(w::Cat(c.bytes, tail), c.version);
    ASSERT_EQ(r.status, Status::kPacket) << "tail " << w::ToHex(tail) << ": " << DescribeResult(r);
    EXPECT_EQ(r.consumed, c.bytes.size());
    EXPECT_EQ(r.packet, c.expected);
  }
}

// The decoded packet encodes back into something that decodes to the same packet (the bytes may
// differ, e.g. in property order or the v5 short forms).
TEST_P(DecoderValidTest, ReencodesToSamePacket) {
  const ValidCase& c = GetParam();
  const V version = std::holds_alternative<Connect>(c.expected)
                        ? std::get<Connect>(c.expected).version
                        : c.version.value_or(V::kV311);
  w::Bytes encoded = EncodeBytes(c.expected, version);
  EXPECT_EQ(encoded.size(), EncodedSize(c.expected, version));
  DecodeResult r = DecodeBytes(encoded, c.version);
  ASSERT_EQ(r.status, Status::kPacket)
      << "encoded: " << w::ToHex(encoded) << " -> " << DescribeResult(r);
  EXPECT_EQ(r.consumed, encoded.size());
  EXPECT_EQ(r.packet, c.expected) << "encoded: " << w::ToHex(encoded);
}

INSTANTIATE_TEST_SUITE_P(AllPackets, DecoderValidTest, ::testing::ValuesIn(ValidCases()),
                         [](const ::testing::TestParamInfo<ValidCase>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------------------------
// Stream behaviour
// ---------------------------------------------------------------------------------------------

TEST(DecoderTest, EmptyInputNeedsMore) {
  DecodeResult r = DecodeBytes({}, V::kV5);
  EXPECT_EQ(r.status, Status::kNeedMore);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(r.needed, 0u);
}

TEST(DecoderTest, DecodesTwoPacketsInOneBufferOneAtATime) {
  w::Bytes first = w::Publish({.level = 4, .qos = 1, .topic = "a", .packet_id = 1, .payload = "1"});
  w::Bytes second = w::Publish({.level = 4, .topic = "b", .payload = "22"});
  w::Bytes buffer = w::Cat(first, second, w::Pingreq());

  DecodeResult r1 = DecodeBytes(buffer, V::kV311);
  ASSERT_EQ(r1.status, Status::kPacket) << DescribeResult(r1);
  EXPECT_EQ(r1.consumed, first.size());
  EXPECT_EQ(r1.packet, Packet(Publish{.qos = 1, .topic = "a", .packet_id = 1, .payload = "1"}));

  w::Bytes rest(buffer.begin() + static_cast<std::ptrdiff_t>(r1.consumed), buffer.end());
  DecodeResult r2 = DecodeBytes(rest, V::kV311);
  ASSERT_EQ(r2.status, Status::kPacket) << DescribeResult(r2);
  EXPECT_EQ(r2.consumed, second.size());
  EXPECT_EQ(r2.packet, Packet(Publish{.topic = "b", .payload = "22"}));

  w::Bytes last(rest.begin() + static_cast<std::ptrdiff_t>(r2.consumed), rest.end());
  DecodeResult r3 = DecodeBytes(last, V::kV311);
  ASSERT_EQ(r3.status, Status::kPacket) << DescribeResult(r3);
  EXPECT_EQ(r3.consumed, 2u);
  EXPECT_EQ(r3.packet, Packet(Pingreq{}));
}

TEST(DecoderTest, ConnectThenPublishInOneBuffer) {
  w::Bytes connect = w::Connect({.level = 5, .client_id = "c"});
  w::Bytes publish = w::Publish({.level = 5, .topic = "t", .payload = "p"});
  w::Bytes buffer = w::Cat(connect, publish);
  DecodeResult r1 = DecodeBytes(buffer, kBeforeConnect);
  ASSERT_EQ(r1.status, Status::kPacket) << DescribeResult(r1);
  EXPECT_EQ(r1.consumed, connect.size());
  w::Bytes rest(buffer.begin() + static_cast<std::ptrdiff_t>(r1.consumed), buffer.end());
  DecodeResult r2 = DecodeBytes(rest, V::kV5);
  ASSERT_EQ(r2.status, Status::kPacket) << DescribeResult(r2);
  EXPECT_EQ(r2.packet, Packet(Publish{.topic = "t", .payload = "p"}));
}

TEST(DecoderTest, PartialSecondPacketIsLeftForLater) {
  w::Bytes first = w::Pingreq();
  w::Bytes second = w::Publish({.level = 4, .topic = "abc", .payload = "xyz"});
  w::Bytes buffer = w::Cat(first, w::Bytes(second.begin(), second.begin() + 4));
  DecodeResult r1 = DecodeBytes(buffer, V::kV311);
  ASSERT_EQ(r1.status, Status::kPacket);
  EXPECT_EQ(r1.consumed, 2u);
  w::Bytes rest(buffer.begin() + 2, buffer.end());
  DecodeResult r2 = DecodeBytes(rest, V::kV311);
  EXPECT_EQ(r2.status, Status::kNeedMore);
  EXPECT_EQ(r2.consumed, 0u);
  EXPECT_EQ(r2.needed, second.size());
}

// Remaining Length boundaries from the spec's VBI table (v5 s1.5.5): 127 | 128 and 16383 | 16384.
// The body is the topic "top" (5 bytes) plus the payload.
TEST(DecoderTest, RemainingLengthBoundaries) {
  for (size_t remaining : {size_t{127}, size_t{128}, size_t{16383}, size_t{16384}}) {
    const size_t payload_size = remaining - 5;
    w::Bytes bytes =
        w::Publish({.level = 4, .topic = "top", .payload = std::string(payload_size, 'p')});
    ASSERT_EQ(bytes.size(), 1 + w::Vbi(static_cast<uint32_t>(remaining)).size() + remaining);
    SCOPED_TRACE("remaining length " + std::to_string(remaining));
    DecodeResult r = DecodeBytes(bytes, V::kV311);
    ASSERT_EQ(r.status, Status::kPacket) << DescribeResult(r);
    EXPECT_EQ(r.consumed, bytes.size());
    EXPECT_EQ(std::get<Publish>(r.packet).payload.size(), payload_size);
  }
}

// The largest Remaining Length (268435455, FF FF FF 7F) is valid: with only the fixed header the
// decoder waits for the whole packet and says how big it will be, without allocating it.
TEST(DecoderTest, MaximumRemainingLengthNeedsMore) {
  DecodeResult r = DecodeBytes(w::Hex("30 ff ff ff 7f 00 01 61"), V::kV311);
  EXPECT_EQ(r.status, Status::kNeedMore) << DescribeResult(r);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(r.needed, 268435455u + 5u);
}

// ---------------------------------------------------------------------------------------------
// Packet size limit (DecoderLimits::max_packet_size counts the whole packet)
// ---------------------------------------------------------------------------------------------

TEST(DecoderTest, PacketTooLargeFromFixedHeaderAlone) {
  DecoderLimits limits{.max_packet_size = 64};
  // Remaining length 65: 67 bytes in all. Only the fixed header is fed.
  DecodeResult r = DecodeBytes(w::Hex("30 41"), V::kV311, limits);
  ASSERT_EQ(r.status, Status::kError) << DescribeResult(r);
  EXPECT_EQ(r.error, ReasonCode::kPacketTooLarge);

  // Remaining length 1000000 (C0 84 3D), only the fixed header.
  r = DecodeBytes(w::Hex("30 c0 84 3d"), V::kV5, DecoderLimits{.max_packet_size = 1024});
  ASSERT_EQ(r.status, Status::kError) << DescribeResult(r);
  EXPECT_EQ(r.error, ReasonCode::kPacketTooLarge);

  // A CONNECT is limited too, before any version is known.
  r = DecodeBytes(w::Hex("10 ff 01"), kBeforeConnect, limits);
  ASSERT_EQ(r.status, Status::kError) << DescribeResult(r);
  EXPECT_EQ(r.error, ReasonCode::kPacketTooLarge);
}

TEST(DecoderTest, PacketSizeLimitIsInclusiveAndCountsFixedHeader) {
  // 2 (fixed header) + 5 ("top" string) + 57 payload = 64 bytes.
  w::Bytes bytes = w::Publish({.level = 4, .topic = "top", .payload = std::string(57, 'p')});
  ASSERT_EQ(bytes.size(), 64u);

  DecodeResult at_limit = DecodeBytes(bytes, V::kV311, DecoderLimits{.max_packet_size = 64});
  EXPECT_EQ(at_limit.status, Status::kPacket) << DescribeResult(at_limit);

  DecodeResult over = DecodeBytes(bytes, V::kV311, DecoderLimits{.max_packet_size = 63});
  ASSERT_EQ(over.status, Status::kError) << DescribeResult(over);
  EXPECT_EQ(over.error, ReasonCode::kPacketTooLarge);

  w::Bytes header_only(bytes.begin(), bytes.begin() + 2);
  DecodeResult header_at_limit =
      DecodeBytes(header_only, V::kV311, DecoderLimits{.max_packet_size = 64});
  EXPECT_EQ(header_at_limit.status, Status::kNeedMore) << DescribeResult(header_at_limit);
  EXPECT_EQ(header_at_limit.needed, 64u);
  DecodeResult header_over =
      DecodeBytes(header_only, V::kV311, DecoderLimits{.max_packet_size = 63});
  ASSERT_EQ(header_over.status, Status::kError) << DescribeResult(header_over);
  EXPECT_EQ(header_over.error, ReasonCode::kPacketTooLarge);
}

// ---------------------------------------------------------------------------------------------
// Fixed header flags (v5 s2.1.3: "If invalid flags are received it is a Malformed Packet";
// 3.1.1 s2.2.2 [MQTT-2.2.2-2]: the receiver MUST close the connection). MQTT 3.1 also allows
// DUP on PUBREL, SUBSCRIBE and UNSUBSCRIBE.
// ---------------------------------------------------------------------------------------------

TEST(DecoderTest, RejectsWrongFixedHeaderFlagsForEveryType) {
  struct TypeCase {
    const char* name;
    uint8_t valid_first_byte;
    w::Bytes (*build)(int level);
  };
  const TypeCase types[] = {
      {"CONNECT", 0x10, [](int level) { return w::Connect({.level = level}); }},
      {"CONNACK", 0x20, [](int level) { return w::Connack(level, false, 0); }},
      {"PUBACK", 0x40, [](int) { return w::PubResponse(w::kPuback, 1); }},
      {"PUBREC", 0x50, [](int) { return w::PubResponse(w::kPubrec, 1); }},
      {"PUBREL", 0x62, [](int) { return w::PubResponse(w::kPubrel, 1); }},
      {"PUBCOMP", 0x70, [](int) { return w::PubResponse(w::kPubcomp, 1); }},
      {"SUBSCRIBE", 0x82,
       [](int level) {
         return w::Subscribe(level, 1, {{"a", 0}});
       }},
      {"SUBACK", 0x90, [](int level) { return w::Suback(level, 1, {0}); }},
      {"UNSUBSCRIBE", 0xA2, [](int level) { return w::Unsubscribe(level, 1, {"a"}); }},
      {"UNSUBACK", 0xB0, [](int level) { return w::Unsuback(level, 1, {0}); }},
      {"PINGREQ", 0xC0, [](int) { return w::Pingreq(); }},
      {"PINGRESP", 0xD0, [](int) { return w::Pingresp(); }},
      {"DISCONNECT", 0xE0, [](int) { return w::Disconnect(); }},
      {"AUTH", 0xF0, [](int) { return w::Auth(); }},
  };
  for (int level : {3, 4, 5}) {
    const auto version = static_cast<V>(level);
    for (const TypeCase& t : types) {
      if (t.valid_first_byte == 0xF0 && level < 5) continue;  // AUTH is v5 only
      w::Bytes bytes = t.build(level);
      ASSERT_EQ(bytes[0], t.valid_first_byte);
      const std::optional<V> conn_version =
          t.valid_first_byte == 0x10 ? kBeforeConnect : std::optional<V>(version);
      // The valid flags decode (sanity check of the table itself).
      DecodeResult ok = DecodeBytes(bytes, conn_version);
      EXPECT_EQ(ok.status, Status::kPacket)
          << t.name << " level " << level << ": " << DescribeResult(ok);
      for (uint8_t flags = 0; flags < 16; ++flags) {
        bytes[0] = static_cast<uint8_t>((t.valid_first_byte & 0xF0) | flags);
        if (bytes[0] == t.valid_first_byte) continue;
        // MQTT 3.1 s2.1 sets DUP on re-sent PUBREL, SUBSCRIBE and UNSUBSCRIBE (QoS 1 packets);
        // 3.1.1 fixed their flags to 0010.
        if (level == 3 && (t.valid_first_byte & 0x0F) == 0x02 && flags == 0x0A) {
          DecodeResult dup = DecodeBytes(bytes, conn_version);
          EXPECT_EQ(dup.status, Status::kPacket)
              << t.name << " with DUP in MQTT 3.1: " << DescribeResult(dup);
          continue;
        }
        DecodeResult r = DecodeBytes(bytes, conn_version);
        EXPECT_EQ(r.status, Status::kError) << t.name << " level " << level << " bytes "
                                            << w::ToHex(bytes) << ": " << DescribeResult(r);
        if (r.status == Status::kError) {
          EXPECT_EQ(r.error, ReasonCode::kMalformedPacket)
              << t.name << " level " << level << " bytes " << w::ToHex(bytes);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Malformed and invalid input
// ---------------------------------------------------------------------------------------------

struct ErrorCase {
  std::string name;
  std::optional<ProtocolVersion> version;
  w::Bytes bytes;
  ReasonCode expected;  // what the spec says (or our choice where it lets us choose)
  std::string spec;     // the rule
  std::vector<ReasonCode> also_allowed = {};  // other codes the spec permits for this input
  std::optional<uint8_t> connect_level = {};  // CONNECT errors found after the level was read
  DecoderLimits limits = {};
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

constexpr ReasonCode kMalformed = ReasonCode::kMalformedPacket;
constexpr ReasonCode kProtocol = ReasonCode::kProtocolError;

// A v5 QoS 1 PUBLISH "a/b" carrying `props` (without length).
w::Bytes V5Publish(const w::Bytes& props) {
  return w::Publish(
      {.level = 5, .qos = 1, .topic = "a/b", .packet_id = 1, .properties = props, .payload = "x"});
}
// A v5 CONNECT carrying `props` (without length).
w::Bytes V5Connect(const w::Bytes& props) { return w::Connect({.level = 5, .properties = props}); }
// A v5 CONNECT with a will carrying `will_props`.
w::Bytes V5ConnectWill(const w::Bytes& will_props) {
  return w::Connect({.level = 5, .will = true, .will_properties = will_props, .will_topic = "w"});
}

std::vector<ErrorCase> ErrorCases() {
  std::vector<ErrorCase> cases;
  auto add = [&cases](ErrorCase c) { cases.push_back(std::move(c)); };
  const std::vector<ReasonCode> kEither = {kProtocol};  // expected kMalformed, or this
  const std::vector<ReasonCode> kOrMalformed = {kMalformed};

  // ---- Remaining Length / Variable Byte Integer (v5 s1.5.5, s2.1.4) ----
  add({"RemainingLengthFiveBytes", V::kV311, w::Hex("30 ff ff ff ff 01 00"), kMalformed,
       "v5 s1.5.5: at most four bytes"});
  add({"RemainingLengthFourthByteContinues", V::kV311, w::Hex("30 80 80 80 80"), kMalformed,
       "v5 s1.5.5: at most four bytes; the 4th byte has the continuation bit"});
  add({"RemainingLengthFiveBytesPingreq", V::kV5, w::Hex("c0 80 80 80 80 00"), kMalformed,
       "v5 s1.5.5: at most four bytes"});
  add({"RemainingLengthNonMinimalZero", V::kV311, w::Hex("c0 80 00"), kMalformed,
       "v5 s1.5.5 [MQTT-1.5.5-1]: minimum number of bytes"});
  add({"RemainingLengthNonMinimalFive", V::kV311, w::Hex("30 85 00 00 03 61 2f 62"), kMalformed,
       "v5 s1.5.5 [MQTT-1.5.5-1]: minimum number of bytes"});
  add({"RemainingLengthNonMinimalThreeBytes", V::kV5, w::Hex("e0 80 80 00"), kMalformed,
       "v5 s1.5.5 [MQTT-1.5.5-1]: minimum number of bytes"});
  add({"PropertyLengthNonMinimal", V::kV5, w::Hex("30 07 00 03 61 2f 62 80 00"), kMalformed,
       "v5 s1.5.5 [MQTT-1.5.5-1]: minimum number of bytes"});
  add({"PropertyLengthFiveBytes", V::kV5, w::Hex("30 0a 00 03 61 2f 62 ff ff ff ff 01"), kMalformed,
       "v5 s1.5.5: at most four bytes"});
  add({"SubscriptionIdentifierNonMinimal", V::kV5, V5Publish(w::Hex("0b 81 00")), kMalformed,
       "v5 s1.5.5 [MQTT-1.5.5-1]: minimum number of bytes"});
  add({"SubscriptionIdentifierFiveBytes", V::kV5, V5Publish(w::Hex("0b ff ff ff ff 01")),
       kMalformed, "v5 s1.5.5: at most four bytes"});

  // ---- Reserved packet types ----
  add({"V311ReservedType0", V::kV311, w::Hex("00 00"), kMalformed,
       "3.1.1 s2.2.1: type 0 is Reserved/Forbidden", kEither});
  add({"V5ReservedType0", V::kV5, w::Hex("00 00"), kMalformed,
       "v5 s2.1.2: type 0 is Reserved/Forbidden", kEither});
  add({"V311AuthIsReserved", V::kV311, w::Hex("f0 00"), kMalformed,
       "3.1.1 s2.2.1: type 15 is Reserved/Forbidden", kEither});
  add({"V31AuthIsReserved", V::kV31, w::Hex("f0 00"), kMalformed, "3.1: type 15 is reserved",
       kEither});

  // ---- Only CONNECT before CONNECT (decoder.h; v5 s3.1 [MQTT-3.1.0-1]) ----
  add({"PublishBeforeConnect", kBeforeConnect, w::Publish({.level = 4, .topic = "t"}), kProtocol,
       "decoder.h: only CONNECT before CONNECT; v5 [MQTT-3.1.0-1]"});
  add({"PingreqBeforeConnect", kBeforeConnect, w::Pingreq(), kProtocol,
       "decoder.h: only CONNECT before CONNECT"});
  add({"SubscribeBeforeConnect", kBeforeConnect, w::Subscribe(4, 1, {{"a", 0}}), kProtocol,
       "decoder.h: only CONNECT before CONNECT"});
  add({"DisconnectBeforeConnect", kBeforeConnect, w::Disconnect(), kProtocol,
       "decoder.h: only CONNECT before CONNECT"});
  add({"AuthBeforeConnect", kBeforeConnect, w::Auth(), kProtocol,
       "decoder.h: only CONNECT before CONNECT"});
  add({"ConnackBeforeConnect", kBeforeConnect, w::Hex("20 02 00 00"), kProtocol,
       "decoder.h: only CONNECT before CONNECT"});

  // ---- PUBLISH (s3.3) ----
  add({"V311PublishQos3", V::kV311, w::Publish({.level = 4, .qos = 3, .packet_id = 1}), kMalformed,
       "3.1.1 [MQTT-3.3.1-4]; v5 s3.3.1.2: QoS 3 is a Malformed Packet"});
  add({"V5PublishQos3", V::kV5, w::Publish({.level = 5, .qos = 3, .packet_id = 1}), kMalformed,
       "v5 s3.3.1.2: both QoS bits set is a Malformed Packet"});
  add({"V311PublishQos0Dup", V::kV311, w::Publish({.level = 4, .dup = true}), kMalformed,
       "3.1.1/v5 [MQTT-3.3.1-2]: DUP MUST be 0 for QoS 0", kEither});
  add({"V5PublishQos0Dup", V::kV5, w::Publish({.level = 5, .dup = true}), kMalformed,
       "v5 [MQTT-3.3.1-2]: DUP MUST be 0 for QoS 0", kEither});
  add({"V311PublishQos1PacketIdZero", V::kV311, w::Publish({.level = 4, .qos = 1, .packet_id = 0}),
       kProtocol, "v5 s2.2.1 [MQTT-2.2.1-3]: QoS > 0 needs a non-zero packet id", kOrMalformed});
  add({"V5PublishQos2PacketIdZero", V::kV5, w::Publish({.level = 5, .qos = 2, .packet_id = 0}),
       kProtocol, "v5 s2.2.1 [MQTT-2.2.1-3]: QoS > 0 needs a non-zero packet id", kOrMalformed});
  add({"V311PublishTopicPlusWildcard", V::kV311, w::Publish({.level = 4, .topic = "a/+"}),
       ReasonCode::kTopicNameInvalid, "v5 s3.3.2.1 [MQTT-3.3.2-2]: no wildcards in a topic name"});
  add({"V311PublishTopicHashWildcard", V::kV311, w::Publish({.level = 4, .topic = "a/#"}),
       ReasonCode::kTopicNameInvalid, "[MQTT-3.3.2-2]: no wildcards in a topic name"});
  add({"V5PublishTopicWildcard", V::kV5, w::Publish({.level = 5, .topic = "+"}),
       ReasonCode::kTopicNameInvalid, "v5 [MQTT-3.3.2-2]: no wildcards in a topic name"});
  add({"V5PublishTopicWildcardInLevel", V::kV5, w::Publish({.level = 5, .topic = "a/b#"}),
       ReasonCode::kTopicNameInvalid, "v5 [MQTT-3.3.2-2]: no wildcards in a topic name"});
  add({"V311PublishEmptyTopic",
       V::kV311,
       w::Publish({.level = 4, .topic = ""}),
       ReasonCode::kTopicNameInvalid,
       "3.1.1 [MQTT-4.7.3-1]: topic names are at least 1 byte",
       {kMalformed, kProtocol}});
  add({"V5PublishEmptyTopicWithoutAlias",
       V::kV5,
       w::Publish({.level = 5, .topic = ""}),
       kProtocol,
       "v5 s3.3.2.1: zero-length Topic Name without a Topic Alias is a Protocol Error",
       {ReasonCode::kTopicNameInvalid}});
  // A Topic Alias of 0 (v5 s3.3.2.3.4) is not rejected here: the session checks every alias
  // against 1..Topic Alias Maximum and answers 0x94 (broker/session/connection_handler.cc).
  add({"V311PublishTopicPastEnd", V::kV311, w::Hex("30 05 00 09 61 2f 62"), kMalformed,
       "string length past the end of the packet"});
  add({"V311PublishTruncatedPacketId", V::kV311, w::Hex("32 04 00 01 61 00"), kMalformed,
       "packet id cut off by the remaining length"});
  add({"V311PublishNoTopicLength", V::kV311, w::Hex("30 01 00"), kMalformed,
       "topic length cut off"});
  add({"V5PublishMissingPropertyLength", V::kV5, w::Hex("32 05 00 01 61 00 01"), kMalformed,
       "v5 s3.3.2.3: the property length is mandatory"});
  add({"V5PublishPropertyLengthPastEnd", V::kV5, w::Hex("30 06 00 03 61 2f 62 05"), kMalformed,
       "v5 s2.2.2.1: property length past the end of the packet"});
  add({"V5PublishPropertyCutInside", V::kV5, w::Hex("30 08 00 03 61 2f 62 02 02 00"), kMalformed,
       "property value longer than the property length"});
  add({"V5PublishPropertyOverrunsLength", V::kV5,
       w::Hex("30 0d 00 03 61 2f 62 02 02 00 00 00 05 61 62"), kMalformed,
       "the property (5 bytes) does not fit the property length 2"});
  add({"V5PublishUserPropertyValuePastEnd", V::kV5,
       V5Publish(w::Cat(w::U8(0x26), w::Str("k"), w::U16(50))), kMalformed,
       "user property value length past the property block"});

  // ---- PUBACK family ----
  add({"V311PubackTrailingByte", V::kV311, w::Hex("40 03 00 07 00"), kMalformed,
       "3.1.1 s3.4.1: remaining length MUST be 2"});
  add({"V31PubrecTrailingByte", V::kV31, w::Hex("50 03 00 07 00"), kMalformed,
       "3.1: remaining length is 2"});
  add({"V311PubcompTooShort", V::kV311, w::Hex("70 01 00"), kMalformed, "packet id cut off"});
  add({"V5PubackEmpty", V::kV5, w::Hex("40 00"), kMalformed, "packet id missing"});
  add({"V5PubrelTooShort", V::kV5, w::Hex("62 01 00"), kMalformed, "packet id cut off"});
  add({"V5PubackTrailingAfterProperties", V::kV5, w::Hex("40 05 00 07 00 00 ff"), kMalformed,
       "bytes after the property block"});
  add({"V5PubackPropertyLengthPastEnd", V::kV5, w::Hex("40 04 00 07 00 09"), kMalformed,
       "property length past the end"});

  // Reason codes outside the packet's list (v5 s3.4.2.1, s3.6.2.1, s3.14.2.1, s3.15.2.1). The
  // spec names no code for this; the codec treats it as a value not allowed (Protocol Error).
  add({"V5PubackReasonNotAllowed", V::kV5, w::PubResponse(w::kPuback, 1, 0x92), kProtocol,
       "v5 s3.4.2.1: 0x92 is not a PUBACK reason code", kOrMalformed});
  add({"V5PubrelReasonNotAllowed", V::kV5, w::PubResponse(w::kPubrel, 1, 0x80), kProtocol,
       "v5 s3.6.2.1: PUBREL carries only 0x00 or 0x92", kOrMalformed});
  add({"V5PubcompReasonNotAllowed", V::kV5,
       w::PubResponse(w::kPubcomp, 1, 0x10, w::prop::ReasonString("r")), kProtocol,
       "v5 s3.7.2.1: PUBCOMP carries only 0x00 or 0x92", kOrMalformed});
  add({"V5DisconnectReasonNotAllowed", V::kV5, w::Disconnect(0x01), kProtocol,
       "v5 s3.14.2.1: 0x01 is not a DISCONNECT reason code", kOrMalformed});
  add({"V5AuthReasonNotAllowed", V::kV5, w::Auth(0x80, {}), kProtocol,
       "v5 s3.15.2.1: AUTH carries only 0x00, 0x18 or 0x19", kOrMalformed});
  add({"V5PubackPacketIdZero", V::kV5, w::PubResponse(w::kPuback, 0), kProtocol,
       "v5 s2.2.1: packet identifiers are non-zero", kOrMalformed});

  // ---- PINGREQ / DISCONNECT trailing bytes ----
  add({"V311PingreqTrailingByte", V::kV311, w::Hex("c0 01 00"), kMalformed,
       "3.1.1 s3.12: PINGREQ has no variable header or payload"});
  add({"V5PingreqTrailingByte", V::kV5, w::Hex("c0 01 00"), kMalformed,
       "v5 s3.12: PINGREQ has no variable header or payload"});
  add({"V311DisconnectTrailingByte", V::kV311, w::Hex("e0 01 00"), kMalformed,
       "3.1.1 s3.14: DISCONNECT has no variable header or payload"});
  add({"V5DisconnectTrailingAfterProperties", V::kV5, w::Hex("e0 03 00 00 00"), kMalformed,
       "bytes after the property block"});
  add({"V5DisconnectPropertyLengthPastEnd", V::kV5, w::Hex("e0 02 00 05"), kMalformed,
       "property length past the end"});
  add({"V5AuthTrailingAfterProperties", V::kV5, w::Hex("f0 03 18 00 00"), kMalformed,
       "bytes after the property block"});

  // ---- CONNECT (s3.1) ----
  add({"V311ConnectReservedFlag",
       kBeforeConnect,
       w::Connect({.level = 4, .extra_flags = 0x01}),
       kMalformed,
       "3.1.1 [MQTT-3.1.2-3]; v5 s3.1.2.3: reserved flag set is a Malformed Packet",
       {},
       4});
  add({"V5ConnectReservedFlag",
       kBeforeConnect,
       w::Connect({.level = 5, .extra_flags = 0x01}),
       kMalformed,
       "v5 s3.1.2.3 [MQTT-3.1.2-3]: reserved flag set is a Malformed Packet",
       {},
       5});
  add({"V31ConnectReservedFlag",
       kBeforeConnect,
       w::Connect({.level = 3, .extra_flags = 0x01}),
       kMalformed,
       "reserved flag set",
       {},
       3});
  add({"ConnectUnknownProtocolName",
       kBeforeConnect,
       w::Connect({.level = 4, .protocol_name = "MQTX"}),
       ReasonCode::kUnsupportedProtocolVersion,
       "v5 s3.1.2.1: incorrect protocol name: MAY answer 0x84, MUST close",
       {kMalformed, kProtocol}});
  add({"ConnectLowercaseProtocolName",
       kBeforeConnect,
       w::Connect({.level = 5, .protocol_name = "mqtt"}),
       ReasonCode::kUnsupportedProtocolVersion,
       "v5 s3.1.2.1: incorrect protocol name",
       {kMalformed, kProtocol}});
  add({"ConnectEmptyProtocolName",
       kBeforeConnect,
       w::Connect({.level = 4, .protocol_name = ""}),
       ReasonCode::kUnsupportedProtocolVersion,
       "incorrect protocol name",
       {kMalformed, kProtocol}});
  add({"ConnectLevel6",
       kBeforeConnect,
       w::Connect({.level = 6}),
       ReasonCode::kUnsupportedProtocolVersion,
       "v5 s3.1.2.2; 3.1.1 [MQTT-3.1.2-2]: unsupported level -> 0x84 / return code 1",
       {},
       6});
  add({"ConnectLevel2",
       kBeforeConnect,
       w::Connect({.level = 2}),
       ReasonCode::kUnsupportedProtocolVersion,
       "unsupported protocol level",
       {},
       2});
  add({"ConnectLevel0",
       kBeforeConnect,
       w::Connect({.level = 0}),
       ReasonCode::kUnsupportedProtocolVersion,
       "unsupported protocol level",
       {},
       0});
  add({"ConnectLevel255",
       kBeforeConnect,
       w::Connect({.level = 255}),
       ReasonCode::kUnsupportedProtocolVersion,
       "unsupported protocol level",
       {},
       255});
  // 3.1.1 s3.1.2.1 names the protocol "MQTT" for level 4; MQTT 3.1 used "MQIsdp" with level 3.
  add({"ConnectMqisdpLevel4",
       kBeforeConnect,
       w::Connect({.level = 4, .protocol_name = "MQIsdp"}),
       ReasonCode::kUnsupportedProtocolVersion,
       "name and level do not match",
       {kMalformed, kProtocol},
       4});
  add({"ConnectMqttLevel3",
       kBeforeConnect,
       w::Connect({.level = 3, .protocol_name = "MQTT"}),
       ReasonCode::kUnsupportedProtocolVersion,
       "name and level do not match",
       {kMalformed, kProtocol},
       3});
  // v5 s3.2.2.2 0x90 Topic Name invalid: "The Will Topic Name is not malformed, but is not
  // accepted"; a will topic is a topic name, so no wildcards (s4.7.1) and not empty (s4.7.3).
  add({"V311WillTopicWildcard",
       kBeforeConnect,
       w::Connect({.level = 4, .will = true, .will_topic = "a/#"}),
       ReasonCode::kTopicNameInvalid,
       "will topic is a topic name: no wildcards",
       {},
       4});
  add({"V5WillTopicWildcard",
       kBeforeConnect,
       w::Connect({.level = 5, .will = true, .will_topic = "+"}),
       ReasonCode::kTopicNameInvalid,
       "will topic is a topic name: no wildcards",
       {},
       5});
  add({"V5WillTopicEmpty",
       kBeforeConnect,
       w::Connect({.level = 5, .will = true, .will_topic = ""}),
       ReasonCode::kTopicNameInvalid,
       "v5 s4.7.3: topic names are at least one character",
       {kMalformed, kProtocol},
       5});
  add({"V311ConnectWillQos3",
       kBeforeConnect,
       w::Connect({.level = 4, .will = true, .will_qos = 3, .will_topic = "w"}),
       kMalformed,
       "3.1.1 [MQTT-3.1.2-14]; v5 s3.1.2.6: Will QoS 3 is a Malformed Packet",
       {},
       4});
  add({"V5ConnectWillQos3",
       kBeforeConnect,
       w::Connect({.level = 5, .will = true, .will_qos = 3, .will_topic = "w"}),
       kMalformed,
       "v5 s3.1.2.6: Will QoS 3 is a Malformed Packet",
       {},
       5});
  add({"V311ConnectWillQosWithoutWillFlag", kBeforeConnect,
       w::Connect({.level = 4, .extra_flags = 0x08}), kMalformed,
       "[MQTT-3.1.2-11] (v5) / [MQTT-3.1.2-13] (3.1.1): Will QoS MUST be 0 without Will Flag",
       kEither, 4});
  add({"V5ConnectWillQos2WithoutWillFlag", kBeforeConnect,
       w::Connect({.level = 5, .extra_flags = 0x10}), kMalformed,
       "v5 [MQTT-3.1.2-11]: Will QoS MUST be 0 without Will Flag", kEither, 5});
  add({"V311ConnectWillRetainWithoutWillFlag", kBeforeConnect,
       w::Connect({.level = 4, .extra_flags = 0x20}), kMalformed,
       "[MQTT-3.1.2-15] (3.1.1) / [MQTT-3.1.2-13] (v5): Will Retain MUST be 0 without Will Flag",
       kEither, 4});
  add({"V5ConnectWillRetainWithoutWillFlag", kBeforeConnect,
       w::Connect({.level = 5, .extra_flags = 0x20}), kMalformed,
       "v5 [MQTT-3.1.2-13]: Will Retain MUST be 0 without Will Flag", kEither, 5});
  add({"V311ConnectPasswordWithoutUsername", kBeforeConnect,
       w::Connect({.level = 4, .password = "pw"}), kProtocol,
       "3.1.1 [MQTT-3.1.2-22]: Password Flag MUST be 0 when User Name Flag is 0", kOrMalformed, 4});
  add({"V311ConnectTrailingByte",
       kBeforeConnect,
       w::Packet(0x10, w::Cat(w::Str("MQTT"), w::Hex("04 02 00 3c"), w::Str("c"), w::U8(0))),
       kMalformed,
       "bytes after the last payload field",
       {},
       4});
  add({"V5ConnectTrailingByte",
       kBeforeConnect,
       w::Packet(0x10, w::Cat(w::Str("MQTT"), w::Hex("05 02 00 3c 00"), w::Str("c"), w::U8(0))),
       kMalformed,
       "bytes after the last payload field",
       {},
       5});
  add({"V311ConnectClientIdPastEnd",
       kBeforeConnect,
       w::Packet(0x10, w::Cat(w::Str("MQTT"), w::Hex("04 02 00 3c 00 10 61 62"))),
       kMalformed,
       "client id length past the end",
       {},
       4});
  add({"V311ConnectMissingWillTopic",
       kBeforeConnect,
       w::Packet(0x10, w::Cat(w::Str("MQTT"), w::Hex("04 06 00 3c"), w::Str("c"))),
       kMalformed,
       "Will Flag set but no will topic",
       {},
       4});
  add({"V311ConnectMissingPassword",
       kBeforeConnect,
       w::Packet(0x10, w::Cat(w::Str("MQTT"), w::Hex("04 c2 00 3c"), w::Str("c"), w::Str("u"))),
       kMalformed,
       "Password Flag set but no password",
       {},
       4});
  add({"V311ConnectTruncatedHeader", kBeforeConnect, w::Hex("10 06 00 04 4d 51 54 54"), kMalformed,
       "variable header cut off"});
  add({"V5ConnectMissingProperties",
       kBeforeConnect,
       w::Packet(0x10, w::Cat(w::Str("MQTT"), w::Hex("05 02 00 3c"))),
       kMalformed,
       "property length missing",
       {},
       5});

  // ---- v5 CONNECT / will properties ----
  add({"V5ConnectTopicAliasNotAllowed",
       kBeforeConnect,
       V5Connect(w::prop::TopicAlias(1)),
       kMalformed,
       "v5 s2.2.2.2: identifier not valid for its packet type is a Malformed Packet",
       {},
       5});
  add({"V5ConnectWillDelayNotAllowed",
       kBeforeConnect,
       V5Connect(w::prop::WillDelayInterval(1)),
       kMalformed,
       "v5 s2.2.2.2: Will Delay Interval is a will property, not a CONNECT property",
       {},
       5});
  add({"V5ConnectSubscriptionIdentifierNotAllowed",
       kBeforeConnect,
       V5Connect(w::prop::SubscriptionIdentifier(1)),
       kMalformed,
       "v5 s2.2.2.2: identifier not valid for its packet type",
       {},
       5});
  add({"V5WillSessionExpiryNotAllowed",
       kBeforeConnect,
       V5ConnectWill(w::prop::SessionExpiryInterval(1)),
       kMalformed,
       "v5 s3.1.3.2: Session Expiry is not a will property",
       {},
       5});
  add({"V5WillTopicAliasNotAllowed",
       kBeforeConnect,
       V5ConnectWill(w::prop::TopicAlias(1)),
       kMalformed,
       "v5 s3.1.3.2: Topic Alias is not a will property",
       {},
       5});
  add({"V5ConnectReceiveMaximumZero",
       kBeforeConnect,
       V5Connect(w::prop::ReceiveMaximum(0)),
       kProtocol,
       "v5 s3.1.2.11.3: Receive Maximum 0 is a Protocol Error",
       {},
       5});
  add({"V5ConnectMaximumPacketSizeZero",
       kBeforeConnect,
       V5Connect(w::prop::MaximumPacketSize(0)),
       kProtocol,
       "v5 s3.1.2.11.4: Maximum Packet Size 0 is a Protocol Error",
       {},
       5});
  add({"V5ConnectRequestProblemInformation2",
       kBeforeConnect,
       V5Connect(w::prop::RequestProblemInformation(2)),
       kProtocol,
       "v5 s3.1.2.11.7: value other than 0 or 1 is a Protocol Error",
       {},
       5});
  add({"V5ConnectRequestResponseInformation2",
       kBeforeConnect,
       V5Connect(w::prop::RequestResponseInformation(2)),
       kProtocol,
       "v5 s3.1.2.11.6: value other than 0 or 1 is a Protocol Error",
       {},
       5});
  add({"V5ConnectDuplicateSessionExpiry",
       kBeforeConnect,
       V5Connect(w::Cat(w::prop::SessionExpiryInterval(1), w::prop::SessionExpiryInterval(2))),
       kProtocol,
       "v5 s3.1.2.11.2: more than once is a Protocol Error",
       {},
       5});
  add({"V5ConnectDuplicateReceiveMaximum",
       kBeforeConnect,
       V5Connect(w::Cat(w::prop::ReceiveMaximum(1), w::prop::ReceiveMaximum(1))),
       kProtocol,
       "v5 s3.1.2.11.3: more than once is a Protocol Error",
       {},
       5});
  add({"V5ConnectDuplicateAuthenticationMethod",
       kBeforeConnect,
       V5Connect(w::Cat(w::prop::AuthenticationMethod("a"), w::prop::AuthenticationMethod("a"))),
       kProtocol,
       "v5 s3.1.2.11.9: more than once is a Protocol Error",
       {},
       5});
  add({"V5ConnectAuthenticationDataWithoutMethod",
       kBeforeConnect,
       V5Connect(w::prop::AuthenticationData("d")),
       kProtocol,
       "v5 s3.1.2.11.10: Authentication Data without Authentication Method is a Protocol Error",
       {},
       5});
  add({"V5WillDuplicateWillDelay",
       kBeforeConnect,
       V5ConnectWill(w::Cat(w::prop::WillDelayInterval(1), w::prop::WillDelayInterval(2))),
       kProtocol,
       "v5 s3.1.3.2.2: more than once is a Protocol Error",
       {},
       5});
  add({"V5WillDuplicateContentType",
       kBeforeConnect,
       V5ConnectWill(w::Cat(w::prop::ContentType("a"), w::prop::ContentType("b"))),
       kProtocol,
       "v5 s3.1.3.2.5: more than once is a Protocol Error",
       {},
       5});
  add({"V5ConnectUnknownProperty",
       kBeforeConnect,
       V5Connect(w::Hex("7f 00")),
       kMalformed,
       "v5 s2.2.2.2: an identifier not valid for the packet is a Malformed Packet",
       {},
       5});

  // ---- v5 properties on other packets ----
  add({"V5PublishUnknownProperty7F", V::kV5, V5Publish(w::Hex("7f 00")), kMalformed,
       "v5 s2.2.2.2: unknown identifier"});
  add({"V5PublishUnknownProperty00", V::kV5, V5Publish(w::Hex("00 00")), kMalformed,
       "v5 s2.2.2.2: unknown identifier 0"});
  add({"V5PublishUnknownProperty04", V::kV5, V5Publish(w::Hex("04 00 00 00 00")), kMalformed,
       "v5 s2.2.2.2: 0x04 is not a property"});
  add({"V5PublishSessionExpiryNotAllowed", V::kV5, V5Publish(w::prop::SessionExpiryInterval(1)),
       kMalformed, "v5 s2.2.2.2: Session Expiry Interval not valid in PUBLISH"});
  add({"V5PublishReasonStringNotAllowed", V::kV5, V5Publish(w::prop::ReasonString("r")), kMalformed,
       "v5 s2.2.2.2: Reason String not valid in PUBLISH"});
  add({"V5PublishDuplicateMessageExpiry", V::kV5,
       V5Publish(w::Cat(w::prop::MessageExpiryInterval(1), w::prop::MessageExpiryInterval(1))),
       kProtocol, "v5 s3.3.2.3.3: more than once is a Protocol Error"});
  add({"V5PublishDuplicatePayloadFormat", V::kV5,
       V5Publish(w::Cat(w::prop::PayloadFormatIndicator(0), w::prop::PayloadFormatIndicator(0))),
       kProtocol, "v5 s3.3.2.3.2: more than once is a Protocol Error"});
  add({"V5PublishDuplicateTopicAlias", V::kV5,
       V5Publish(w::Cat(w::prop::TopicAlias(1), w::prop::TopicAlias(2))), kProtocol,
       "v5 s3.3.2.3.4: more than once is a Protocol Error"});
  add({"V5PublishDuplicateContentType", V::kV5,
       V5Publish(w::Cat(w::prop::ContentType("a"), w::prop::ContentType("a"))), kProtocol,
       "v5 s3.3.2.3.9: more than once is a Protocol Error"});
  add({"V5PublishDuplicateCorrelationData", V::kV5,
       V5Publish(w::Cat(w::prop::CorrelationData("a"), w::prop::CorrelationData("b"))), kProtocol,
       "v5 s3.3.2.3.6: more than once is a Protocol Error"});
  add({"V5PublishSubscriptionIdentifierZero", V::kV5, V5Publish(w::prop::SubscriptionIdentifier(0)),
       kProtocol, "v5 s3.3.2.3.8: Subscription Identifier 0 is a Protocol Error"});
  add({"V5PubackTopicAliasNotAllowed", V::kV5,
       w::PubResponse(w::kPuback, 1, 0, w::prop::TopicAlias(1)), kMalformed,
       "v5 s2.2.2.2: Topic Alias not valid in PUBACK"});
  add({"V5PubrelDuplicateReasonString", V::kV5,
       w::PubResponse(w::kPubrel, 1, 0,
                      w::Cat(w::prop::ReasonString("a"), w::prop::ReasonString("b"))),
       kProtocol, "v5 s3.6.2.2.2: more than once is a Protocol Error"});
  add({"V5DisconnectWillDelayNotAllowed", V::kV5, w::Disconnect(0, w::prop::WillDelayInterval(1)),
       kMalformed, "v5 s2.2.2.2: Will Delay Interval not valid in DISCONNECT"});
  add({"V5DisconnectDuplicateSessionExpiry", V::kV5,
       w::Disconnect(0,
                     w::Cat(w::prop::SessionExpiryInterval(0), w::prop::SessionExpiryInterval(0))),
       kProtocol, "v5 s3.14.2.2.2: more than once is a Protocol Error"});
  add({"V5AuthSessionExpiryNotAllowed", V::kV5,
       w::Auth(0x18, w::Cat(w::prop::AuthenticationMethod("m"), w::prop::SessionExpiryInterval(1))),
       kMalformed, "v5 s2.2.2.2: Session Expiry Interval not valid in AUTH"});
  add({"V5AuthDuplicateAuthenticationMethod", V::kV5,
       w::Auth(0x18,
               w::Cat(w::prop::AuthenticationMethod("m"), w::prop::AuthenticationMethod("m"))),
       kProtocol, "v5 s3.15.2.2.2: more than once is a Protocol Error"});

  // ---- SUBSCRIBE (s3.8) ----
  add({"V311SubscribeNoFilters", V::kV311, w::Subscribe(4, 1, {}), kProtocol,
       "3.1.1 [MQTT-3.8.3-3]: no payload is a protocol violation", kOrMalformed});
  add({"V5SubscribeNoFilters", V::kV5, w::Subscribe(5, 1, {}), kProtocol,
       "v5 s3.8.3 [MQTT-3.8.3-2]: a SUBSCRIBE with no payload is a Protocol Error"});
  add({"V311SubscribePacketIdZero", V::kV311, w::Subscribe(4, 0, {{"a", 0}}), kProtocol,
       "[MQTT-2.2.1-3]: SUBSCRIBE needs a non-zero packet id", kOrMalformed});
  add({"V5SubscribePacketIdZero", V::kV5, w::Subscribe(5, 0, {{"a", 0}}), kProtocol,
       "v5 [MQTT-2.2.1-3]: SUBSCRIBE needs a non-zero packet id", kOrMalformed});
  add({"V311SubscribeReservedOptionBit2", V::kV311, w::Subscribe(4, 1, {{"a", 0x04}}), kMalformed,
       "3.1.1 [MQTT-3.8.3-4]: reserved bits 7-2 non-zero is malformed"});
  add({"V311SubscribeReservedOptionBit6", V::kV311, w::Subscribe(4, 1, {{"a", 0x41}}), kMalformed,
       "3.1.1 [MQTT-3.8.3-4]: reserved bits 7-2 non-zero is malformed"});
  add({"V311SubscribeQos3", V::kV311, w::Subscribe(4, 1, {{"a", 0x03}}), kMalformed,
       "3.1.1 [MQTT-3.8.3-4]: requested QoS 3 is malformed", kEither});
  add({"V5SubscribeReservedOptionBit6", V::kV5, w::Subscribe(5, 1, {{"a", 0x40}}), kMalformed,
       "v5 s3.8.3.1 [MQTT-3.8.3-5]: reserved bits non-zero is a Malformed Packet"});
  add({"V5SubscribeReservedOptionBit7", V::kV5, w::Subscribe(5, 1, {{"a", 0x81}}), kMalformed,
       "v5 s3.8.3.1 [MQTT-3.8.3-5]: reserved bits non-zero is a Malformed Packet"});
  add({"V5SubscribeRetainHandling3", V::kV5, w::Subscribe(5, 1, {{"a", 0x30}}), kProtocol,
       "v5 s3.8.3.1: Retain Handling 3 is a Protocol Error"});
  add({"V5SubscribeQos3", V::kV5, w::Subscribe(5, 1, {{"a", 0x03}}), kProtocol,
       "v5 s3.8.3.1: Maximum QoS 3 is a Protocol Error"});
  add({"V5SubscribeSubscriptionIdentifierZero", V::kV5,
       w::Subscribe(5, 1, {{"a", 0}}, w::prop::SubscriptionIdentifier(0)), kProtocol,
       "v5 s3.8.2.1.2: Subscription Identifier 0 is a Protocol Error"});
  add({"V5SubscribeTwoSubscriptionIdentifiers", V::kV5,
       w::Subscribe(5, 1, {{"a", 0}},
                    w::Cat(w::prop::SubscriptionIdentifier(1), w::prop::SubscriptionIdentifier(2))),
       kProtocol, "v5 s3.8.2.1.2: more than once is a Protocol Error"});
  add({"V5SubscribeReasonStringNotAllowed", V::kV5,
       w::Subscribe(5, 1, {{"a", 0}}, w::prop::ReasonString("r")), kMalformed,
       "v5 s2.2.2.2: Reason String not valid in SUBSCRIBE"});
  add({"V311SubscribeMissingOptions", V::kV311, w::Packet(0x82, w::Cat(w::U16(1), w::Str("a/b"))),
       kMalformed, "topic filter without its options byte"});
  add({"V311SubscribeFilterPastEnd", V::kV311,
       w::Packet(0x82, w::Cat(w::U16(1), w::U16(9), w::FromString("ab"))), kMalformed,
       "filter length past the end"});
  add({"V5SubscribeMissingPropertyLength", V::kV5, w::Hex("82 02 00 01"), kMalformed,
       "v5: property length missing"});

  // ---- UNSUBSCRIBE (s3.10) ----
  add({"V311UnsubscribeNoFilters", V::kV311, w::Unsubscribe(4, 1, {}), kProtocol,
       "3.1.1 [MQTT-3.10.3-2]: no payload is a protocol violation", kOrMalformed});
  add({"V5UnsubscribeNoFilters", V::kV5, w::Unsubscribe(5, 1, {}), kProtocol,
       "v5 s3.10.3 [MQTT-3.10.3-2]: an UNSUBSCRIBE with no Payload is a Protocol Error"});
  add({"V5UnsubscribePacketIdZero", V::kV5, w::Unsubscribe(5, 0, {"a"}), kProtocol,
       "v5 [MQTT-2.2.1-3]: UNSUBSCRIBE needs a non-zero packet id", kOrMalformed});
  add({"V5UnsubscribeSubscriptionIdentifierNotAllowed", V::kV5,
       w::Unsubscribe(5, 1, {"a"}, w::prop::SubscriptionIdentifier(1)), kMalformed,
       "v5 s2.2.2.2: Subscription Identifier not valid in UNSUBSCRIBE"});
  add({"V311UnsubscribeFilterPastEnd", V::kV311,
       w::Packet(0xA2, w::Cat(w::U16(1), w::U16(5), w::FromString("a"))), kMalformed,
       "filter length past the end"});

  // ---- CONNACK (server to client) ----
  add({"V311ConnackReservedAckFlags", V::kV311, w::Hex("20 02 02 00"), kMalformed,
       "3.1.1 [MQTT-3.2.2-1] / v5 s3.2.2.1: bits 7-1 of the acknowledge flags are reserved",
       kEither});
  add({"V311ConnackTrailingByte", V::kV311, w::Hex("20 03 00 00 00"), kMalformed,
       "3.1.1 s3.2: remaining length is 2"});
  return cases;
}

// ---- Invalid UTF-8 in every kind of UTF-8 string field (v5 s1.5.4, 3.1.1 s1.5.3) ----

struct BadUtf8 {
  const char* name;
  std::string bytes;
};

const BadUtf8 kBadUtf8[] = {
    {"Nul", "a\x00z"s},                 // U+0000 [MQTT-1.5.4-2]
    {"Surrogate", "\xed\xa0\x80"},      // U+D800 encoded [MQTT-1.5.4-1]
    {"LowSurrogate", "\xed\xbf\xbf"},   // U+DFFF encoded
    {"Overlong2", "\xc0\x80"},          // overlong U+0000
    {"Overlong2Slash", "\xc0\xaf"},     // overlong '/'
    {"Overlong3", "\xe0\x80\xaf"},      // overlong '/'
    {"Overlong4", "\xf0\x80\x80\xaf"},  // overlong '/'
    {"ByteF5", "\xf5\x80\x80\x80"},     // above U+10FFFF lead byte
    {"ByteFF", "a\xff"},
    {"ByteFE", "\xfe"},
    {"AboveMax", "\xf4\x90\x80\x80"},  // U+110000
    {"Truncated", "ab\xe6\x97"},
    {"LoneContinuation", "\x80"},
};

std::vector<ErrorCase> Utf8Cases() {
  std::vector<ErrorCase> cases;
  const std::string rule = "v5 s1.5.4 / 3.1.1 s1.5.3: ill-formed UTF-8 or U+0000 is malformed";
  for (const BadUtf8& b : kBadUtf8) {
    const std::string n = b.name;
    const std::string& s = b.bytes;
    cases.push_back({"V311ClientId" + n,
                     kBeforeConnect,
                     w::Connect({.level = 4, .client_id = s}),
                     kMalformed,
                     rule,
                     {},
                     4});
    cases.push_back({"V5ClientId" + n,
                     kBeforeConnect,
                     w::Connect({.level = 5, .client_id = s}),
                     kMalformed,
                     rule,
                     {},
                     5});
    cases.push_back({"V31ClientId" + n,
                     kBeforeConnect,
                     w::Connect({.level = 3, .client_id = s}),
                     kMalformed,
                     rule,
                     {},
                     3});
    cases.push_back({"V311WillTopic" + n,
                     kBeforeConnect,
                     w::Connect({.level = 4, .will = true, .will_topic = s}),
                     kMalformed,
                     rule,
                     {},
                     4});
    cases.push_back({"V311Username" + n,
                     kBeforeConnect,
                     w::Connect({.level = 4, .username = s}),
                     kMalformed,
                     rule,
                     {},
                     4});
    cases.push_back({"V5Username" + n,
                     kBeforeConnect,
                     w::Connect({.level = 5, .username = s}),
                     kMalformed,
                     rule,
                     {},
                     5});
    cases.push_back({"V5ConnectUserPropertyKey" + n,
                     kBeforeConnect,
                     V5Connect(w::prop::UserProperty(s, "v")),
                     kMalformed,
                     rule,
                     {},
                     5});
    cases.push_back({"V5WillContentType" + n,
                     kBeforeConnect,
                     V5ConnectWill(w::prop::ContentType(s)),
                     kMalformed,
                     rule,
                     {},
                     5});
    cases.push_back(
        {"V311PublishTopic" + n, V::kV311, w::Publish({.level = 4, .topic = s}), kMalformed, rule});
    cases.push_back({"V5PublishTopic" + n, V::kV5, w::Publish({.level = 5, .topic = "t/" + s}),
                     kMalformed, rule});
    cases.push_back({"V5PublishUserPropertyValue" + n, V::kV5,
                     V5Publish(w::prop::UserProperty("k", s)), kMalformed, rule});
    cases.push_back({"V5PublishResponseTopic" + n, V::kV5, V5Publish(w::prop::ResponseTopic(s)),
                     kMalformed, rule});
    cases.push_back(
        {"V311SubscribeFilter" + n, V::kV311, w::Subscribe(4, 1, {{s, 0}}), kMalformed, rule});
    cases.push_back(
        {"V5SubscribeFilter" + n, V::kV5, w::Subscribe(5, 1, {{"a/" + s, 0}}), kMalformed, rule});
    cases.push_back(
        {"V311UnsubscribeFilter" + n, V::kV311, w::Unsubscribe(4, 1, {s}), kMalformed, rule});
    cases.push_back({"V5PubackReasonString" + n, V::kV5,
                     w::PubResponse(w::kPuback, 1, 0x80, w::prop::ReasonString(s)), kMalformed,
                     rule});
    cases.push_back({"V5DisconnectReasonString" + n, V::kV5,
                     w::Disconnect(0x80, w::prop::ReasonString(s)), kMalformed, rule});
  }
  return cases;
}

class DecoderErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(DecoderErrorTest, RejectsWithReasonCode) {
  const ErrorCase& c = GetParam();
  SCOPED_TRACE("bytes: " + w::ToHex(c.bytes) + "\nrule: " + c.spec);
  DecodeResult r = DecodeBytes(c.bytes, c.version, c.limits);
  ASSERT_EQ(r.status, Status::kError) << DescribeResult(r);
  bool allowed = r.error == c.expected;
  for (ReasonCode alt : c.also_allowed) allowed = allowed || r.error == alt;
  if (!allowed) {
    std::ostringstream want;
    PrintTo(c.expected, &want);
    for (ReasonCode alt : c.also_allowed) {
      want << " or ";
      PrintTo(alt, &want);
    }
    ADD_FAILURE() << "error " << ::testing::PrintToString(r.error) << ", want " << want.str();
  }
  if (c.connect_level) {
    EXPECT_EQ(r.connect_level, c.connect_level) << "connect_level of a CONNECT error";
  } else if (!c.bytes.empty() && (c.bytes[0] >> 4) != 1) {
    EXPECT_FALSE(r.connect_level.has_value()) << "connect_level set for a non-CONNECT packet";
  }
}

// A malformed packet stays malformed however it arrives: with only part of it, the decoder either
// waits (kNeedMore, nothing consumed) or already reports an error; it never yields a packet.
TEST_P(DecoderErrorTest, PrefixesNeedMoreOrFail) {
  const ErrorCase& c = GetParam();
  DecodeResult full = DecodeBytes(c.bytes, c.version, c.limits);
  if (full.status != Status::kError) GTEST_SKIP() << "covered by RejectsWithReasonCode";
  for (size_t len = 0; len < c.bytes.size(); ++len) {
    w::Bytes prefix(c.bytes.begin(), c.bytes.begin() + static_cast<std::ptrdiff_t>(len));
    DecodeResult r = DecodeBytes(prefix, c.version, c.limits);
    if (r.status == Status::kNeedMore) {
      EXPECT_EQ(r.consumed, 0u) << "prefix of " << len;
    } else {
      EXPECT_EQ(r.status, Status::kError) << "prefix of " << len << ": " << DescribeResult(r);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Malformed, DecoderErrorTest, ::testing::ValuesIn(ErrorCases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return info.param.name;
                         });
INSTANTIATE_TEST_SUITE_P(InvalidUtf8, DecoderErrorTest, ::testing::ValuesIn(Utf8Cases()),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return info.param.name;
                         });

// Binary Data fields (password, will payload, correlation and authentication data) and the
// PUBLISH payload are not UTF-8: any bytes decode.
TEST(DecoderTest, BinaryFieldsAcceptAnyBytes) {
  for (const BadUtf8& b : kBadUtf8) {
    SCOPED_TRACE(b.name);
    w::Bytes connect = w::Connect({.level = 5,
                                   .properties = w::Cat(w::prop::AuthenticationMethod("m"),
                                                        w::prop::AuthenticationData(b.bytes)),
                                   .will = true,
                                   .will_properties = w::prop::CorrelationData(b.bytes),
                                   .will_topic = "w",
                                   .will_payload = b.bytes,
                                   .username = "u",
                                   .password = b.bytes});
    DecodeResult r = DecodeBytes(connect, kBeforeConnect);
    ASSERT_EQ(r.status, Status::kPacket) << DescribeResult(r);
    const auto& c = std::get<Connect>(r.packet);
    EXPECT_EQ(c.password, b.bytes);
    ASSERT_TRUE(c.will.has_value());
    EXPECT_EQ(c.will->payload, b.bytes);
    EXPECT_EQ(c.will->properties.correlation_data, b.bytes);
    EXPECT_EQ(c.properties.authentication_data, b.bytes);

    DecodeResult p = DecodeBytes(w::Publish({.level = 4, .payload = b.bytes}), V::kV311);
    ASSERT_EQ(p.status, Status::kPacket) << DescribeResult(p);
    EXPECT_EQ(std::get<Publish>(p.packet).payload, b.bytes);
  }
}

// Valid UTF-8 edge cases: the largest code point, code points either side of the surrogates.
TEST(DecoderTest, AcceptsValidUtf8EdgeCases) {
  for (const std::string& s : {"\xf4\x8f\xbf\xbf"s, "\xed\x9f\xbf"s, "\xee\x80\x80"s, "\xc2\x80"s,
                               "\xdf\xbf"s, "\xef\xbf\xbf"s, "\x7f"s}) {
    SCOPED_TRACE(w::ToHex(s));
    DecodeResult r = DecodeBytes(w::Connect({.level = 4, .client_id = s}), kBeforeConnect);
    ASSERT_EQ(r.status, Status::kPacket) << DescribeResult(r);
    EXPECT_EQ(std::get<Connect>(r.packet).client_id, s);
  }
}

// A CONNECT rejected for its level still tells the session which level it asked for (to choose
// the CONNACK format); one rejected before the level was read does not.
TEST(DecoderTest, ConnectLevelReportedOnlyOnceRead) {
  DecodeResult r = DecodeBytes(w::Connect({.level = 7}), kBeforeConnect);
  ASSERT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error, ReasonCode::kUnsupportedProtocolVersion);
  EXPECT_EQ(r.connect_level, std::optional<uint8_t>(7));

  // Protocol name cut off: the level was never read.
  r = DecodeBytes(w::Hex("10 03 00 04 4d"), kBeforeConnect);
  ASSERT_EQ(r.status, Status::kError) << DescribeResult(r);
  EXPECT_FALSE(r.connect_level.has_value());
}

}  // namespace
}  // namespace shardmq::broker::codec
