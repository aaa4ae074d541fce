// Checks the wire builders against the spec's own numbers, so tests built on them rest on
// something other than the codec.
#include "tests/support/mqtt_wire.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"

namespace shardmq::wire {
namespace {

using namespace std::string_literals;

// v5 s1.5.5 table: the first and last value of each Variable Byte Integer size.
TEST(MqttWireTest, VariableByteIntegerMatchesSpecTable) {
  EXPECT_EQ(ToHex(Vbi(0)), "00");
  EXPECT_EQ(ToHex(Vbi(127)), "7f");
  EXPECT_EQ(ToHex(Vbi(128)), "80 01");
  EXPECT_EQ(ToHex(Vbi(16383)), "ff 7f");
  EXPECT_EQ(ToHex(Vbi(16384)), "80 80 01");
  EXPECT_EQ(ToHex(Vbi(2097151)), "ff ff 7f");
  EXPECT_EQ(ToHex(Vbi(2097152)), "80 80 80 01");
  EXPECT_EQ(ToHex(Vbi(268435455)), "ff ff ff 7f");
  EXPECT_EQ(ToHex(Vbi(321)), "c1 02");  // the spec's worked example: 321 = 65 + 2*128
}

// v5 s1.5.4.1 example: "A" followed by U+2A6D4 encodes as 00 05 41 F0 AA 9B 94.
TEST(MqttWireTest, Utf8StringMatchesSpecExample) {
  EXPECT_EQ(ToHex(Str("A\xf0\xaa\x9b\x94")), "00 05 41 f0 aa 9b 94");
  EXPECT_EQ(ToHex(Str("")), "00 00");
  EXPECT_EQ(ToHex(Bin("\x00\xff"s)), "00 02 00 ff");
}

TEST(MqttWireTest, HexParsesSpacesAndPrefixes) {
  EXPECT_EQ(Hex("10 0c,0x0A\nff"), (Bytes{0x10, 0x0c, 0x0a, 0xff}));
  EXPECT_EQ(Hex(""), Bytes{});
}

TEST(MqttWireTest, PropertiesArePrefixedWithTheirLength) {
  EXPECT_EQ(ToHex(Props()), "00");
  EXPECT_EQ(ToHex(Props(Cat(prop::SessionExpiryInterval(10), prop::ReceiveMaximum(20)))),
            "08 11 00 00 00 0a 21 00 14");
  EXPECT_EQ(ToHex(prop::UserProperty("k", "v")), "26 00 01 6b 00 01 76");
  EXPECT_EQ(ToHex(prop::SubscriptionIdentifier(128)), "0b 80 01");
}

// 3.1.1 s3.1.3 example CONNECT variable header: 00 04 'MQTT' 04 CE 00 0A (user name, password,
// will QoS 1, will flag, clean session; keep alive 10).
TEST(MqttWireTest, ConnectMatchesSpecVariableHeader) {
  Bytes connect = Connect({.level = 4,
                           .keep_alive = 10,
                           .client_id = "c",
                           .will = true,
                           .will_qos = 1,
                           .will_topic = "w",
                           .will_payload = "p",
                           .username = "u",
                           .password = "x"});
  ASSERT_GT(connect.size(), 12u);
  EXPECT_EQ(ToHex(Bytes(connect.begin() + 2, connect.begin() + 12)),
            "00 04 4d 51 54 54 04 ce 00 0a");
  EXPECT_EQ(connect[1], connect.size() - 2);

  Bytes v31 = Connect({.level = 3, .client_id = "c"});
  EXPECT_EQ(ToHex(Bytes(v31.begin() + 2, v31.begin() + 11)), "00 06 4d 51 49 73 64 70 03");
  Bytes v5 = Connect({.level = 5, .client_id = "c"});
  // v5: property length 00 after keep alive, then the client id.
  EXPECT_EQ(ToHex(v5), "10 0e 00 04 4d 51 54 54 05 02 00 3c 00 00 01 63");
}

TEST(MqttWireTest, PublishFlagsAndLayout) {
  EXPECT_EQ(ToHex(Publish({.topic = "a/b", .payload = "hi"})), "30 07 00 03 61 2f 62 68 69");
  EXPECT_EQ(ToHex(Publish({.dup = true, .qos = 1, .retain = true, .topic = "t", .packet_id = 10})),
            "3b 05 00 01 74 00 0a");
  EXPECT_EQ(ToHex(Publish({.level = 5, .qos = 2, .topic = "t", .packet_id = 1})),
            "34 06 00 01 74 00 01 00");
}

TEST(MqttWireTest, OtherPackets) {
  EXPECT_EQ(ToHex(Subscribe(4, 10, {{"a/b", 1}})), "82 08 00 0a 00 03 61 2f 62 01");
  EXPECT_EQ(SubOptions(2, true, true, 2), 0x2E);
  EXPECT_EQ(ToHex(Unsubscribe(5, 1, {"a"})), "a2 06 00 01 00 00 01 61");
  EXPECT_EQ(ToHex(Suback(4, 10, {0x00, 0x01, 0x80})), "90 05 00 0a 00 01 80");
  EXPECT_EQ(ToHex(Unsuback(4, 11, {0x00})), "b0 02 00 0b");
  EXPECT_EQ(ToHex(Unsuback(5, 11, {0x00})), "b0 04 00 0b 00 00");
  EXPECT_EQ(ToHex(Connack(4, true, 0)), "20 02 01 00");
  EXPECT_EQ(ToHex(Connack(5, false, 0x86)), "20 03 00 86 00");
  EXPECT_EQ(ToHex(PubResponse(kPubrel, 7)), "62 02 00 07");
  EXPECT_EQ(ToHex(PubResponse(kPuback, 7, 0x10)), "40 03 00 07 10");
  EXPECT_EQ(ToHex(PubResponse(kPubcomp, 7, 0x00, {})), "70 04 00 07 00 00");
  EXPECT_EQ(ToHex(Disconnect(0x8e)), "e0 01 8e");
  EXPECT_EQ(ToHex(Auth(0x18, {})), "f0 02 18 00");
  EXPECT_EQ(ToHex(Pingreq()), "c0 00");
  EXPECT_EQ(ToHex(Pingresp()), "d0 00");
}

}  // namespace
}  // namespace shardmq::wire
