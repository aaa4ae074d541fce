// The result of one `shardmq bench` run, and its two renderings: a text block for people and one
// JSON object for scripts.
#pragma once

#include <cstdint>
#include <string>

#include "bench/latency_histogram.h"

namespace shardmq::bench {

// A distribution from a LatencyHistogram, scaled to the unit named by the field using it.
struct Distribution {
  uint64_t count = 0;
  double min = 0;
  double mean = 0;
  double p50 = 0;
  double p99 = 0;
  double p999 = 0;
  double max = 0;

  // `unit_ns`: nanoseconds per output unit (1e3 for microseconds, 1e6 for milliseconds).
  static Distribution From(const LatencyHistogram& histogram, double unit_ns);
};

struct Summary {
  // What ran.
  std::string mode;      // pub, sub, conn, pubsub
  std::string topology;  // pubsub: pairs, fan-in, fan-out; empty otherwise
  std::string version;   // "3.1.1" or "5"
  uint32_t publishers = 0;
  uint32_t subscribers = 0;
  uint32_t idle_connections = 0;
  uint32_t threads = 0;
  uint32_t qos = 0;
  uint32_t payload_size = 0;
  double rate = 0;  // per publisher; 0 = unlimited

  // Phases, seconds: publishing (subscribing, holding), then waiting for acks/messages.
  double run_s = 0;
  double drain_s = 0;
  // QoS 1/2 publishers: first PUBLISH sent -> last acknowledgement read, timestamped when they
  // happen (run_s and drain_s end at the 10 ms checks of the main thread). 0 = no ack.
  double ack_span_s = 0;
  bool interrupted = false;  // stopped early by SIGINT/SIGTERM
  // The drain ended at --drain with acknowledgements or (pubsub) messages still missing: those
  // messages count as unacked / lost.
  bool drain_timed_out = false;

  // Messages. `lost`: pubsub: messages the broker accepted (QoS 0: sent; QoS 1/2: acknowledged)
  // that a subscriber that should have got them never received; sub: sequence gaps (what a
  // subscriber can see alone: not messages lost after the last one it received).
  uint64_t sent = 0;
  uint64_t acked = 0;     // QoS 1/2 only
  uint64_t rejected = 0;  // MQTT 5 PUBACK/PUBREC reason >= 0x80
  uint64_t unacked = 0;   // QoS 1/2 never acknowledged (in flight at the end, or connection lost)
  uint64_t received = 0;  // duplicates included
  uint64_t received_unique = 0;
  uint64_t lost = 0;
  uint64_t duplicates = 0;
  uint64_t reordered = 0;
  uint64_t foreign = 0;  // received payloads without a bench stamp
  double send_rate = 0;  // msg/s over the run phase
  double recv_rate =
      0;  // msg/s from the start of the run phase (sub: the first message) to the last

  Distribution latency_us;      // end-to-end, publisher stamp -> subscriber read
  Distribution ack_latency_us;  // PUBLISH -> PUBACK (QoS 1) / PUBCOMP (QoS 2)
  Distribution connect_ms;      // TCP connect -> CONNACK

  uint64_t connected = 0;
  uint64_t connect_failed = 0;
  double connect_rate = 0;  // connections/s from the first attempt to the last success
  uint64_t errors = 0;      // protocol errors, connections lost after connecting

  // The exit status: no connect failure and no error.
  bool ok() const { return connect_failed == 0 && errors == 0; }
};

std::string FormatText(const Summary& summary);
std::string FormatJson(const Summary& summary);  // one line, ends with '\n'

}  // namespace shardmq::bench
