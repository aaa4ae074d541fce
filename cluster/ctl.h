// `shardmq ctl`: operator commands against a running cluster, through etcd and the nodes'
// gRPC API: `status`, `drain NODE`, `undrain NODE` (docs/cluster.md).
#pragma once

namespace shardmq::cluster {

// argv[0] is "ctl". Returns the process exit code: 0 ok, 1 failure (etcd unreachable, no
// cluster under the prefix), 2 bad usage.
int RunCtl(int argc, char** argv);

}  // namespace shardmq::cluster
