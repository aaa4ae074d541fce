// /metrics for the broker core: a prometheus::Collectable that reads the per-worker counters at
// scrape time, so the hot path only bumps relaxed atomics (no prometheus-cpp call per message).
#pragma once

#include <vector>

#include "broker/session/broker_core.h"
#include "cluster/cluster_node.h"
#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace shardmq::broker::app {

class BrokerCollector final : public prometheus::Collectable {
 public:
  explicit BrokerCollector(session::BrokerCore& core) : core_(core) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  session::BrokerCore& core_;
};

// /metrics for the cluster layer (only with --etcd): membership, the partition map, leases.
class ClusterCollector final : public prometheus::Collectable {
 public:
  explicit ClusterCollector(const cluster::ClusterNode& node) : node_(node) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const cluster::ClusterNode& node_;
};

}  // namespace shardmq::broker::app
