#include "bench/bench_options.h"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>

#include "bench/payload.h"
#include "common/topic.h"

namespace shardmq::bench {

namespace {

constexpr std::string_view kUsage = R"(Usage: shardmq bench pub|sub|conn|pubsub [options]

MQTT load generator (like emqtt-bench). Every run is bounded by --duration and/or --count, then
prints a summary (sent, acked, received, lost, duplicates, throughput, latency percentiles,
connect times) and exits: 0 on success, 1 on a connect failure or protocol error, 2 on bad usage.

Modes:
  pub      N publishers; payloads carry a steady-clock timestamp, publisher id and sequence
  sub      N subscribers; measure end-to-end latency from the payloads, loss (sequence gaps) and
           duplicates per publisher (same machine as the publishers)
  conn     open N connections at --connect-rate and hold them (keepalive pings) for --duration
  pubsub   publishers and subscribers in one process (exact loss accounting); by default pairs:
           subscriber i subscribes to the topic publisher i publishes to

Options:
  --host HOST            broker host (default 127.0.0.1)
  -p, --port PORT        broker port (default 1883)
  -c, --clients N        clients (default 1); pubsub: N publishers and N subscribers (pairs)
  --threads T            io_context threads, clients spread round-robin (default 2)
  --sub-threads N        pubsub: N more threads for the subscribers alone (default 0: they share
                         --threads; unlimited publishers can starve a subscriber on their thread)
  -q, --qos 0|1|2        QoS of publishes and subscriptions (default 0)
  -s, --size BYTES       payload size, at least 16 (default 64)
  --rate MSGS_PER_S      per publisher; 0 = unlimited, bounded by --inflight for QoS 1/2
                         (default 0)
  --inflight N           unacknowledged QoS 1/2 publishes per publisher (default 32; also capped
                         by the broker's MQTT 5 Receive Maximum)
  -t, --topic TEMPLATE   topic, %i = client index (default "bench/%i"); sub may use wildcards
  --version 3.1.1|5      MQTT version (default 5)
  --duration SECONDS     publishing / subscribing / holding time (default 10); 0 = no time
                         limit, allowed only with --count
  --count N              pub, pubsub: messages per publisher; sub: messages per subscriber;
                         the run ends at --count or --duration, whichever comes first
  --drain SECONDS        after publishing stops, wait at most this long for outstanding acks
                         and (pubsub) messages (default 5)
  --fan-in               pubsub: N publishers, one subscriber subscribed to all their topics
  --fan-out              pubsub: one publisher, N subscribers of its topic
  --sub-topic FILTER     pubsub --fan-in / --fan-out: subscribers subscribe to FILTER (e.g.
                         'bench/#') instead of the publishers' topics; it must match them all
  --no-subscribe         sub: connect only, no SUBSCRIBE; with --no-clean and a fixed
                         --client-prefix, resumes sessions subscribed by an earlier run and
                         receives what they queued
  --clean / --no-clean   Clean Session / Clean Start (default --clean); --no-clean with MQTT 5
                         asks for a Session Expiry Interval of --session-expiry seconds
  --session-expiry S     (default 3600)
  --client-prefix P      client ids are P + pub|sub|conn + index (default "bench-<pid>-")
  --start-index N        first client index (default 0): lets several processes use disjoint
                         topics, client ids and publisher ids
  --keepalive SECONDS    (default 60)
  --connect-rate N       new connections per second over all threads (default 0 = unlimited,
                         at most 256 connects in progress per thread)
  --connect-timeout S    per connection: TCP + TLS + CONNACK (+ SUBACK) (default 10)
  --username U, --password P
  --tls                  TLS (OpenSSL); verifies the server against --cafile or the system store
  --cafile FILE          CA certificates (PEM)
  --cert FILE, --key FILE  client certificate and key (PEM)
  --insecure             do not verify the server certificate
  --quiet                no progress line on stderr
  --json                 summary as one JSON object on stdout
  -h, --help             this text

Examples:
  shardmq bench pubsub -c 4 --qos 1 --duration 5
  shardmq bench sub -c 1 -t 'bench/#' --qos 1 --duration 30 &
  shardmq bench pub -c 100 --rate 100 --qos 1 --duration 20
  shardmq bench conn -c 10000 --connect-rate 1000 --duration 60
  shardmq bench pubsub -c 8 --fan-in --sub-topic 'bench/#' --duration 5
)";

template <typename T>
std::optional<T> ParseNumber(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

absl::Status Bad(std::string_view flag, std::string_view value, std::string_view why) {
  return absl::InvalidArgumentError(std::string(flag) + " \"" + std::string(value) +
                                    "\": " + std::string(why));
}

// Parses an unsigned integer in [lo, hi] into *out.
template <typename T>
absl::Status SetUint(std::string_view flag, std::string_view value, uint64_t lo, uint64_t hi,
                     T* out) {
  auto v = ParseNumber<uint64_t>(value);
  if (!v || *v < lo || *v > hi) {
    return Bad(flag, value,
               "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  *out = static_cast<T>(*v);
  return absl::OkStatus();
}

absl::Status SetSeconds(std::string_view flag, std::string_view value, double lo, double* out) {
  auto v = ParseNumber<double>(value);
  if (!v || !std::isfinite(*v) || *v < lo || *v > 1e7) {
    return Bad(flag, value, "expected a number of seconds");
  }
  *out = *v;
  return absl::OkStatus();
}

struct Flag {
  std::string_view name;
  std::string_view short_name;  // "" = none
  bool takes_value;
  std::function<absl::Status(Options*, std::string_view)> apply;
};

std::vector<Flag> Flags() {
  constexpr uint64_t kU32 = std::numeric_limits<uint32_t>::max();
  return {
      {"--host", "", true,
       [](Options* o, std::string_view v) {
         if (v.empty()) return Bad("--host", v, "empty");
         o->host = std::string(v);
         return absl::OkStatus();
       }},
      {"--port", "-p", true,
       [](Options* o, std::string_view v) { return SetUint("--port", v, 1, 65535, &o->port); }},
      {"--clients", "-c", true,
       [](Options* o, std::string_view v) {
         return SetUint("--clients", v, 1, 10'000'000, &o->clients);
       }},
      {"--threads", "", true,
       [](Options* o, std::string_view v) {
         return SetUint("--threads", v, 1, 1024, &o->threads);
       }},
      {"--sub-threads", "", true,
       [](Options* o, std::string_view v) {
         return SetUint("--sub-threads", v, 0, 1024, &o->sub_threads);
       }},
      {"--qos", "-q", true,
       [](Options* o, std::string_view v) { return SetUint("--qos", v, 0, 2, &o->qos); }},
      {"--size", "-s", true,
       [](Options* o, std::string_view v) {
         // 256 MiB is MQTT's largest packet; leave room for the header.
         return SetUint("--size", v, kStampSize, 256u << 20, &o->size);
       }},
      {"--rate", "", true,
       [](Options* o, std::string_view v) {
         auto r = ParseNumber<double>(v);
         if (!r || !std::isfinite(*r) || *r < 0 || *r > 1e9) {
           return Bad("--rate", v, "expected messages per second (0 = unlimited)");
         }
         o->rate = *r;
         return absl::OkStatus();
       }},
      {"--inflight", "", true,
       [](Options* o, std::string_view v) {
         return SetUint("--inflight", v, 1, 65535, &o->inflight);
       }},
      {"--topic", "-t", true,
       [](Options* o, std::string_view v) {
         if (v.empty() || v.size() > 65535) return Bad("--topic", v, "empty or too long");
         o->topic = std::string(v);
         return absl::OkStatus();
       }},
      {"--version", "", true,
       [](Options* o, std::string_view v) {
         if (v == "3.1.1" || v == "4") {
           o->version = broker::codec::ProtocolVersion::kV311;
         } else if (v == "5" || v == "5.0") {
           o->version = broker::codec::ProtocolVersion::kV5;
         } else {
           return Bad("--version", v, "expected 3.1.1 or 5");
         }
         return absl::OkStatus();
       }},
      {"--duration", "", true,
       [](Options* o, std::string_view v) {
         return SetSeconds("--duration", v, 0, &o->duration_s);
       }},
      {"--count", "", true,
       [](Options* o, std::string_view v) { return SetUint("--count", v, 1, kU32, &o->count); }},
      {"--drain", "", true,
       [](Options* o, std::string_view v) { return SetSeconds("--drain", v, 0, &o->drain_s); }},
      {"--fan-in", "", false,
       [](Options* o, std::string_view) {
         o->topology = Topology::kFanIn;
         return absl::OkStatus();
       }},
      {"--fan-out", "", false,
       [](Options* o, std::string_view) {
         o->topology = Topology::kFanOut;
         return absl::OkStatus();
       }},
      {"--sub-topic", "", true,
       [](Options* o, std::string_view v) {
         if (!topic::IsValidFilter(v)) return Bad("--sub-topic", v, "not a valid topic filter");
         o->sub_topic = std::string(v);
         return absl::OkStatus();
       }},
      {"--no-subscribe", "", false,
       [](Options* o, std::string_view) {
         o->no_subscribe = true;
         return absl::OkStatus();
       }},
      {"--clean", "", false,
       [](Options* o, std::string_view) {
         o->clean = true;
         return absl::OkStatus();
       }},
      {"--no-clean", "", false,
       [](Options* o, std::string_view) {
         o->clean = false;
         return absl::OkStatus();
       }},
      {"--session-expiry", "", true,
       [](Options* o, std::string_view v) {
         return SetUint("--session-expiry", v, 0, kU32, &o->session_expiry_s);
       }},
      {"--client-prefix", "", true,
       [](Options* o, std::string_view v) {
         o->client_prefix = std::string(v);
         return absl::OkStatus();
       }},
      {"--start-index", "", true,
       [](Options* o, std::string_view v) {
         return SetUint("--start-index", v, 0, 1u << 30, &o->start_index);
       }},
      {"--keepalive", "", true,
       [](Options* o, std::string_view v) {
         return SetUint("--keepalive", v, 0, 65535, &o->keepalive_s);
       }},
      {"--connect-rate", "", true,
       [](Options* o, std::string_view v) {
         auto r = ParseNumber<double>(v);
         if (!r || !std::isfinite(*r) || *r < 0 || *r > 1e9) {
           return Bad("--connect-rate", v, "expected connections per second (0 = unlimited)");
         }
         o->connect_rate = *r;
         return absl::OkStatus();
       }},
      {"--connect-timeout", "", true,
       [](Options* o, std::string_view v) {
         return SetSeconds("--connect-timeout", v, 0.001, &o->connect_timeout_s);
       }},
      {"--username", "", true,
       [](Options* o, std::string_view v) {
         o->username = std::string(v);
         return absl::OkStatus();
       }},
      {"--password", "", true,
       [](Options* o, std::string_view v) {
         o->password = std::string(v);
         return absl::OkStatus();
       }},
      {"--tls", "", false,
       [](Options* o, std::string_view) {
         o->tls = true;
         return absl::OkStatus();
       }},
      {"--cafile", "", true,
       [](Options* o, std::string_view v) {
         o->cafile = std::string(v);
         return absl::OkStatus();
       }},
      {"--cert", "", true,
       [](Options* o, std::string_view v) {
         o->certfile = std::string(v);
         return absl::OkStatus();
       }},
      {"--key", "", true,
       [](Options* o, std::string_view v) {
         o->keyfile = std::string(v);
         return absl::OkStatus();
       }},
      {"--insecure", "", false,
       [](Options* o, std::string_view) {
         o->insecure = true;
         return absl::OkStatus();
       }},
      {"--quiet", "", false,
       [](Options* o, std::string_view) {
         o->quiet = true;
         return absl::OkStatus();
       }},
      {"--json", "", false,
       [](Options* o, std::string_view) {
         o->json = true;
         return absl::OkStatus();
       }},
  };
}

absl::Status Validate(const Options& o) {
  if (o.mode == Mode::kPub || o.mode == Mode::kPubSub) {
    // A publish topic may not hold wildcards (MQTT 5 s3.3.2.1).
    if (o.topic.find_first_of("+#") != std::string::npos) {
      return absl::InvalidArgumentError("--topic \"" + o.topic +
                                        "\": a publish topic may not contain + or #");
    }
  }
  if (o.mode != Mode::kPubSub && o.topology != Topology::kPairs) {
    return absl::InvalidArgumentError("--fan-in / --fan-out apply to pubsub mode only");
  }
  if (!o.sub_topic.empty()) {
    if (o.mode != Mode::kPubSub || o.topology == Topology::kPairs) {
      return absl::InvalidArgumentError("--sub-topic applies to pubsub --fan-in / --fan-out only");
    }
    // Loss is counted per publisher the subscribers should hear from: all of them.
    const uint32_t publishers = o.topology == Topology::kFanIn ? o.clients : 1;
    for (uint32_t i = 0; i < publishers; ++i) {
      const std::string publish_topic = ExpandTopic(o.topic, o.start_index + i);
      if (!topic::Matches(o.sub_topic, publish_topic)) {
        return absl::InvalidArgumentError("--sub-topic \"" + o.sub_topic +
                                          "\" does not match the publish topic \"" + publish_topic +
                                          "\"");
      }
    }
  }
  if (o.sub_threads > 0 && o.mode != Mode::kPubSub) {
    return absl::InvalidArgumentError("--sub-threads applies to pubsub mode only");
  }
  if (o.no_subscribe) {
    if (o.mode != Mode::kSub) {
      return absl::InvalidArgumentError("--no-subscribe applies to sub only");
    }
    if (o.clean) {
      return absl::InvalidArgumentError(
          "--no-subscribe needs --no-clean: a clean session has no subscriptions");
    }
  }
  if (o.duration_s == 0 && o.count == 0 && o.mode != Mode::kConn) {
    return absl::InvalidArgumentError("--duration 0 needs --count: every run must be bounded");
  }
  if (o.duration_s == 0 && o.mode == Mode::kConn) {
    return absl::InvalidArgumentError("conn mode needs --duration > 0");
  }
  if (!o.tls && (!o.cafile.empty() || !o.certfile.empty() || !o.keyfile.empty() || o.insecure)) {
    return absl::InvalidArgumentError("--cafile, --cert, --key and --insecure need --tls");
  }
  if (o.certfile.empty() != o.keyfile.empty()) {
    return absl::InvalidArgumentError("--cert and --key go together");
  }
  if (!o.password.empty() && o.username.empty() &&
      o.version == broker::codec::ProtocolVersion::kV311) {
    return absl::InvalidArgumentError("MQTT 3.1.1 allows --password only with --username");
  }
  if (o.client_prefix.size() > 200) {
    return absl::InvalidArgumentError("--client-prefix is too long");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Options> ParseOptions(const std::vector<std::string>& args) {
  Options options;
  size_t i = 0;
  if (i < args.size() && (args[i] == "--help" || args[i] == "-h" || args[i] == "help")) {
    options.help = true;
    return options;
  }
  if (i >= args.size()) return absl::InvalidArgumentError("missing mode: pub, sub, conn or pubsub");
  const std::string& mode = args[i++];
  if (mode == "pub") {
    options.mode = Mode::kPub;
  } else if (mode == "sub") {
    options.mode = Mode::kSub;
  } else if (mode == "conn") {
    options.mode = Mode::kConn;
  } else if (mode == "pubsub") {
    options.mode = Mode::kPubSub;
  } else {
    return absl::InvalidArgumentError("unknown mode \"" + mode +
                                      "\": expected pub, sub, conn or pubsub");
  }
  const std::vector<Flag> flags = Flags();
  for (; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      options.help = true;
      return options;
    }
    std::optional<std::string_view> value;
    if (auto eq = arg.find('='); eq != std::string_view::npos && arg.substr(0, 2) == "--") {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    const Flag* flag = nullptr;
    for (const Flag& f : flags) {
      if (arg == f.name || (!f.short_name.empty() && arg == f.short_name)) flag = &f;
    }
    if (flag == nullptr) return absl::InvalidArgumentError("unknown argument \"" + args[i] + "\"");
    if (!flag->takes_value) {
      if (value) return absl::InvalidArgumentError(std::string(arg) + " takes no value");
      SHARDMQ_RETURN_IF_ERROR(flag->apply(&options, ""));
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(std::string(arg) + " needs a value");
      }
      value = args[++i];
    }
    SHARDMQ_RETURN_IF_ERROR(flag->apply(&options, *value));
  }
  if (options.client_prefix.empty()) {
    options.client_prefix = "bench-" + std::to_string(::getpid()) + "-";
  }
  SHARDMQ_RETURN_IF_ERROR(Validate(options));
  return options;
}

std::string_view Usage() { return kUsage; }

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kPub:
      return "pub";
    case Mode::kSub:
      return "sub";
    case Mode::kConn:
      return "conn";
    case Mode::kPubSub:
      return "pubsub";
  }
  return "?";
}

std::string_view TopologyName(Topology topology) {
  switch (topology) {
    case Topology::kPairs:
      return "pairs";
    case Topology::kFanIn:
      return "fan-in";
    case Topology::kFanOut:
      return "fan-out";
  }
  return "?";
}

std::string_view VersionName(broker::codec::ProtocolVersion version) {
  switch (version) {
    case broker::codec::ProtocolVersion::kV31:
      return "3.1";
    case broker::codec::ProtocolVersion::kV311:
      return "3.1.1";
    case broker::codec::ProtocolVersion::kV5:
      return "5";
  }
  return "?";
}

std::string ExpandTopic(std::string_view topic, uint64_t index) {
  std::string out;
  out.reserve(topic.size() + 8);
  for (size_t i = 0; i < topic.size(); ++i) {
    if (topic[i] == '%' && i + 1 < topic.size() && topic[i + 1] == 'i') {
      out += std::to_string(index);
      ++i;
    } else {
      out += topic[i];
    }
  }
  return out;
}

}  // namespace shardmq::bench
