// Builds the node's object graph from the configuration and runs it until SIGTERM/SIGINT.
// The only code besides main.cc that names concrete implementations.
#pragma once

#include <optional>
#include <string>

namespace shardmq::broker::app {

struct Flags {
  std::optional<std::string> config_path;
  std::optional<std::string> mqtt;       // overrides mqtt.listen
  std::optional<std::string> admin;      // overrides admin.listen
  std::optional<std::string> data_dir;   // overrides data_dir
  std::optional<std::string> ready_file;
  std::optional<std::string> workers;    // overrides workers
  std::optional<std::string> log_level;  // overrides log_level
  std::optional<std::string> role;          // overrides cluster.role
  std::optional<std::string> node_id;       // overrides node_id
  std::optional<std::string> cluster_addr;  // overrides cluster.cluster_addr
  std::optional<std::string> etcd;          // overrides cluster.etcd (comma-separated)
};

// Runs the broker. Returns the process exit code: 0 after a clean stop, 2 for a configuration
// error, 1 for any other start-up failure.
int Run(const Flags& flags);

}  // namespace shardmq::broker::app
