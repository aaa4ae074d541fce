#include "broker/app/metrics.h"

#include <string>
#include <tuple>

namespace shardmq::broker::app {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::vector<MetricFamily> BrokerCollector::Collect() const {
  std::vector<MetricFamily> out;
  auto family = [&](const char* name, const char* help, MetricType type,
                    auto read) {  // read(WorkerStats&) -> double, one sample per worker
    MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = type;
    for (int w = 0; w < core_.worker_count(); ++w) {
      ClientMetric m;
      m.label.push_back({"worker", std::to_string(w)});
      double v = read(core_.core(w).stats());
      if (type == MetricType::Counter) {
        m.counter.value = v;
      } else {
        m.gauge.value = v;
      }
      f.metric.push_back(std::move(m));
    }
    out.push_back(std::move(f));
  };
  auto r = [](const auto& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
  using session::WorkerStats;
  family("shardmq_broker_connections_accepted_total", "TCP connections accepted.",
         MetricType::Counter, [&](WorkerStats& s) { return r(s.connections_accepted); });
  family("shardmq_broker_connections", "Open client connections.", MetricType::Gauge,
         [&](WorkerStats& s) { return r(s.connections_open); });
  family("shardmq_broker_clients_connected", "Clients with an accepted CONNECT.",
         MetricType::Gauge, [&](WorkerStats& s) { return r(s.clients_connected); });
  family("shardmq_broker_messages_received_total", "PUBLISH packets received from clients.",
         MetricType::Counter, [&](WorkerStats& s) { return r(s.messages_received); });
  family("shardmq_broker_messages_sent_total", "PUBLISH packets sent to clients.",
         MetricType::Counter, [&](WorkerStats& s) { return r(s.messages_sent); });
  family("shardmq_broker_received_bytes_total", "MQTT bytes received.", MetricType::Counter,
         [&](WorkerStats& s) { return r(s.bytes_received); });
  family("shardmq_broker_sent_bytes_total", "MQTT bytes sent.", MetricType::Counter,
         [&](WorkerStats& s) { return r(s.bytes_sent); });
  family("shardmq_broker_protocol_errors_total",
         "Connections closed for a malformed packet or protocol violation.", MetricType::Counter,
         [&](WorkerStats& s) { return r(s.protocol_errors); });
  family("shardmq_broker_sessions", "Sessions resident on the worker.", MetricType::Gauge,
         [&](WorkerStats& s) { return r(s.sessions); });
  family("shardmq_broker_subscriptions", "Subscriptions of resident sessions.",
         MetricType::Gauge, [&](WorkerStats& s) { return r(s.subscriptions); });

  MetricFamily dropped;
  dropped.name = "shardmq_broker_messages_dropped_total";
  dropped.help = "Messages not delivered to a session, by reason.";
  dropped.type = MetricType::Counter;
  struct Reason {
    const char* name;
    std::atomic<uint64_t> WorkerStats::*field;
  };
  const Reason reasons[] = {{"queue_full", &WorkerStats::dropped_queue_full},
                            {"qos0_offline", &WorkerStats::dropped_qos0_offline},
                            {"qos0_backpressure", &WorkerStats::dropped_qos0_backpressure},
                            {"expired", &WorkerStats::dropped_expired},
                            {"too_large", &WorkerStats::dropped_too_large},
                            {"superseded", &WorkerStats::dropped_superseded}};
  for (const Reason& reason : reasons) {
    double total = 0;
    for (int w = 0; w < core_.worker_count(); ++w) total += r(core_.core(w).stats().*reason.field);
    ClientMetric m;
    m.label.push_back({"reason", reason.name});
    m.counter.value = total;
    dropped.metric.push_back(std::move(m));
  }
  {
    // Messages from other nodes dropped before reaching a worker (QoS 0, workers backed up).
    ClientMetric m;
    m.label.push_back({"reason", "peer_backlog"});
    m.counter.value = static_cast<double>(core_.peer_backlog_dropped());
    dropped.metric.push_back(std::move(m));
  }
  out.push_back(std::move(dropped));

  MetricFamily rejected;
  rejected.name = "shardmq_broker_retained_rejected_total";
  rejected.help = "Retained publishes delivered but not retained, by limit.";
  rejected.type = MetricType::Counter;
  const Reason rejected_reasons[] = {{"count", &WorkerStats::retained_rejected_count},
                                     {"size", &WorkerStats::retained_rejected_size}};
  for (const Reason& reason : rejected_reasons) {
    double total = 0;
    for (int w = 0; w < core_.worker_count(); ++w) total += r(core_.core(w).stats().*reason.field);
    ClientMetric m;
    m.label.push_back({"reason", reason.name});
    m.counter.value = total;
    rejected.metric.push_back(std::move(m));
  }
  out.push_back(std::move(rejected));
  family("shardmq_storage_write_errors_total", "Storage commits that failed.",
         MetricType::Counter, [&](WorkerStats& s) { return r(s.storage_errors); });
  family("shardmq_cluster_relay_read_holds_total",
         "Times a relayed client's socket stopped being read because more than 1 MiB of its "
         "bytes waited for its session's node (flow control; reading resumes under 512 KiB).",
         MetricType::Counter, [&](WorkerStats& s) { return r(s.relay_read_holds); });
  family("shardmq_cluster_qos0_publisher_holds_total",
         "Times a client stopped being read because one of its QoS 0 messages was dropped at a "
         "full link to another node (overload protection; reading resumes once that link has "
         "room, or after 100 ms).",
         MetricType::Counter, [&](WorkerStats& s) { return r(s.qos0_publisher_holds); });

  for (const auto& [name, help, value] :
       {std::tuple{"shardmq_cluster_peer_stream_waits_total",
                   "Times a stream from another node waited because this node's workers had 500 "
                   "messages from other nodes queued (backpressure to the sender).",
                   core_.peer_stream_waits()},
        std::tuple{"shardmq_cluster_peer_backlog_overruns_total",
                   "QoS 1/2 messages a worker queued past that bound itself (this node picked "
                   "itself for a shared subscription; a worker never waits for the workers).",
                   core_.peer_backlog_overruns()}}) {
    MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = MetricType::Counter;
    ClientMetric m;
    m.counter.value = static_cast<double>(value);
    f.metric.push_back(std::move(m));
    out.push_back(std::move(f));
  }

  MetricFamily retained;
  retained.name = "shardmq_broker_retained_messages";
  retained.help = "Retained messages stored.";
  retained.type = MetricType::Gauge;
  ClientMetric rm;
  rm.gauge.value = static_cast<double>(core_.retained().Count());
  retained.metric.push_back(std::move(rm));
  out.push_back(std::move(retained));
  return out;
}

std::vector<MetricFamily> ClusterCollector::Collect() const {
  std::vector<MetricFamily> out;
  auto one = [&](const char* name, const char* help, MetricType type, double value) {
    MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = type;
    ClientMetric m;
    if (type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    f.metric.push_back(std::move(m));
    out.push_back(std::move(f));
  };
  const cluster::PartitionMap map = node_.map();
  one("shardmq_cluster_members", "Cluster members with a live lease, as this node sees them.",
      MetricType::Gauge, static_cast<double>(node_.live_members()));
  one("shardmq_cluster_partition_map_revision",
      "Revision of the partition map this node has applied (0: none yet).", MetricType::Gauge,
      static_cast<double>(map.revision));
  one("shardmq_cluster_partitions_led", "Partitions this node leads in that map.",
      MetricType::Gauge,
      static_cast<double>(map.revision == 0 ? 0 : map.CountLedBy(node_.node_id())));
  one("shardmq_cluster_controller", "1 if this node is the elected controller.",
      MetricType::Gauge, node_.is_controller() ? 1 : 0);
  const cluster::ClusterRouter::Stats rs = node_.router_stats();
  one("shardmq_cluster_forwarded_total",
      "Publishes from local clients handed to their topic's owner on another node.",
      MetricType::Counter, static_cast<double>(rs.forwarded));
  one("shardmq_cluster_forward_errors_total",
      "Publishes that could not reach their topic's owner (down, unknown, stream broken).",
      MetricType::Counter, static_cast<double>(rs.forward_errors));
  one("shardmq_cluster_delivered_in_total",
      "Messages from other nodes delivered to this node's sessions.", MetricType::Counter,
      static_cast<double>(rs.delivered_in));
  one("shardmq_cluster_forwards_skipped_total",
      "QoS 0 publishes from local clients not forwarded: their topic's owner said no other node "
      "subscribes to the topic (quiet topic).", MetricType::Counter,
      static_cast<double>(rs.forwards_skipped));
  one("shardmq_cluster_quiet_grants_total",
      "Quiet-topic grants this node, as a topic's owner, sent to the node a publish came from.",
      MetricType::Counter, static_cast<double>(rs.quiet_grants));
  one("shardmq_cluster_quiet_revokes_total",
      "Calls that ended another node's quiet-topic grants before a route was acknowledged.",
      MetricType::Counter, static_cast<double>(rs.quiet_revokes));
  one("shardmq_cluster_quiet_topics",
      "Topics this node does not forward QoS 0 publishes for (grants it holds).",
      MetricType::Gauge, static_cast<double>(rs.quiet_topics));
  one("shardmq_cluster_items_resent_total",
      "QoS 1/2 messages sent to another node again because the stream broke before the "
      "acknowledgement.", MetricType::Counter, static_cast<double>(rs.items_resent));
  one("shardmq_cluster_duplicates_dropped_total",
      "QoS 1/2 messages from another node dropped because they had come already (sent again "
      "after a broken stream).", MetricType::Counter, static_cast<double>(rs.duplicates_dropped));
  one("shardmq_cluster_routed_out_total",
      "Messages this node, as a topic's owner, sent on to other nodes.", MetricType::Counter,
      static_cast<double>(rs.routed_out));
  one("shardmq_cluster_owner_routes",
      "Routes of other nodes (and this one) held by this node as a topic owner.",
      MetricType::Gauge, static_cast<double>(rs.owner_routes));
  one("shardmq_cluster_local_filters", "Filters this node's sessions subscribe to, registered "
      "at their owners.", MetricType::Gauge, static_cast<double>(rs.local_filters));
  one("shardmq_cluster_qos0_dropped_total",
      "QoS 0 messages dropped before a hop to another node because that link lagged.",
      MetricType::Counter, static_cast<double>(rs.qos0_dropped));
  one("shardmq_cluster_peer_batches_total",
      "gRPC messages sent to other nodes on the peer links (each carries many items).",
      MetricType::Counter, static_cast<double>(rs.batches_out));
  one("shardmq_cluster_peer_items_total",
      "Items (publishes, deliveries, route changes) sent to other nodes on the peer links.",
      MetricType::Counter, static_cast<double>(rs.items_out));
  one("shardmq_cluster_relays_out_total",
      "Client connections this node relayed to the node of their session.", MetricType::Counter,
      static_cast<double>(rs.relays_out));
  one("shardmq_cluster_relays_in_total",
      "Connections relayed from front-ends that this node accepted for its sessions.",
      MetricType::Counter, static_cast<double>(rs.relays_in));
  one("shardmq_cluster_fenced_total",
      "Requests for partition data refused because this node did not lead the partition at "
      "the sender's epoch, or its own lease may have expired (epoch fencing).",
      MetricType::Counter, static_cast<double>(rs.fenced));
  one("shardmq_cluster_retained_syncs_total",
      "Times this node caught up on retained messages from a peer after (re)joining.",
      MetricType::Counter, static_cast<double>(rs.retained_syncs));
  one("shardmq_cluster_route_waits_total",
      "Publishes held back because a partition this node just gained did not have every "
      "member's routes yet.", MetricType::Counter, static_cast<double>(rs.route_waits));
  // Partition hand-offs, by direction: "out" (this node was the old leader), "in" (the new).
  auto in_out = [&](const char* name, const char* help, uint64_t in, uint64_t out_value) {
    MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = MetricType::Counter;
    for (const auto& [dir, v] : {std::pair<const char*, uint64_t>{"in", in}, {"out", out_value}}) {
      ClientMetric m;
      m.label.push_back({"direction", dir});
      m.counter.value = static_cast<double>(v);
      f.metric.push_back(std::move(m));
    }
    out.push_back(std::move(f));
  };
  in_out("shardmq_cluster_handoffs_total",
         "Partitions whose sessions were handed over, copy-then-flip, and flipped.",
         rs.handoffs_in, rs.handoffs_out);
  in_out("shardmq_cluster_handoff_sessions_total",
         "Sessions copied in partition hand-offs (out: sent; in: received and stored).",
         rs.handoff_sessions_in, rs.handoff_sessions_out);
  one("shardmq_cluster_handoffs_cancelled_total",
      "Partition hand-offs that ended without a flip (a node left, the move was re-planned).",
      MetricType::Counter, static_cast<double>(rs.handoffs_cancelled));
  one("shardmq_cluster_handoffs_in_progress",
      "Partition hand-offs this node takes part in that have not flipped yet.",
      MetricType::Gauge, static_cast<double>(rs.handoffs_active));
  one("shardmq_cluster_held_for_down_nodes",
      "QoS 1/2 messages this node, as a topic's owner, holds for store nodes that are down "
      "(their sessions get them when the node is back).",
      MetricType::Gauge, static_cast<double>(rs.held_for_down));
  one("shardmq_cluster_held_for_down_dropped_total",
      "Messages held for a down store node and then dropped: more than 100,000 (or 256 MiB) "
      "held for it, or the node was removed from the ring.",
      MetricType::Counter, static_cast<double>(rs.held_for_down_dropped));
  one("shardmq_cluster_lease_losses_total",
      "Times this node's membership lease expired before it was renewed.", MetricType::Counter,
      static_cast<double>(node_.lease_losses()));
  return out;
}

}  // namespace shardmq::broker::app
