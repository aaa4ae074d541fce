// The node's gRPC server for the other nodes and for `shardmq ctl` (proto/cluster.proto).
// It serves the Node service (Health) and the Peer service (the streams between nodes).
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

// Handles the items of incoming peer streams (Peer.Stream). Called on a gRPC thread per stream,
// items of one stream in order; a batch is acknowledged once Handle returned for all its items.
// A non-OK status refuses the item (fencing): the sender's `done` gets FailedPrecondition with
// the status's message.
class PeerHandler {
 public:
  virtual ~PeerHandler() = default;
  virtual absl::Status Handle(const std::string& sender, int64_t sender_lease,
                              const v1::PeerItem& item) = 0;
  // A stream from `sender` (at `sender_lease`) ended: what came on it only (QuietGrant) ends
  // with it.
  virtual void StreamEnded(const std::string& sender, int64_t sender_lease) {}
  // Peer.Revoke (a unary call on a gRPC thread of its own, never behind a stream's items).
  virtual void HandleRevoke(const v1::RevokeRequest& request) {}
};

class NodeServer {
 public:
  using StatusFn = std::function<v1::HealthResponse()>;
  // Listens on `listen` ("HOST:PORT", port 0 = ephemeral). Unavailable if it cannot bind.
  // `peers` (may be null: Peer.Stream then answers UNAVAILABLE) must outlive the server.
  static absl::StatusOr<std::unique_ptr<NodeServer>> Start(const std::string& listen,
                                                           StatusFn status,
                                                           PeerHandler* peers = nullptr);
  virtual ~NodeServer() = default;
  virtual uint16_t port() const = 0;
  // Stops serving; in-flight calls get a short grace period.
  virtual void Stop() = 0;
};

// Calls Node.Health on `address` ("HOST:PORT").
absl::StatusOr<v1::HealthResponse> QueryHealth(const std::string& address,
                                               std::chrono::milliseconds timeout);

}  // namespace shardmq::cluster
