// The load generator behind `shardmq bench`: builds the clients a mode needs, spreads them
// round-robin over --threads worker threads (one io_context each; a client stays on its worker
// for life), and drives the phases of a run from the calling thread:
//
//   connect (subscribers first, then publishers or idle connections, paced by --connect-rate)
//   -> run (publish / receive / hold for --duration or until --count is reached)
//   -> drain (publishers stop; wait up to --drain for acknowledgements and, in pubsub mode, for
//      every accepted message to reach its subscribers)
//   -> disconnect (DISCONNECT, then close) -> merge the workers' counters into a Summary.
//
// Workers share nothing but their read-mostly settings: each counts into its own WorkerStats,
// which the calling thread reads (relaxed atomics) for progress lines and phase decisions, and
// merges once the workers have stopped.
#pragma once

#include <atomic>
#include <cstdio>
#include <memory>

#include "bench/bench_options.h"
#include "bench/summary.h"
#include "common/status.h"

namespace shardmq::bench {

class LoadGenerator {
 public:
  explicit LoadGenerator(Options options);
  ~LoadGenerator();

  // Runs the load and blocks until it is over. Progress lines go to `progress` once a second
  // (nullptr: none). When `*stop` becomes true (e.g. set by a SIGINT handler; may be nullptr)
  // the run moves on to drain and disconnect early; the summary is still produced.
  // A summary is returned even when clients failed (see Summary::ok()). Errors: Unavailable when
  // the host does not resolve, InvalidArgument when TLS files cannot be loaded.
  // Call once, from one thread.
  absl::StatusOr<Summary> Run(std::FILE* progress, const std::atomic<bool>* stop);

 private:
  const Options options_;
};

}  // namespace shardmq::bench
