// A node's membership in the cluster, kept in etcd (layout: proto/cluster.proto).
//
// Start() joins: checks the cluster's partition count (meta), registers a store node in the ring
// (stores/<id>, no lease), and puts the node's member key under a lease it keeps alive. Store
// nodes campaign for the controller key; the elected controller computes the partition map from
// the ring of registered store nodes and writes it with a compare-and-swap on its revision.
// Every node watches the prefix and hands each new map to MembershipCallbacks.
//
// Partition placement rules of the controller (docs/cluster.md):
//   * a partition goes to its ring owner among ACTIVE store nodes;
//   * a partition whose leader is registered but not alive stays where it is: without replicas
//     its data is on that node's disk, so it waits for the node to return;
//   * a partition whose leader is alive moves copy-then-flip: the map lists the move (the leader
//     stays) until the new node has the sessions (handoffs/<p>), then the leader flips;
//   * a partition with no leader, or whose leader left the ring, flips at once;
//   * a changed leader gets a new epoch (the fencing token requests carry).
//
// Threads: Start/Stop from one thread (the app's main thread). The membership runs a thread of
// its own (lease keep-alive, election, controller work) plus the etcd watch's thread; callbacks
// run on either of those, never on a network worker. Accessors are thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/etcd_client.h"
#include "proto/cluster.pb.h"

namespace shardmq::cluster {

enum class Role { kAll, kFrontend, kStore };
absl::StatusOr<Role> ParseRole(std::string_view role);
const char* RoleName(Role role);
inline bool HoldsPartitions(Role role) { return role != Role::kFrontend; }

// The partition map a node has applied.
struct PartitionMap {
  int64_t revision = 0;  // etcd mod revision of the map key; 0 = no map yet
  v1::PartitionMapRecord record;

  const std::string& LeaderOf(uint32_t partition) const {
    return record.assignments(static_cast<int>(partition)).leader();
  }
  uint64_t EpochOf(uint32_t partition) const {
    return record.assignments(static_cast<int>(partition)).epoch();
  }
  uint32_t CountLedBy(const std::string& node) const;
};

// Computes the controller's next map (rules at the top of this file). `current` may be empty
// (no map yet). `stores`: registered store nodes; `alive`: node ids with a member key. Returns
// true and fills *next if anything changes. `ready`: the handoffs/<p> records (partition ->
// record). Pure: unit-tested without etcd.
bool PlanPartitionMap(const v1::PartitionMapRecord& current,
                      const std::map<std::string, v1::StoreRecord>& stores,
                      const std::map<std::string, v1::MemberRecord>& alive, uint32_t partitions,
                      uint32_t vnodes, v1::PartitionMapRecord* next,
                      const std::map<uint32_t, v1::HandoffRecord>& ready = {});

class MembershipCallbacks {
 public:
  virtual ~MembershipCallbacks() = default;
  // A newer partition map (revision increases strictly between calls).
  virtual void OnPartitionMap(const PartitionMap& map) = 0;
  // The lease expired before it could be renewed (etcd unreachable for a TTL, or the process
  // was stopped): the cluster may already treat this node as gone. The membership keeps trying
  // to rejoin with a new lease.
  virtual void OnLeaseLost() = 0;
  // The node's lease, when it joins and whenever it rejoins with a new one.
  virtual void OnLease(int64_t lease) {}
  // The live members changed (node id -> record, this node included).
  virtual void OnMembers(const std::map<std::string, v1::MemberRecord>& members) {}
};

struct MembershipOptions {
  std::string node_id;
  Role role = Role::kAll;
  std::string cluster_addr;  // advertised gRPC address
  std::string mqtt_addr;     // advertised MQTT address
  std::string prefix = "/shardmq/";
  int64_t lease_ttl_s = 5;
  uint32_t partitions = 256;
  uint32_t vnodes = 128;
};

class Membership {
 public:
  Membership(EtcdClient& etcd, MembershipOptions options, MembershipCallbacks& callbacks);
  ~Membership();  // Stop()s

  // Joins (see the top). FailedPrecondition if the cluster was created with another partition
  // count, or if a live member already uses this node id (after waiting one lease TTL for a
  // previous incarnation's key to expire); Unavailable if etcd cannot be reached.
  absl::Status Start();
  // Leaves: stops the threads and revokes the lease, so the member key (and the controller key,
  // if held) disappear at once. The store record stays: the node is expected back.
  void Stop();
  // Drains a store node before it stops: marks its store record DRAINING, so the controller
  // moves its partitions to the other store nodes, and waits until the map shows it leads none.
  // OK when drained (or when the node holds no partitions); FailedPrecondition at once if no
  // other live ACTIVE store node could take them; DeadlineExceeded after `timeout`. Start()
  // again (the next incarnation) marks the node ACTIVE.
  absl::Status Drain(std::chrono::milliseconds timeout);

  // Partition hand-off (PartitionMove): this node, the move's `to`, holds the sessions of
  // `partition` copied from `from` (which led it at `epoch`, with lease `from_lease`): writes
  // handoffs/<partition>
  // under this node's lease, so the controller flips the partition. ClearHandoff removes the
  // record once the flip is seen (or the move was cancelled).
  absl::Status MarkHandoffReady(uint32_t partition, const std::string& from, int64_t from_lease,
                                uint64_t epoch);
  void ClearHandoff(uint32_t partition);

  PartitionMap map() const;
  bool is_controller() const { return controller_.load(); }
  int64_t lease() const { return lease_.load(); }
  // Whether this node may still act on its view of the cluster: its lease is known to be alive
  // (renewed less than a TTL ago, counted from before the renewal was asked for), and after a
  // lost lease the map has been read again. A node stopped (SIGSTOP) past its lease answers
  // false from the moment it runs again, before any other thread of it learns of the loss.
  bool LeaseValid() const {
    return std::chrono::steady_clock::now().time_since_epoch().count() < valid_until_.load();
  }
  const MembershipOptions& options() const { return options_; }
  // Live members as last seen (node id -> record).
  std::map<std::string, v1::MemberRecord> members() const;

 private:
  std::string Key(std::string_view suffix) const { return options_.prefix + std::string(suffix); }
  absl::Status CheckMeta();
  absl::Status Register();
  absl::Status PutMember();
  void MarkValid(std::chrono::steady_clock::time_point asked_at);  // see LeaseValid
  void Reload();  // after a lost lease: a full read, handed to the callbacks
  void LoadAll();
  void ApplySnapshot(const EtcdRange& all);  // replaces what is known with a full read
  void OnEvents(const std::vector<EtcdEvent>& events, bool compacted);
  void Apply(const EtcdEvent& event);  // under mu_
  void DeliverMap();                   // hands a newer map to callbacks_ (not under mu_)
  void DeliverMembers();               // hands changed members to callbacks_ (not under mu_)
  void Loop();
  void Campaign();
  void Reconcile();

  EtcdClient& etcd_;
  const MembershipOptions options_;
  MembershipCallbacks& callbacks_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool dirty_ = false;    // members, stores or map changed since the controller last looked
  bool backoff_ = false;  // the last map write failed: wait a little before the next
  std::map<std::string, v1::MemberRecord> members_;
  std::map<std::string, v1::StoreRecord> stores_;
  std::map<uint32_t, v1::HandoffRecord> handoffs_;  // handoffs/<p>
  std::string controller_id_;  // "" = none
  PartitionMap map_;
  std::mutex deliver_mu_;            // one delivery at a time, in revision order
  int64_t delivered_revision_ = 0;  // last map revision handed to callbacks_ (deliver_mu_)
  uint64_t members_version_ = 0;    // bumped on every change of members_ (mu_)
  uint64_t delivered_members_ = 0;  // last members_version_ handed over (deliver_mu_)

  std::atomic<bool> controller_{false};
  std::atomic<int64_t> lease_{0};
  std::atomic<int64_t> valid_until_{0};  // steady_clock ticks; see LeaseValid
  std::unique_ptr<EtcdClient::Watch> watch_;
  std::thread thread_;
  bool started_ = false;
};

}  // namespace shardmq::cluster
