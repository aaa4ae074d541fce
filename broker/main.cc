// shardmq: command line -> app::Run.
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "bench/bench_main.h"
#include "broker/app/app.h"
#include "cluster/ctl.h"

namespace {

constexpr const char* kUsage = R"(Usage: shardmq [serve] [options]
       shardmq bench pub|sub|conn|pubsub [options]   (load generator; see shardmq bench --help)
       shardmq ctl status|drain|undrain ...           (cluster operations; see shardmq ctl --help)
       shardmq --help | --version

Runs a shardmq MQTT broker node (MQTT 3.1, 3.1.1 and 5.0). With no options: a single-node
broker on 127.0.0.1:1883 with its data in ./data and the admin HTTP port on 127.0.0.1:8080.

Options:
  --config FILE       JSON configuration file (see proto/config.proto and docs/configuration.md)
  --mqtt HOST:PORT    MQTT listener (port 0 = ephemeral); overrides mqtt.listen
  --admin HOST:PORT   HTTP admin listener (/livez, /readyz, /metrics); overrides admin.listen
  --data-dir DIR      data directory; overrides data_dir
  --ready-file FILE   once listening, write {"mqtt":PORT,"admin":PORT} to FILE (atomically)
  --workers N         network worker threads (0 = one per core); overrides workers
  --log-level LEVEL   debug, info, warning or error; overrides log_level
  --node-id ID        this node's name in the cluster (default: the host name); overrides node_id
  --role ROLE         all, frontend or store; overrides cluster.role
  --cluster-addr H:P  gRPC listen and advertise address for other nodes; overrides
                      cluster.cluster_addr
  --etcd ENDPOINTS    comma-separated etcd HOST:PORT list (http:// accepted): join the cluster
                      kept there; overrides cluster.etcd. Without it the node runs alone.
  --help              this text
  --version           the version

SIGTERM or SIGINT stops the broker cleanly.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "bench") {
    return shardmq::bench::RunBench(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string_view(argv[1]) == "ctl") {
    return shardmq::cluster::RunCtl(argc - 1, argv + 1);
  }
  shardmq::broker::app::Flags flags;
  int i = 1;
  if (i < argc && std::string_view(argv[i]) == "serve") ++i;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("shardmq %s\n", SHARDMQ_VERSION);
      return 0;
    }
    std::optional<std::string> value;
    if (auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    std::optional<std::string>* target = nullptr;
    if (arg == "--config") target = &flags.config_path;
    else if (arg == "--mqtt") target = &flags.mqtt;
    else if (arg == "--admin") target = &flags.admin;
    else if (arg == "--data-dir") target = &flags.data_dir;
    else if (arg == "--ready-file") target = &flags.ready_file;
    else if (arg == "--workers") target = &flags.workers;
    else if (arg == "--log-level") target = &flags.log_level;
    else if (arg == "--node-id") target = &flags.node_id;
    else if (arg == "--role") target = &flags.role;
    else if (arg == "--cluster-addr") target = &flags.cluster_addr;
    else if (arg == "--etcd") target = &flags.etcd;
    if (target == nullptr) {
      std::fprintf(stderr, "shardmq: unknown argument \"%s\"\n\n%s", argv[i], kUsage);
      return 2;
    }
    if (!value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "shardmq: %s needs a value\n", arg.c_str());
        return 2;
      }
      value = argv[++i];
    }
    *target = *value;
  }
  return shardmq::broker::app::Run(flags);
}
