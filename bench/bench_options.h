// Command line of `shardmq bench`: the mode and its options, parsed into a plain struct.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "broker/codec/packets.h"
#include "common/status.h"

namespace shardmq::bench {

enum class Mode {
  kPub,     // publishers only
  kSub,     // subscribers only
  kConn,    // idle connections (keepalive pings only)
  kPubSub,  // publishers and subscribers in one process
};

// Who talks to whom in pubsub mode (N = --clients).
enum class Topology {
  kPairs,   // N publishers, N subscribers; subscriber i subscribes to publisher i's topic
  kFanIn,   // N publishers, 1 subscriber subscribed to all N topics
  kFanOut,  // 1 publisher, N subscribers all subscribed to its topic
};

struct Options {
  Mode mode = Mode::kPub;
  Topology topology = Topology::kPairs;
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  uint32_t clients = 1;      // -c / --clients
  uint32_t threads = 2;      // io_context threads; clients are spread round-robin
  // pubsub: extra threads for the subscribers alone (0 = they share `threads`). Unlimited
  // publishers can otherwise starve subscribers on the same thread, and the run measures the
  // load generator rather than the broker.
  uint32_t sub_threads = 0;
  uint32_t start_index = 0;  // first client index (%i, client ids, publisher ids)
  uint8_t qos = 0;
  uint32_t size = 64;              // payload bytes, >= kStampSize
  double rate = 0;                 // messages/s per publisher; 0 = as fast as the window allows
  uint32_t inflight = 32;          // unacknowledged QoS 1/2 messages per publisher, 1..65535
  std::string topic = "bench/%i";  // %i = client index
  // pubsub --fan-in / --fan-out: the subscribers' one filter instead of the publishers' topics
  // ("" = those topics). Must match every publisher's topic: loss is counted as if it did.
  std::string sub_topic;
  // sub: connect without SUBSCRIBE (with --no-clean: resume a stored session and receive what
  // it queued).
  bool no_subscribe = false;
  broker::codec::ProtocolVersion version = broker::codec::ProtocolVersion::kV5;
  double duration_s = 10;  // run (pub/sub/pubsub) or hold (conn) time; 0 = none (--count)
  uint64_t count = 0;      // messages per publisher (pub, pubsub) / subscriber (sub); 0 = none
  double drain_s = 5;      // after publishing stops: wait this long at most for acks/messages
  double connect_timeout_s = 10;
  double connect_rate = 0;  // new connections/s over all threads; 0 = as fast as possible
  uint16_t keepalive_s = 60;
  bool clean = true;                 // Clean Session (3.1.1) / Clean Start (5)
  uint32_t session_expiry_s = 3600;  // MQTT 5, with --no-clean only
  std::string client_prefix;         // default "bench-<pid>-"
  std::string username;
  std::string password;
  bool tls = false;
  std::string cafile;    // default: the system trust store
  std::string certfile;  // client certificate (optional)
  std::string keyfile;
  bool insecure = false;  // do not verify the server certificate
  bool quiet = false;     // no progress lines
  bool json = false;      // summary as JSON on stdout
  bool help = false;
};

// Parses the arguments after "bench" (args[0] is the mode, unless it is --help).
// InvalidArgumentError naming the argument when something is unknown, missing or out of range.
absl::StatusOr<Options> ParseOptions(const std::vector<std::string>& args);

// The --help text.
std::string_view Usage();

std::string_view ModeName(Mode mode);
std::string_view TopologyName(Topology topology);
std::string_view VersionName(broker::codec::ProtocolVersion version);

// `topic` with every "%i" replaced by `index`.
std::string ExpandTopic(std::string_view topic, uint64_t index);

}  // namespace shardmq::bench
