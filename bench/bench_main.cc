#include "bench/bench_main.h"

#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_options.h"
#include "bench/load_generator.h"
#include "bench/summary.h"

namespace shardmq::bench {

namespace {

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

extern "C" void OnStopSignal(int) {
  g_stop.store(true, std::memory_order_relaxed);
  // A second signal kills the process the default way.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

}  // namespace

int RunBench(int argc, char** argv) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  absl::StatusOr<Options> options = ParseOptions(args);
  if (!options.ok()) {
    std::fprintf(stderr, "shardmq bench: %s\n\n%.*s",
                 std::string(options.status().message()).c_str(), static_cast<int>(Usage().size()),
                 Usage().data());
    return 2;
  }
  if (options->help) {
    std::fwrite(Usage().data(), 1, Usage().size(), stdout);
    return 0;
  }
  // Writing to a socket the broker closed must be an error code, not a dead process.
  std::signal(SIGPIPE, SIG_IGN);
  // conn mode holds many sockets: allow as many as the hard limit does.
  struct rlimit files;
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);  // best effort: failures show up as connect errors
  }
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);

  LoadGenerator generator(*options);
  absl::StatusOr<Summary> summary = generator.Run(options->quiet ? nullptr : stderr, &g_stop);
  if (!summary.ok()) {
    std::fprintf(stderr, "shardmq bench: %s\n", std::string(summary.status().message()).c_str());
    // Unreadable TLS files are a usage error; a host that does not resolve is a connect failure.
    return summary.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (options->json) {
    std::fputs(FormatJson(*summary).c_str(), stdout);
    if (!options->quiet) std::fputs(FormatText(*summary).c_str(), stderr);
  } else {
    std::fputs(FormatText(*summary).c_str(), stdout);
  }
  std::fflush(stdout);
  return summary->ok() ? 0 : 1;
}

}  // namespace shardmq::bench
