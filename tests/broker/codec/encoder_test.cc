// Encoder tests: each packet type for MQTT 3.1.1 and 5 (and 3.1 where it differs) against bytes
// built by tests/support/mqtt_wire.h or copied from the spec; EncodedSize; Encode -> Decode round
// trips; the EncodePublish fast path.
//
// Where the spec leaves the encoder a choice, these tests pin the choice the codec makes:
//  - v5 PUBACK/PUBREC/PUBREL/PUBCOMP and DISCONNECT/AUTH use the shortest form the spec allows
//    (reason code and property length omitted for Success without properties, property length
//    omitted when there are no properties);
//  - properties are written in ascending identifier order, repeated ones (user properties,
//    subscription identifiers) in the order held.
#include "broker/codec/encoder.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "broker/codec/decoder.h"
#include "broker/codec/packets.h"
#include "gtest/gtest.h"
#include "tests/broker/codec/codec_test_util.h"
#include "tests/support/mqtt_wire.h"

namespace shardmq::broker::codec {
namespace {

namespace w = ::shardmq::wire;
using namespace std::string_literals;
using V = ProtocolVersion;
using Status = DecodeResult::Status;

struct EncodeCase {
  std::string name;
  ProtocolVersion version;
  Packet packet;
  w::Bytes expected;
  // What decoding the output gives, when it is not `packet` itself: 3.1.x drops v5-only fields.
  std::optional<Packet> decodes_as = std::nullopt;
};

void PrintTo(const EncodeCase& c, std::ostream* os) { *os << c.name; }

// Properties used by several cases, with their expected bytes in ascending id order.
Properties AllPublishProperties() {
  return Properties{.payload_format_indicator = 1,
                    .message_expiry_interval = 3600,
                    .content_type = "application/json",
                    .response_topic = "reply/here",
                    .correlation_data = "\x00\x01\x02"s,
                    .subscription_identifiers = {7, 300},
                    .topic_alias = 12,
                    .user_properties = {{"b", "2"}, {"a", "1"}}};
}
w::Bytes AllPublishPropertiesBytes() {
  return w::Cat(w::prop::PayloadFormatIndicator(1), w::prop::MessageExpiryInterval(3600),
                w::prop::ContentType("application/json"), w::prop::ResponseTopic("reply/here"),
                w::prop::CorrelationData("\x00\x01\x02"s), w::prop::SubscriptionIdentifier(7),
                w::prop::SubscriptionIdentifier(300), w::prop::TopicAlias(12),
                w::prop::UserProperty("b", "2"), w::prop::UserProperty("a", "1"));
}

std::vector<EncodeCase> EncodeCases() {
  std::vector<EncodeCase> cases;
  auto add = [&cases](std::string name, V v, Packet p, w::Bytes expected,
                      std::optional<Packet> decodes_as = std::nullopt) {
    cases.push_back({std::move(name), v, std::move(p), std::move(expected), std::move(decodes_as)});
  };

  // ---- CONNACK (s3.2) ----
  add("V311ConnackAccepted", V::kV311, Connack{.session_present = true, .reason_code = 0},
      w::Hex("20 02 01 00"));
  add("V311ConnackRefused", V::kV311, Connack{.reason_code = 5}, w::Hex("20 02 00 05"));
  add("V311ConnackDropsProperties", V::kV311,
      Connack{.reason_code = 0, .properties = Properties{.session_expiry_interval = 10}},
      w::Hex("20 02 00 00"), Connack{});
  add("V31ConnackIdentifierRejected", V::kV31, Connack{.reason_code = 2}, w::Hex("20 02 00 02"));
  add("V5ConnackNoProperties", V::kV5, Connack{}, w::Hex("20 03 00 00 00"));
  add("V5ConnackSessionPresent", V::kV5, Connack{.session_present = true},
      w::Hex("20 03 01 00 00"));
  // v5 s3.2.2.3: every CONNACK property.
  add("V5ConnackAllProperties", V::kV5,
      Connack{.properties = Properties{.session_expiry_interval = 120,
                                       .assigned_client_identifier = "auto-7f3a",
                                       .server_keep_alive = 30,
                                       .authentication_method = "SCRAM-SHA-1",
                                       .authentication_data = "\x00\x10"s,
                                       .response_information = "resp/",
                                       .server_reference = "b:1883",
                                       .reason_string = "ok",
                                       .receive_maximum = 100,
                                       .topic_alias_maximum = 16,
                                       .maximum_qos = 1,
                                       .retain_available = 0,
                                       .user_properties = {{"node", "n1"}},
                                       .maximum_packet_size = 1048576,
                                       .wildcard_subscription_available = 1,
                                       .subscription_identifier_available = 0,
                                       .shared_subscription_available = 1}},
      w::Connack(
          5, false, 0x00,
          w::Cat(
              w::prop::SessionExpiryInterval(120), w::prop::AssignedClientIdentifier("auto-7f3a"),
              w::prop::ServerKeepAlive(30), w::prop::AuthenticationMethod("SCRAM-SHA-1"),
              w::prop::AuthenticationData("\x00\x10"s), w::prop::ResponseInformation("resp/"),
              w::prop::ServerReference("b:1883"), w::prop::ReasonString("ok"),
              w::prop::ReceiveMaximum(100), w::prop::TopicAliasMaximum(16), w::prop::MaximumQos(1),
              w::prop::RetainAvailable(0), w::prop::UserProperty("node", "n1"),
              w::prop::MaximumPacketSize(1048576), w::prop::WildcardSubscriptionAvailable(1),
              w::prop::SubscriptionIdentifierAvailable(0),
              w::prop::SharedSubscriptionAvailable(1))));
  add("V5ConnackRefusedWithReason", V::kV5,
      Connack{.reason_code = 0x87, .properties = Properties{.reason_string = "denied"}},
      w::Connack(5, false, 0x87, w::prop::ReasonString("denied")));
  add("V5ConnackUseAnotherServer", V::kV5,
      Connack{.reason_code = 0x9C, .properties = Properties{.server_reference = "other:1883"}},
      w::Connack(5, false, 0x9C, w::prop::ServerReference("other:1883")));

  // ---- PUBLISH (s3.3) ----
  add("V311PublishQos0", V::kV311, Publish{.topic = "a/b", .payload = "hi"},
      w::Hex("30 07 00 03 61 2f 62 68 69"));
  add("V311PublishQos1DupRetain", V::kV311,
      Publish{.dup = true, .qos = 1, .retain = true, .topic = "t", .packet_id = 10, .payload = "p"},
      w::Hex("3b 06 00 01 74 00 0a 70"));
  add("V311PublishQos2", V::kV311, Publish{.qos = 2, .topic = "t", .packet_id = 0xFFFF},
      w::Hex("34 05 00 01 74 ff ff"));
  add("V311PublishRetainQos0", V::kV311, Publish{.retain = true, .topic = "t", .payload = "x"},
      w::Hex("31 04 00 01 74 78"));
  add("V311PublishDropsProperties", V::kV311,
      Publish{.qos = 1,
              .topic = "t",
              .packet_id = 3,
              .properties = AllPublishProperties(),
              .payload = "x"},
      w::Publish({.level = 4, .qos = 1, .topic = "t", .packet_id = 3, .payload = "x"}),
      Publish{.qos = 1, .topic = "t", .packet_id = 3, .payload = "x"});
  add("V31PublishQos1", V::kV31, Publish{.qos = 1, .topic = "t", .packet_id = 1, .payload = "x"},
      w::Publish({.level = 3, .qos = 1, .topic = "t", .packet_id = 1, .payload = "x"}));
  add("V311PublishBinaryPayload", V::kV311, Publish{.topic = "t", .payload = "\x00\xff\x00"s},
      w::Publish({.level = 4, .topic = "t", .payload = "\x00\xff\x00"s}));
  add("V311PublishTwoByteRemainingLength", V::kV311,
      Publish{.topic = "t", .payload = std::string(200, 'z')},
      w::Cat(w::Hex("30 cb 01 00 01 74"), w::FromString(std::string(200, 'z'))));
  add("V311PublishThreeByteRemainingLength", V::kV311,
      Publish{.topic = "t", .payload = std::string(20000, 'z')},
      w::Cat(w::Hex("30 a3 9c 01 00 01 74"), w::FromString(std::string(20000, 'z'))));
  add("V5PublishQos0NoProperties", V::kV5, Publish{.topic = "a/b", .payload = "hi"},
      w::Hex("30 08 00 03 61 2f 62 00 68 69"));
  add("V5PublishQos1AllProperties", V::kV5,
      Publish{.qos = 1,
              .topic = "a/b",
              .packet_id = 9,
              .properties = AllPublishProperties(),
              .payload = "{}"},
      w::Publish({.level = 5,
                  .qos = 1,
                  .topic = "a/b",
                  .packet_id = 9,
                  .properties = AllPublishPropertiesBytes(),
                  .payload = "{}"}));
  add("V5PublishTopicAliasEmptyTopic", V::kV5,
      Publish{.qos = 2, .topic = "", .packet_id = 4, .properties = Properties{.topic_alias = 1}},
      w::Hex("34 08 00 00 00 04 03 23 00 01"));

  // ---- PUBACK / PUBREC / PUBREL / PUBCOMP (s3.4 - s3.7) ----
  // `error` is a non-success reason code the packet may carry (s3.4.2.1, s3.6.2.1).
  struct Ack {
    const char* name;
    uint8_t first_byte;
    PacketType type;
    uint8_t error;
  };
  const Ack acks[] = {{"Puback", w::kPuback, PacketType::kPuback, 0x80},
                      {"Pubrec", w::kPubrec, PacketType::kPubrec, 0x87},
                      {"Pubrel", w::kPubrel, PacketType::kPubrel, 0x92},
                      {"Pubcomp", w::kPubcomp, PacketType::kPubcomp, 0x92}};
  for (const Ack& a : acks) {
    const std::string n = a.name;
    const auto error = static_cast<ReasonCode>(a.error);
    add("V311" + n, V::kV311, PubResponse{a.type, 7}, w::PubResponse(a.first_byte, 7));
    add("V31" + n, V::kV31, PubResponse{a.type, 7}, w::PubResponse(a.first_byte, 7));
    // 3.1.1 has no reason codes or properties: dropped.
    add("V311" + n + "DropsReasonAndProperties", V::kV311,
        PubResponse{a.type, 8, error, Properties{.reason_string = "dropped"}},
        w::PubResponse(a.first_byte, 8), PubResponse{a.type, 8});
    // v5 s3.4.2.1: Success without properties -> just the packet id.
    add("V5" + n + "Short", V::kV5, PubResponse{a.type, 0x1234},
        w::PubResponse(a.first_byte, 0x1234));
    // v5 s3.4.2.2: no properties -> the property length may be omitted.
    add("V5" + n + "ReasonOnly", V::kV5, PubResponse{a.type, 9, error},
        w::PubResponse(a.first_byte, 9, a.error));
    add("V5" + n + "WithProperties", V::kV5,
        PubResponse{a.type, 10, error,
                    Properties{.reason_string = "why", .user_properties = {{"k", "v"}}}},
        w::PubResponse(a.first_byte, 10, a.error,
                       w::Cat(w::prop::ReasonString("why"), w::prop::UserProperty("k", "v"))));
    // Success with properties: the reason byte must be written for the properties to follow.
    add("V5" + n + "SuccessWithProperties", V::kV5,
        PubResponse{a.type, 11, ReasonCode::kSuccess, Properties{.user_properties = {{"k", "v"}}}},
        w::PubResponse(a.first_byte, 11, 0x00, w::prop::UserProperty("k", "v")));
  }
  add("V5PubackNoMatchingSubscribers", V::kV5,
      PubResponse{PacketType::kPuback, 7, ReasonCode::kNoMatchingSubscribers},
      w::Hex("40 03 00 07 10"));

  // ---- SUBACK (s3.9) ----
  add("V311Suback", V::kV311, Suback{.packet_id = 10, .reason_codes = {0x00, 0x01, 0x80}},
      w::Hex("90 05 00 0a 00 01 80"));
  add("V311SubackDropsProperties", V::kV311,
      Suback{
          .packet_id = 10, .properties = Properties{.reason_string = "r"}, .reason_codes = {0x02}},
      w::Hex("90 03 00 0a 02"), Suback{.packet_id = 10, .reason_codes = {0x02}});
  add("V31Suback", V::kV31, Suback{.packet_id = 1, .reason_codes = {0x01}},
      w::Hex("90 03 00 01 01"));
  add("V5SubackNoProperties", V::kV5, Suback{.packet_id = 10, .reason_codes = {0x00, 0x02, 0x8F}},
      w::Hex("90 06 00 0a 00 00 02 8f"));
  add("V5SubackWithProperties", V::kV5,
      Suback{.packet_id = 11,
             .properties = Properties{.reason_string = "r", .user_properties = {{"k", "v"}}},
             .reason_codes = {0x01, 0x97}},
      w::Suback(5, 11, {0x01, 0x97},
                w::Cat(w::prop::ReasonString("r"), w::prop::UserProperty("k", "v"))));

  // ---- UNSUBACK (s3.11): 3.1.1 has only the packet id ----
  add("V311Unsuback", V::kV311, Unsuback{.packet_id = 11}, w::Hex("b0 02 00 0b"));
  add("V311UnsubackDropsReasonCodes", V::kV311,
      Unsuback{.packet_id = 11,
               .properties = Properties{.reason_string = "r"},
               .reason_codes = {0x00, 0x11}},
      w::Hex("b0 02 00 0b"), Unsuback{.packet_id = 11});
  add("V31Unsuback", V::kV31, Unsuback{.packet_id = 2}, w::Hex("b0 02 00 02"));
  add("V5Unsuback", V::kV5, Unsuback{.packet_id = 11, .reason_codes = {0x00, 0x11}},
      w::Hex("b0 05 00 0b 00 00 11"));
  add("V5UnsubackWithProperties", V::kV5,
      Unsuback{
          .packet_id = 12, .properties = Properties{.reason_string = "no"}, .reason_codes = {0x87}},
      w::Unsuback(5, 12, {0x87}, w::prop::ReasonString("no")));

  // ---- PINGREQ / PINGRESP ----
  for (V v : {V::kV31, V::kV311, V::kV5}) {
    const std::string lv = "Level" + std::to_string(static_cast<int>(v));
    add("Pingresp" + lv, v, Pingresp{}, w::Hex("d0 00"));
    add("Pingreq" + lv, v, Pingreq{}, w::Hex("c0 00"));
  }

  // ---- DISCONNECT (s3.14) ----
  add("V311Disconnect", V::kV311, Disconnect{}, w::Hex("e0 00"));
  add("V311DisconnectDropsReason", V::kV311,
      Disconnect{.reason = ReasonCode::kServerShuttingDown,
                 .properties = Properties{.reason_string = "bye"}},
      w::Hex("e0 00"), Disconnect{});
  add("V31Disconnect", V::kV31, Disconnect{}, w::Hex("e0 00"));
  add("V5DisconnectNormal", V::kV5, Disconnect{}, w::Hex("e0 00"));
  add("V5DisconnectReasonOnly", V::kV5, Disconnect{.reason = ReasonCode::kServerShuttingDown},
      w::Hex("e0 01 8b"));
  add("V5DisconnectSessionTakenOver", V::kV5, Disconnect{.reason = ReasonCode::kSessionTakenOver},
      w::Hex("e0 01 8e"));
  add("V5DisconnectWithProperties", V::kV5,
      Disconnect{
          .reason = ReasonCode::kUseAnotherServer,
          .properties = Properties{.server_reference = "other:1883", .reason_string = "moved"}},
      w::Disconnect(
          0x9C, w::Cat(w::prop::ServerReference("other:1883"), w::prop::ReasonString("moved"))));
  add("V5DisconnectNormalWithSessionExpiry", V::kV5,
      Disconnect{.properties = Properties{.session_expiry_interval = 0}},
      w::Disconnect(0x00, w::prop::SessionExpiryInterval(0)));

  // ---- AUTH (v5 s3.15) ----
  add("V5AuthSuccessEmpty", V::kV5, Auth{}, w::Hex("f0 00"));
  add("V5AuthContinue", V::kV5,
      Auth{.reason = ReasonCode::kContinueAuthentication,
           .properties = Properties{.authentication_method = "SCRAM-SHA-1",
                                    .authentication_data = "s=salt\x00"s}},
      w::Auth(0x18, w::Cat(w::prop::AuthenticationMethod("SCRAM-SHA-1"),
                           w::prop::AuthenticationData("s=salt\x00"s))));
  add("V5AuthSuccessWithMethod", V::kV5,
      Auth{.properties = Properties{.authentication_method = "PLAIN"}},
      w::Auth(0x00, w::prop::AuthenticationMethod("PLAIN")));

  // ---- CONNECT (s3.1; client to server: the bench load generator and tests use it) ----
  add("V311ConnectMinimal", V::kV311,
      Connect{.version = V::kV311,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 60,
              .client_id = "clid"},
      w::Hex("10 10 00 04 4d 51 54 54 04 02 00 3c 00 04 63 6c 69 64"));
  add("V31ConnectMinimal", V::kV31,
      Connect{.version = V::kV31,
              .protocol_name = "MQIsdp",
              .clean_start = true,
              .keep_alive = 10,
              .client_id = "clid"},
      w::Hex("10 12 00 06 4d 51 49 73 64 70 03 02 00 0a 00 04 63 6c 69 64"));
  add("V311ConnectFull", V::kV311,
      Connect{.version = V::kV311,
              .protocol_name = "MQTT",
              .keep_alive = 5,
              .client_id = "c",
              .will = Will{.topic = "w", .payload = "bye", .qos = 1, .retain = true},
              .username = "u",
              .password = "\x00p"s},
      w::Connect({.level = 4,
                  .clean_start = false,
                  .keep_alive = 5,
                  .client_id = "c",
                  .will = true,
                  .will_qos = 1,
                  .will_retain = true,
                  .will_topic = "w",
                  .will_payload = "bye",
                  .username = "u",
                  .password = "\x00p"s}));
  add("V5ConnectFull", V::kV5,
      Connect{.version = V::kV5,
              .protocol_name = "MQTT",
              .clean_start = true,
              .keep_alive = 30,
              .client_id = "v5",
              .will = Will{.topic = "lwt",
                           .payload = "gone",
                           .qos = 2,
                           .properties = Properties{.payload_format_indicator = 1,
                                                    .will_delay_interval = 10}},
              .password = "pw",
              .properties = Properties{.session_expiry_interval = 300,
                                       .receive_maximum = 50,
                                       .user_properties = {{"k", "v"}}}},
      w::Connect(
          {.level = 5,
           .clean_start = true,
           .keep_alive = 30,
           .properties = w::Cat(w::prop::SessionExpiryInterval(300), w::prop::ReceiveMaximum(50),
                                w::prop::UserProperty("k", "v")),
           .client_id = "v5",
           .will = true,
           .will_qos = 2,
           .will_properties =
               w::Cat(w::prop::PayloadFormatIndicator(1), w::prop::WillDelayInterval(10)),
           .will_topic = "lwt",
           .will_payload = "gone",
           .password = "pw"}));

  // ---- SUBSCRIBE / UNSUBSCRIBE (client to server) ----
  add("V311Subscribe", V::kV311,
      Subscribe{.packet_id = 10, .subscriptions = {{.filter = "a/b", .max_qos = 1}}},
      w::Hex("82 08 00 0a 00 03 61 2f 62 01"));
  add("V5SubscribeOptions", V::kV5,
      Subscribe{
          .packet_id = 2,
          .properties = Properties{.subscription_identifiers = {42}},
          .subscriptions =
              {{.filter = "a", .max_qos = 1, .no_local = true},
               {.filter = "b", .max_qos = 2, .retain_as_published = true, .retain_handling = 2}}},
      w::Subscribe(5, 2, {{"a", 0x05}, {"b", 0x2A}}, w::prop::SubscriptionIdentifier(42)));
  add("V311Unsubscribe", V::kV311, Unsubscribe{.packet_id = 3, .filters = {"a/b", "c"}},
      w::Unsubscribe(4, 3, {"a/b", "c"}));
  add("V5Unsubscribe", V::kV5,
      Unsubscribe{.packet_id = 3,
                  .properties = Properties{.user_properties = {{"k", "v"}}},
                  .filters = {"a/b"}},
      w::Unsubscribe(5, 3, {"a/b"}, w::prop::UserProperty("k", "v")));
  return cases;
}

class EncoderTest : public ::testing::TestWithParam<EncodeCase> {};

TEST_P(EncoderTest, EncodesExpectedBytes) {
  const EncodeCase& c = GetParam();
  w::Bytes got = EncodeBytes(c.packet, c.version);
  EXPECT_EQ(w::ToHex(got), w::ToHex(c.expected)) << test_internal::Describe(c.packet);
}

TEST_P(EncoderTest, EncodedSizeMatches) {
  const EncodeCase& c = GetParam();
  EXPECT_EQ(EncodedSize(c.packet, c.version), EncodeBytes(c.packet, c.version).size());
  EXPECT_EQ(EncodedSize(c.packet, c.version), c.expected.size());
}

TEST_P(EncoderTest, AppendsToExistingOutput) {
  const EncodeCase& c = GetParam();
  std::string out = "prefix";
  Encode(c.packet, c.version, &out);
  ASSERT_GE(out.size(), 6u);
  EXPECT_EQ(out.substr(0, 6), "prefix");
  EXPECT_EQ(w::ToHex(out.substr(6)), w::ToHex(c.expected));
}

TEST_P(EncoderTest, RoundTripsThroughDecoder) {
  const EncodeCase& c = GetParam();
  w::Bytes encoded = EncodeBytes(c.packet, c.version);
  DecodeResult r = DecodeBytes(encoded, c.version);
  ASSERT_EQ(r.status, Status::kPacket) << w::ToHex(encoded) << " -> " << DescribeResult(r);
  EXPECT_EQ(r.consumed, encoded.size());
  EXPECT_EQ(r.packet, c.decodes_as.value_or(c.packet));
}

INSTANTIATE_TEST_SUITE_P(AllPackets, EncoderTest, ::testing::ValuesIn(EncodeCases()),
                         [](const ::testing::TestParamInfo<EncodeCase>& info) {
                           return info.param.name;
                         });

// EncodePublish writes the same bytes as Encode of the whole Publish, taking the payload from its
// argument and ignoring header.payload.
TEST(EncoderTest, EncodePublishMatchesEncode) {
  const std::vector<std::pair<Publish, V>> cases = {
      {Publish{.topic = "a/b"}, V::kV311},
      {Publish{.dup = true, .qos = 1, .retain = true, .topic = "a", .packet_id = 5}, V::kV311},
      {Publish{.qos = 2, .topic = "t", .packet_id = 6}, V::kV31},
      {Publish{.qos = 1, .topic = "x", .packet_id = 7, .properties = AllPublishProperties()},
       V::kV5},
      {Publish{.qos = 1, .topic = "x", .packet_id = 7, .properties = AllPublishProperties()},
       V::kV311},
      {Publish{.topic = "", .properties = Properties{.topic_alias = 2}}, V::kV5},
  };
  for (const auto& [header, version] : cases) {
    for (const std::string& payload : {""s, "p"s, std::string(130, 'q'), std::string(17000, 'r')}) {
      SCOPED_TRACE(test_internal::Describe(header) + " payload " + std::to_string(payload.size()));
      Publish whole = header;
      whole.payload = payload;
      w::Bytes expected = EncodeBytes(whole, version);

      Publish with_other_payload = header;
      with_other_payload.payload = "must be ignored";
      std::string out = "prefix";
      EncodePublish(with_other_payload, payload, version, &out);
      EXPECT_EQ(w::ToHex(out.substr(6)), w::ToHex(expected));
      EXPECT_EQ(PublishSize(with_other_payload, payload.size(), version), expected.size());
      EXPECT_EQ(EncodedSize(whole, version), expected.size());
    }
  }
}

// The encoder's Remaining Length is the spec's minimal VBI at every boundary (v5 s1.5.5 table).
TEST(EncoderTest, RemainingLengthBoundaries) {
  struct Boundary {
    uint32_t remaining;
    const char* vbi;
  };
  const Boundary boundaries[] = {
      {0 + 5, "05"},       {127, "7f"},           {128, "80 01"},          {16383, "ff 7f"},
      {16384, "80 80 01"}, {2097151, "ff ff 7f"}, {2097152, "80 80 80 01"}};
  for (const Boundary& b : boundaries) {
    SCOPED_TRACE(b.remaining);
    // Topic "top" takes 5 bytes of the remaining length.
    Publish p{.topic = "top", .payload = std::string(b.remaining - 5, 'x')};
    w::Bytes got = EncodeBytes(p, V::kV311);
    w::Bytes vbi = w::Hex(b.vbi);
    ASSERT_GE(got.size(), 1 + vbi.size());
    EXPECT_EQ(w::ToHex(w::Bytes(got.begin() + 1,
                                got.begin() + 1 + static_cast<std::ptrdiff_t>(vbi.size()))),
              w::ToHex(vbi));
    EXPECT_EQ(got.size(), 1 + vbi.size() + b.remaining);
    EXPECT_EQ(EncodedSize(p, V::kV311), got.size());
  }
}

}  // namespace
}  // namespace shardmq::broker::codec
