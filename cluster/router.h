// The seam between the broker and the cluster's data plane (STYLE.md section 2: the broker
// calls Router; the cluster calls LocalDelivery, which the broker implements).
//
// Scope today: clients connected to different nodes publish to and subscribe to each other
// (non-shared subscriptions, QoS 0/1/2, retained messages). Sessions still live on the node of
// their connection. docs/cluster.md lists what is not built yet.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "proto/records.pb.h"

namespace shardmq::cluster {

// Thread-safe; never blocks on the network. Callbacks run on cluster threads: post to a worker.
class Router {
 public:
  using Done = std::function<void(const absl::Status&)>;
  virtual ~Router() = default;
  // This node now has a local subscription to `filter` (without any $share prefix); `group` is
  // its shared subscription's group, "" if it is not shared. Counted: call once per
  // subscription. `done` runs once every owner of the filter has the node's route, so a
  // publish after the SUBACK is seen anywhere in the cluster.
  virtual void AddRoute(const std::string& filter, const std::string& group, Done done) = 0;
  // One local subscription to (`filter`, `group`) ended. The route goes when the last one does.
  virtual void RemoveRoute(const std::string& filter, const std::string& group) = 0;
  // A publish from a local client, for the other nodes: handed to the owner of
  // partition(topic), which sends it on to the nodes with matching routes, and picks, for
  // each matching shared subscription, the one node whose member gets it (possibly this one).
  // The caller delivers to its own non-shared subscribers only. `done` once the owner has
  // handled it; Unavailable (with the reason) if the owner is down or unknown.
  virtual void Forward(const records::Message& message, Done done) = 0;
};

// Implemented by the broker.
class LocalDelivery {
 public:
  virtual ~LocalDelivery() = default;
  // Which of this node's subscribers a message is for.
  struct Scope {
    bool plain = true;  // the non-shared subscribers
    std::vector<std::pair<std::string, std::string>> shared;  // (group, filter): one member each
  };
  // A message published on another node (or picked for a shared subscription here), for this
  // node's subscribers in `scope` (and its retained index). Called on cluster threads,
  // messages of one topic in order.
  virtual void DeliverLocal(records::Message message, Scope scope) = 0;
};

}  // namespace shardmq::cluster
