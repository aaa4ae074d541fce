#include "bench/summary.h"

#include <gtest/gtest.h>

#include "bench/payload.h"

namespace shardmq::bench {
namespace {

TEST(SummaryTest, JsonHasTheFieldsScriptsRead) {
  Summary s;
  s.mode = "pubsub";
  s.topology = "pairs";
  s.version = "5";
  s.qos = 1;
  s.sent = 10;
  s.acked = 10;
  s.received = 10;
  s.send_rate = 2.5;
  s.ack_span_s = 0.000125;  // microseconds must survive
  LatencyHistogram h;
  h.Record(1500);
  s.latency_us = Distribution::From(h, 1e3);
  const std::string json = FormatJson(s);
  EXPECT_EQ(json.back(), '\n');
  for (const char* key : {"\"mode\":\"pubsub\"", "\"topology\":\"pairs\"", "\"sent\":10",
                          "\"acked\":10", "\"received\":10", "\"lost\":0", "\"duplicates\":0",
                          "\"send_rate\":2.500", "\"p99\":1.500", "\"ok\":true",
                          "\"ack_span_s\":0.000125"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
  }
  s.errors = 1;
  EXPECT_FALSE(s.ok());
  EXPECT_NE(FormatJson(s).find("\"ok\":false"), std::string::npos);
}

TEST(SummaryTest, TextMentionsLossAndLatency) {
  Summary s;
  s.mode = "sub";
  s.version = "3.1.1";
  s.subscribers = 2;
  s.lost = 3;
  const std::string text = FormatText(s);
  EXPECT_NE(text.find("lost          3"), std::string::npos) << text;
  EXPECT_NE(text.find("latency"), std::string::npos) << text;
}

TEST(PayloadTest, StampRoundTrip) {
  char buf[kStampSize + 4] = {};
  WriteStamp(Stamp{123456789012345, 42, 7}, buf);
  Stamp s;
  ASSERT_TRUE(ReadStamp(std::string_view(buf, sizeof buf), &s));
  EXPECT_EQ(s.send_ns, 123456789012345);
  EXPECT_EQ(s.publisher, 42u);
  EXPECT_EQ(s.seq, 7u);
  EXPECT_FALSE(ReadStamp(std::string_view(buf, kStampSize - 1), &s));
}

}  // namespace
}  // namespace shardmq::bench
