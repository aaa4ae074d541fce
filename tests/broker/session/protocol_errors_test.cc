// Tests of broker/session/protocol_errors.h: which reason codes a failed CONNECT can report, in a
// v5 CONNACK (MQTT 5 s3.2.2.2) and as a 3.1.1 CONNACK return code (MQTT 3.1.1 s3.2.2.3).
#include "broker/session/protocol_errors.h"

#include <cstdint>
#include <map>
#include <optional>
#include <set>

#include "gtest/gtest.h"

namespace shardmq::broker::session {
namespace {

using codec::ReasonCode;

TEST(ProtocolErrorsTest, V3ConnackCodeForCodesWithA311Equivalent) {
  const std::map<ReasonCode, uint8_t> cases = {
      {ReasonCode::kUnsupportedProtocolVersion, 0x01},  // unacceptable protocol version
      {ReasonCode::kClientIdentifierNotValid, 0x02},    // identifier rejected
      {ReasonCode::kServerUnavailable, 0x03},           // server unavailable
      {ReasonCode::kServerBusy, 0x03},
      {ReasonCode::kServerShuttingDown, 0x03},
      {ReasonCode::kBadUserNameOrPassword, 0x04},  // bad user name or password
      {ReasonCode::kNotAuthorized, 0x05},          // not authorized
      {ReasonCode::kBanned, 0x05},
  };
  for (const auto& [reason, code] : cases) {
    std::optional<uint8_t> got = V3ConnackCode(reason);
    ASSERT_TRUE(got.has_value()) << "reason 0x" << std::hex << int{static_cast<uint8_t>(reason)};
    EXPECT_EQ(*got, code) << "reason 0x" << std::hex << int{static_cast<uint8_t>(reason)};
  }
}

TEST(ProtocolErrorsTest, V3ConnackCodeIsNulloptWithout311Equivalent) {
  // 3.1.1 has no return code for these: the connection is just closed.
  for (ReasonCode reason :
       {ReasonCode::kSuccess, ReasonCode::kUnspecifiedError, ReasonCode::kMalformedPacket,
        ReasonCode::kProtocolError, ReasonCode::kImplementationSpecificError,
        ReasonCode::kBadAuthenticationMethod, ReasonCode::kTopicNameInvalid,
        ReasonCode::kPacketTooLarge, ReasonCode::kQuotaExceeded, ReasonCode::kPayloadFormatInvalid,
        ReasonCode::kRetainNotSupported, ReasonCode::kQosNotSupported,
        ReasonCode::kUseAnotherServer, ReasonCode::kServerMoved,
        ReasonCode::kConnectionRateExceeded, ReasonCode::kKeepAliveTimeout,
        ReasonCode::kSessionTakenOver}) {
    EXPECT_EQ(V3ConnackCode(reason), std::nullopt)
        << "reason 0x" << std::hex << int{static_cast<uint8_t>(reason)};
  }
}

TEST(ProtocolErrorsTest, V3ConnackCodeIsAlwaysAValid311ReturnCode) {
  for (int v = 0; v <= 0xFF; ++v) {
    std::optional<uint8_t> got = V3ConnackCode(static_cast<ReasonCode>(v));
    if (!got.has_value()) continue;
    // 0 would be "accepted", and 6..255 are reserved (s3.2.2.3).
    EXPECT_GE(*got, 1) << "reason 0x" << std::hex << v;
    EXPECT_LE(*got, 5) << "reason 0x" << std::hex << v;
  }
}

TEST(ProtocolErrorsTest, IsConnackReasonMatchesSpecTable) {
  // MQTT 5 s3.2.2.2, Table 3-1, failure codes (a failed CONNECT never sends Success).
  const std::set<int> connack_failures = {0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                          0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
                                          0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
  for (int v = 0; v <= 0xFF; ++v) {
    EXPECT_EQ(IsConnackReason(static_cast<ReasonCode>(v)), connack_failures.count(v) == 1)
        << "reason 0x" << std::hex << v;
  }
}

TEST(ProtocolErrorsTest, DisconnectOnlyCodesAreNotConnackReasons) {
  for (ReasonCode reason :
       {ReasonCode::kServerShuttingDown, ReasonCode::kKeepAliveTimeout,
        ReasonCode::kSessionTakenOver, ReasonCode::kTopicFilterInvalid,
        ReasonCode::kReceiveMaximumExceeded, ReasonCode::kTopicAliasInvalid,
        ReasonCode::kMessageRateTooHigh, ReasonCode::kAdministrativeAction,
        ReasonCode::kSharedSubscriptionsNotSupported, ReasonCode::kMaximumConnectTime,
        ReasonCode::kSubscriptionIdentifiersNotSupported,
        ReasonCode::kWildcardSubscriptionsNotSupported}) {
    EXPECT_FALSE(IsConnackReason(reason))
        << "reason 0x" << std::hex << int{static_cast<uint8_t>(reason)};
  }
}

}  // namespace
}  // namespace shardmq::broker::session
