#include "bench/bench_options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shardmq::bench {
namespace {

using broker::codec::ProtocolVersion;

absl::StatusOr<Options> Parse(std::vector<std::string> args) { return ParseOptions(args); }

TEST(BenchOptionsTest, Defaults) {
  auto o = Parse({"pub"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->mode, Mode::kPub);
  EXPECT_EQ(o->host, "127.0.0.1");
  EXPECT_EQ(o->port, 1883);
  EXPECT_EQ(o->clients, 1u);
  EXPECT_EQ(o->threads, 2u);
  EXPECT_EQ(o->qos, 0);
  EXPECT_EQ(o->size, 64u);
  EXPECT_EQ(o->inflight, 32u);
  EXPECT_EQ(o->topic, "bench/%i");
  EXPECT_EQ(o->version, ProtocolVersion::kV5);
  EXPECT_EQ(o->duration_s, 10);
  EXPECT_TRUE(o->clean);
  EXPECT_EQ(o->client_prefix.rfind("bench-", 0), 0u);
}

TEST(BenchOptionsTest, AllFlagForms) {
  auto o = Parse({"pubsub",     "-c",         "8",         "--threads=4",      "-q",
                  "2",          "--size",     "128",       "--rate",           "0.5",
                  "--inflight", "100",        "-t",        "x/%i/y",           "--version",
                  "3.1.1",      "--duration", "2.5",       "--no-clean",       "--client-prefix",
                  "p-",         "--fan-out",  "--json",    "--quiet",          "--port",
                  "1999",       "--host",     "localhost", "--connect-rate=50"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->mode, Mode::kPubSub);
  EXPECT_EQ(o->clients, 8u);
  EXPECT_EQ(o->threads, 4u);
  EXPECT_EQ(o->qos, 2);
  EXPECT_EQ(o->size, 128u);
  EXPECT_EQ(o->rate, 0.5);
  EXPECT_EQ(o->inflight, 100u);
  EXPECT_EQ(o->topic, "x/%i/y");
  EXPECT_EQ(o->version, ProtocolVersion::kV311);
  EXPECT_EQ(o->duration_s, 2.5);
  EXPECT_FALSE(o->clean);
  EXPECT_EQ(o->client_prefix, "p-");
  EXPECT_EQ(o->topology, Topology::kFanOut);
  EXPECT_TRUE(o->json);
  EXPECT_TRUE(o->quiet);
  EXPECT_EQ(o->port, 1999);
  EXPECT_EQ(o->host, "localhost");
  EXPECT_EQ(o->connect_rate, 50);
}

TEST(BenchOptionsTest, CountKeepsTheDefaultDuration) {
  // Bounded unless asked otherwise: --count ends a run early, --duration 0 lifts the time limit.
  auto o = Parse({"pub", "--count", "100"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->count, 100u);
  EXPECT_EQ(o->duration_s, 10);
  o = Parse({"pub", "--count", "100", "--duration", "0"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->duration_s, 0);
}

TEST(BenchOptionsTest, Help) {
  for (auto args : std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"pub", "--help"}}) {
    auto o = Parse(args);
    ASSERT_TRUE(o.ok());
    EXPECT_TRUE(o->help);
  }
  EXPECT_NE(Usage().find("--fan-in"), std::string_view::npos);
}

TEST(BenchOptionsTest, Rejects) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"publish"},
      {"pub", "--qos", "3"},
      {"pub", "--size", "15"},
      {"pub", "--clients", "0"},
      {"pub", "--port", "70000"},
      {"pub", "--inflight", "0"},
      {"pub", "--rate", "-1"},
      {"pub", "--version", "4.0"},
      {"pub", "--duration", "abc"},
      {"pub", "--duration", "0"},  // unbounded
      {"conn", "--duration", "0", "--count", "3"},
      {"pub", "-t", "a/#"},          // wildcard in a publish topic
      {"pub", "--fan-in"},           // pubsub only
      {"pub", "--cafile", "x.pem"},  // needs --tls
      {"pub", "--tls", "--cert", "c.pem"},
      {"pub", "--clients"},  // missing value
      {"pub", "--json=1"},
      {"pub", "--bogus"},
  };
  for (const auto& args : bad) {
    auto o = Parse(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    ASSERT_FALSE(o.ok()) << joined;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << joined;
  }
}

TEST(BenchOptionsTest, SubscriberTopicMayHaveWildcards) {
  auto o = Parse({"sub", "-t", "bench/#"});
  ASSERT_TRUE(o.ok()) << o.status();
}

TEST(BenchOptionsTest, SubThreads) {
  auto o = Parse({"pubsub", "-c", "8", "--fan-in", "--threads", "2", "--sub-threads", "1"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->threads, 2u);
  EXPECT_EQ(o->sub_threads, 1u);
  EXPECT_EQ(Parse({"pubsub"})->sub_threads, 0u);
  EXPECT_FALSE(Parse({"pub", "--sub-threads", "1"}).ok());
  EXPECT_FALSE(Parse({"pubsub", "--sub-threads", "x"}).ok());
}

TEST(BenchOptionsTest, SubTopic) {
  // Fan-in: one wildcard filter instead of one subscription per publisher topic.
  auto o = Parse({"pubsub", "-c", "8", "--fan-in", "--sub-topic", "bench/#"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->sub_topic, "bench/#");
  EXPECT_EQ(o->topology, Topology::kFanIn);
  o = Parse({"pubsub", "-c", "3", "--fan-out", "--sub-topic=+/0", "--start-index", "0"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->sub_topic, "+/0");
  EXPECT_TRUE(Parse({"pubsub"})->sub_topic.empty());

  const std::vector<std::vector<std::string>> bad = {
      {"pubsub", "--sub-topic", "bench/#"},                         // pairs: one filter per pair
      {"sub", "--sub-topic", "bench/#"},                            // sub has -t
      {"pubsub", "--fan-in", "--sub-topic", "a/#/b"},               // not a valid filter
      {"pubsub", "--fan-in", "--sub-topic", ""},                    // empty
      {"pubsub", "--fan-in", "-c", "2", "--sub-topic", "bench/0"},  // misses bench/1
      {"pubsub", "--fan-out", "--start-index", "5", "--sub-topic", "bench/0"},
      {"pubsub", "--fan-in", "--sub-topic"},  // missing value
  };
  for (const auto& args : bad) {
    auto r = Parse(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    ASSERT_FALSE(r.ok()) << joined;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << joined;
  }
}

TEST(BenchOptionsTest, NoSubscribe) {
  // Resume persistent sessions subscribed by an earlier run, without subscribing again.
  auto o = Parse(
      {"sub", "-c", "10", "--no-clean", "--client-prefix", "p-", "--no-subscribe", "--count", "5"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->no_subscribe);
  EXPECT_FALSE(o->clean);
  EXPECT_FALSE(Parse({"sub"})->no_subscribe);

  const std::vector<std::vector<std::string>> bad = {
      {"sub", "--no-subscribe"},                // a clean session has no subscriptions
      {"pub", "--no-clean", "--no-subscribe"},  // sub only
      {"pubsub", "--no-clean", "--no-subscribe"},
      {"sub", "--no-clean", "--no-subscribe=1"},  // takes no value
  };
  for (const auto& args : bad) {
    auto r = Parse(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    ASSERT_FALSE(r.ok()) << joined;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << joined;
  }
}

TEST(BenchOptionsTest, ExpandTopic) {
  EXPECT_EQ(ExpandTopic("bench/%i", 7), "bench/7");
  EXPECT_EQ(ExpandTopic("%i/%i", 12), "12/12");
  EXPECT_EQ(ExpandTopic("a/%x/%", 3), "a/%x/%");
  EXPECT_EQ(ExpandTopic("plain", 3), "plain");
}

}  // namespace
}  // namespace shardmq::bench
