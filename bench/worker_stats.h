// What one worker thread's clients count. Each worker owns one WorkerStats: its clients (on the
// worker thread) are the only writers; the main thread reads the counters while the run is going
// (for the progress line and to decide when a phase is over) and the histograms only after the
// worker thread has stopped.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>

#include "bench/latency_histogram.h"

namespace shardmq::bench {

// A counter with a single writer thread and any number of reader threads. A relaxed load + store
// instead of fetch_add: no locked instruction per message on the hot path.
class Counter {
 public:
  void Add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void Sub(uint64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Kept apart per worker (alignas) so workers do not share cache lines.
struct alignas(64) WorkerStats {
  // Publishers.
  Counter sent;             // PUBLISH packets queued for writing
  Counter acked;            // QoS 1 PUBACK / QoS 2 PUBCOMP with a success reason
  Counter rejected;         // PUBACK / PUBREC with a reason code >= 0x80 (MQTT 5)
  Counter inflight;         // unacknowledged QoS 1/2 publishes (a gauge)
  Counter publishers_done;  // publishers that sent --count messages or died
  // Subscribers.
  Counter received;         // PUBLISH packets received (duplicates included)
  Counter received_unique;  // distinct (publisher, sequence) pairs
  Counter duplicates;
  Counter reordered;
  Counter foreign;           // payloads without a bench stamp (shorter than 16 bytes)
  Counter subscribers_done;  // subscribers that received --count messages or died
  // Connections.
  Counter connected;       // reached the ready state (CONNACK, and SUBACK for subscribers)
  Counter connect_failed;  // failed before that
  Counter closed;          // sockets closed after having connected (by us or the broker)
  Counter errors;          // protocol errors and connections lost after connecting

  // Steady-clock ns of the first / last PUBLISH received (0 = none). Written by the worker.
  std::atomic<int64_t> first_receive_ns{0};
  std::atomic<int64_t> last_receive_ns{0};
  // Steady-clock ns of the first PUBLISH sent / the last successful acknowledgement read.
  std::atomic<int64_t> first_send_ns{0};
  std::atomic<int64_t> last_ack_ns{0};
  // First connect attempt started, last connect finished (steady ns, 0 = none).
  int64_t first_connect_ns = 0;
  int64_t last_connected_ns = 0;

  // Read only after the worker thread has stopped.
  LatencyHistogram latency_ns;      // end-to-end: payload stamp -> subscriber
  LatencyHistogram ack_latency_ns;  // publisher: PUBLISH -> PUBACK / PUBCOMP
  LatencyHistogram connect_ns;      // TCP connect start -> CONNACK
};

}  // namespace shardmq::bench
