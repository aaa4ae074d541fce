#include "cluster/cluster_node.h"

#include "common/host_port.h"
#include "common/log.h"

namespace shardmq::cluster {

absl::StatusOr<std::unique_ptr<ClusterNode>> ClusterNode::Start(ClusterNodeOptions options,
                                                                LocalDelivery& local) {
  std::unique_ptr<ClusterNode> node(new ClusterNode(std::move(options)));
  const ClusterNodeOptions& o = node->options_;
  ClusterNode* raw = node.get();
  node->router_ = std::make_unique<ClusterRouter>(o.node_id, local);
  node->router_->set_hold_qos0_publishers(o.hold_qos0_publishers);
  auto server =
      NodeServer::Start(o.cluster_listen, [raw] { return raw->Health(); }, node->router_.get());
  if (!server.ok()) return server.status();
  node->server_ = std::move(*server);
  auto hp = ParseHostPort(o.cluster_listen);
  if (!hp.ok()) return hp.status();
  const std::string advertised = FormatHostPort(hp->host, node->server_->port());

  EtcdOptions eo;
  eo.endpoints = o.etcd;
  auto etcd = EtcdClient::Connect(eo);
  if (!etcd.ok()) return etcd.status();
  node->etcd_ = std::move(*etcd);

  MembershipOptions mo;
  mo.node_id = o.node_id;
  mo.role = o.role;
  mo.cluster_addr = advertised;
  mo.mqtt_addr = o.mqtt_addr;
  mo.prefix = o.prefix;
  mo.lease_ttl_s = o.lease_ttl_s;
  mo.partitions = o.partitions;
  mo.vnodes = o.vnodes;
  node->membership_ = std::make_unique<Membership>(*node->etcd_, mo, *node);
  node->router_->set_lease_check([m = node->membership_.get()] { return m->LeaseValid(); });
  node->router_->set_handoff_hooks(
      [m = node->membership_.get()](uint32_t p, const std::string& from, int64_t from_lease,
                                    uint64_t epoch) {
        return m->MarkHandoffReady(p, from, from_lease, epoch);
      },
      [m = node->membership_.get()](uint32_t p) { m->ClearHandoff(p); });
  absl::Status st = node->membership_->Start();
  if (!st.ok()) return st;
  SHARDMQ_LOG(INFO) << "cluster: node " << o.node_id << " (" << RoleName(o.role)
                    << ") serving the cluster API on " << advertised;
  return node;
}

ClusterNode::~ClusterNode() { Stop(); }

void ClusterNode::Stop() {
  if (membership_) membership_->Stop();
  if (router_) router_->Stop();
  if (server_) server_->Stop();
}

PartitionMap ClusterNode::map() const {
  std::lock_guard lock(mu_);
  return map_;
}

v1::HealthResponse ClusterNode::Health() const {
  v1::HealthResponse h;
  h.set_node_id(options_.node_id);
  h.set_role(RoleName(options_.role));
  h.set_version(SHARDMQ_VERSION);
  PartitionMap m = map();
  h.set_map_revision(m.revision);
  h.set_partitions_led(m.revision == 0 ? 0 : m.CountLedBy(options_.node_id));
  h.set_controller(membership_ != nullptr && membership_->is_controller());
  return h;
}

void ClusterNode::OnPartitionMap(const PartitionMap& map) {
  uint32_t led = 0;
  {
    std::lock_guard lock(mu_);
    map_ = map;
    led = map_.CountLedBy(options_.node_id);
  }
  router_->OnMap(map);
  SHARDMQ_LOG(INFO) << "cluster: partition map revision " << map.revision << ", this node leads "
                    << led << " of " << map.record.partitions() << " partitions";
}

void ClusterNode::OnLeaseLost() {
  lease_losses_.fetch_add(1);
  SHARDMQ_LOG(WARNING) << "cluster: membership lease lost; the cluster may have treated this "
                          "node as gone";
}

}  // namespace shardmq::cluster
