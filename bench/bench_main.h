// Entry point of `shardmq bench`, called by broker/main.cc.
#pragma once

namespace shardmq::bench {

// Runs `shardmq bench <mode> [options]`. `argv[0]` is "bench". Prints progress to stderr and the
// summary to stdout (text, or JSON with --json). Returns the process exit status: 0 success,
// 1 connect failure, protocol error or lost connection, 2 bad usage (or unreadable TLS files).
// SIGINT/SIGTERM end the run early (the summary is still printed). Blocks the calling thread.
int RunBench(int argc, char** argv);

}  // namespace shardmq::bench
