// A node's cluster layer, as the app starts it when cluster.etcd is set: the gRPC server for
// other nodes (NodeServer), the etcd client and the membership (lease, controller election,
// partition map). What the broker needs from the cluster goes through here.
//
// Scope today (issue #5, in progress): membership, the partition map, health, publishes
// between clients on different nodes, sessions on their partition leader (ClusterRouter).
// docs/cluster.md says what works.
//
// Thread-safety: Start/Stop from the app's main thread; accessors from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster/cluster_router.h"
#include "cluster/etcd_client.h"
#include "cluster/membership.h"
#include "cluster/node_server.h"

namespace shardmq::cluster {

struct ClusterNodeOptions {
  std::string node_id;
  Role role = Role::kAll;
  std::string cluster_listen;  // "HOST:PORT" (port 0 = ephemeral); advertised with the bound port
  std::string mqtt_addr;       // advertised MQTT address
  std::vector<std::string> etcd;
  std::string prefix = "/shardmq/";
  int64_t lease_ttl_s = 5;
  uint32_t partitions = 256;
  uint32_t vnodes = 128;
  bool hold_qos0_publishers = true;  // cluster.qos0_overload = "hold"
};

class ClusterNode final : public MembershipCallbacks {
 public:
  // Listens, connects to etcd and joins. The error names what failed (address, etcd, meta).
  // `local` (the broker) receives the messages other nodes publish for this node's clients;
  // it must outlive the node.
  static absl::StatusOr<std::unique_ptr<ClusterNode>> Start(ClusterNodeOptions options,
                                                            LocalDelivery& local);
  ~ClusterNode() override;
  // Moves this node's partitions to the other store nodes and waits (Membership::Drain).
  absl::Status Drain(std::chrono::milliseconds timeout) { return membership_->Drain(timeout); }
  // Leaves the cluster (lease revoked) and stops serving.
  void Stop();

  uint16_t cluster_port() const { return server_->port(); }
  PartitionMap map() const;
  bool is_controller() const { return membership_->is_controller(); }
  uint64_t lease_losses() const { return lease_losses_.load(); }
  // Members with a live lease, as this node last saw them (itself included).
  size_t live_members() const { return membership_->members().size(); }
  const std::string& node_id() const { return options_.node_id; }
  v1::HealthResponse Health() const;

  // What the broker calls to reach the other nodes.
  Router& router() { return *router_; }
  ClusterRouter::Stats router_stats() const { return router_->stats(); }

  // MembershipCallbacks
  void OnPartitionMap(const PartitionMap& map) override;
  void OnLeaseLost() override;
  void OnLease(int64_t lease) override { router_->SetLease(lease); }
  void OnMembers(const std::map<std::string, v1::MemberRecord>& members) override {
    router_->OnMembers(members);
  }

 private:
  explicit ClusterNode(ClusterNodeOptions options) : options_(std::move(options)) {}

  const ClusterNodeOptions options_;
  std::unique_ptr<ClusterRouter> router_;
  std::unique_ptr<NodeServer> server_;
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<Membership> membership_;
  mutable std::mutex mu_;
  PartitionMap map_;
  std::atomic<uint64_t> lease_losses_{0};
};

}  // namespace shardmq::cluster
