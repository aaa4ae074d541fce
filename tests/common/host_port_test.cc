// Tests of common/host_port.h: "HOST:PORT" listen addresses.
#include "common/host_port.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace shardmq {
namespace {

using ::testing::HasSubstr;

struct GoodCase {
  std::string_view text;
  std::string_view host;
  uint16_t port;
};

TEST(HostPortTest, ParsesValidAddresses) {
  const GoodCase cases[] = {
      {"127.0.0.1:1883", "127.0.0.1", 1883},
      {"0.0.0.0:8883", "0.0.0.0", 8883},
      {"localhost:0", "localhost", 0},  // port 0: ephemeral
      {"localhost:65535", "localhost", 65535},
      {"broker.example.com:443", "broker.example.com", 443},
      {"[::1]:1883", "::1", 1883},  // brackets are stripped
      {"[::]:0", "::", 0},
      {"[fe80::1%eth0]:8080", "fe80::1%eth0", 8080},
      {"[2001:db8::42]:65535", "2001:db8::42", 65535},
      {"h:00080", "h", 80},  // leading zeros
  };
  for (const GoodCase& c : cases) {
    auto hp = ParseHostPort(c.text);
    ASSERT_OK(hp) << c.text;
    EXPECT_EQ(hp->host, c.host) << c.text;
    EXPECT_EQ(hp->port, c.port) << c.text;
  }
}

TEST(HostPortTest, RejectsInvalidAddresses) {
  for (std::string_view text : {
           "",                     // nothing
           "127.0.0.1",            // no port
           "localhost",            // no port
           "127.0.0.1:",           // empty port
           "127.0.0.1:65536",      // port out of range
           "127.0.0.1:99999999999999999999",  // port overflows
           "127.0.0.1:-1",         // negative port
           "127.0.0.1:+1",         // sign
           "127.0.0.1: 80",        // space
           "127.0.0.1:80 ",        // trailing garbage
           "127.0.0.1:80x",        // trailing garbage
           "127.0.0.1:0x50",       // hex
           "127.0.0.1:http",       // service name
           ":1883",                // empty host
           "[]:1883",              // empty bracketed host
           "::1:1883",             // IPv6 without brackets
           "::1",                  // IPv6 without brackets or port
           "2001:db8::1:80",       // IPv6 without brackets
           "[::1]",                // bracketed host, no port
           "[::1]:",               // bracketed host, empty port
           "[::1]1883",            // missing ':' after ']'
           "[::1:1883",            // unclosed bracket
           "[::1]:70000",          // port out of range
           "garbage",
           ":",
           "[",
           "]:80:",
       }) {
    auto hp = ParseHostPort(text);
    EXPECT_TRUE(absl::IsInvalidArgument(hp.status()))
        << '"' << text << "\" -> " << (hp.ok() ? hp->host + " port " + std::to_string(hp->port)
                                               : hp.status().ToString());
  }
}

TEST(HostPortTest, ErrorNamesTheText) {
  auto hp = ParseHostPort("nonsense-address");
  ASSERT_FALSE(hp.ok());
  EXPECT_THAT(std::string(hp.status().message()), HasSubstr("nonsense-address"));
}

TEST(HostPortTest, FormatRoundTripsThroughParse) {
  EXPECT_EQ(FormatHostPort("127.0.0.1", 7883), "127.0.0.1:7883");
  EXPECT_EQ(FormatHostPort("::1", 80), "[::1]:80");
  for (const char* text : {"127.0.0.1:1", "[::1]:65535", "node-a:0"}) {
    auto hp = ParseHostPort(text);
    ASSERT_TRUE(hp.ok()) << text;
    EXPECT_EQ(FormatHostPort(hp->host, hp->port), text);
  }
}

}  // namespace
}  // namespace shardmq
