// The node's gRPC server for the other nodes and for `shardmq ctl` (proto/cluster.proto).
// Today it serves the Node service (Health); the data-plane services join it as they are built.
// No gRPC type appears here: cluster/grpc/node_server.cc is the implementation.
//
// Thread-safety: Start and Stop from one thread. `status` is called on gRPC's threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/cluster.pb.h"

namespace shardmq::cluster {

class NodeServer {
 public:
  using StatusFn = std::function<v1::HealthResponse()>;
  // Listens on `listen` ("HOST:PORT", port 0 = ephemeral). Unavailable if it cannot bind.
  static absl::StatusOr<std::unique_ptr<NodeServer>> Start(const std::string& listen,
                                                           StatusFn status);
  virtual ~NodeServer() = default;
  virtual uint16_t port() const = 0;
  // Stops serving; in-flight calls get a short grace period.
  virtual void Stop() = 0;
};

// Calls Node.Health on `address` ("HOST:PORT").
absl::StatusOr<v1::HealthResponse> QueryHealth(const std::string& address,
                                               std::chrono::milliseconds timeout);

}  // namespace shardmq::cluster
