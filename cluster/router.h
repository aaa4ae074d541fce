// The seam between the broker and the cluster's data plane (STYLE.md section 2: the broker
// calls Router; the cluster calls LocalDelivery, which the broker implements).
//
// Scope: clients connected to different nodes publish to and subscribe to each other (QoS 0/1/2,
// shared subscriptions, retained messages); a session lives on its client id's partition leader
// and other nodes relay its connection there; a partition that moves takes its sessions along
// (the hand-off, proto/cluster.proto HandoffOffer).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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

  // --- Sessions. A client's session lives on S = leader(partition(client id)); a node that
  // is not S relays the client's MQTT byte stream to S (proto/cluster.proto, RelayOpen).
  struct Placement {
    bool local = false;     // this node is S
    std::string node;       // S otherwise
    int64_t revision = 0;   // the map revision the answer comes from
    uint64_t epoch = 0;     // epoch of partition(client id) in it
  };
  // Where `client_id`'s session lives. Unavailable (with the reason) if S is down or unknown,
  // or if this node would be S but may not act for it (its lease may have expired). Aborted
  // if this node is S but the session's partition is being handed off: asking again shortly
  // will answer.
  virtual absl::StatusOr<Placement> PlaceSession(const std::string& client_id) = 0;
  struct RelayOpenArgs {
    uint64_t conn = 0;
    std::string client_id;
    bool assigned = false;
    std::string data;
    std::string peer;
  };
  // Opens a relayed connection at `placement.node` (the revision and epoch go with it).
  virtual void RelayOpen(const Placement& placement, RelayOpenArgs args, Done done) = 0;
  // Bytes of a relayed connection to `node` (see RelayData). `done` once `node` has them.
  // `consumed` (downstream only, -1: none): upstream bytes handled since the last report
  // (RelayData.consumed).
  virtual void RelaySend(const std::string& node, uint64_t conn, bool upstream, std::string data,
                         bool close, Done done, int64_t consumed = -1) = 0;
  // Tells S whether the client's socket here is congested (see RelayData.congested).
  virtual void RelayCongestion(const std::string& node, uint64_t conn, bool congested) = 0;

  // --- QoS 0 overload protection (docs/cluster.md, "A QoS 0 flood"). A QoS 0 message that
  // finds the link to its next node full is dropped there; its publisher is then read no
  // further until that link has room, so the cluster spends no more work on its messages than
  // it can pass on.
  // How many QoS 0 messages handed over on this thread (Forward, and a local owner's routing)
  // were dropped so far because a link was full. The caller compares two readings.
  virtual uint64_t Qos0DropsOnThisThread() const { return 0; }
  // Runs `resume` (on any thread, possibly this one at once) once the link of this thread's
  // latest such drop has room again, or is gone.
  virtual void WhenRoomAfterDrop(std::function<void()> resume) { resume(); }
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

  // --- Relayed connections (Router::RelayOpen). Called on cluster threads, one connection's
  // calls in order.
  // As S: a front-end opened a connection for a session of this node.
  virtual void OnRelayOpen(const std::string& origin, int64_t origin_lease,
                           Router::RelayOpenArgs args) = 0;
  // Bytes for a relayed connection: `upstream` (as S, from front-end `origin`), or for a
  // client of this node whose session is on `origin` (as front-end). `not_leader`: `origin`
  // refused the RelayOpen (fencing); the front-end places the session again. `consumed`
  // (downstream, -1: not set): RelayData.consumed.
  virtual void OnRelayData(const std::string& origin, int64_t origin_lease, uint64_t conn,
                           bool upstream, std::string data, bool close, bool not_leader,
                           int64_t consumed) = 0;
  // As S: the front-end's socket to the client of relayed connection `conn` is congested, or
  // no longer.
  virtual void OnRelayCongestion(const std::string& origin, int64_t origin_lease, uint64_t conn,
                                 bool congested) = 0;
  // `node` left the cluster or came back as a new incarnation: connections relayed from it
  // are lost (their wills are due), and so are the ones relayed to it.
  virtual void OnNodeGone(const std::string& node) = 0;
  // This node no longer leads `lost` (of `partitions`): the sessions of those partitions are
  // served by their new leaders from now on, so their clients here are disconnected (v5:
  // DISCONNECT 0x9C Use another server) and reconnect there. (A partition that moved while
  // this node was alive was handed off first; this is for the others, e.g. after `ctl remove`,
  // whose sessions' stored state stays here.)
  virtual void OnPartitionsLost(const std::vector<uint32_t>& lost, uint32_t partitions) = 0;

  // --- Partition hand-off (proto/cluster.proto HandoffOffer: the steps). Called on cluster
  // threads; the callbacks may run on any thread.
  using Sessions = std::vector<records::SessionTransfer>;
  // As the old leader: this node stops serving the sessions of `partition` (of `partitions`):
  // their clients are disconnected (v5 0x9C) and their will and expiry timers stop (the router
  // turns connects away meanwhile). Deliveries to them go on. `done` with each session's client
  // id, settings and subscriptions.
  virtual void HandoffFreeze(uint32_t partition, uint32_t partitions,
                             std::function<void(Sessions)> done) = 0;
  // As the new leader: creates the offered sessions, holding what is delivered to them, and
  // registers their routes; `done` once every owner has them (or with the first failure).
  virtual void HandoffPrepare(uint32_t partition, uint32_t partitions, Sessions offered,
                              Router::Done done) = 0;
  // As the old leader, once every owner has answered the barrier: `done` with the full state of
  // the partition's sessions, including everything delivered to this node so far.
  virtual void HandoffExport(uint32_t partition, uint32_t partitions,
                             std::function<void(Sessions)> done) = 0;
  // As the new leader: stores `sessions`, followed by what was held for them that they do not
  // hold already (same origin id); `done` once that is durable.
  virtual void HandoffImport(uint32_t partition, uint32_t partitions, Sessions sessions,
                             Router::Done done) = 0;
  // The hand-off of `partition` ended. As the old leader (`outgoing`): if `moved`, its
  // sessions are deleted here without their wills (they live on at the new leader); if not,
  // they are served here again. As the new leader: if `moved`, the sessions' will and expiry
  // timers start; if not, the copies are dropped.
  virtual void HandoffFinish(uint32_t partition, uint32_t partitions, bool outgoing,
                             bool moved) = 0;

  // --- Retained messages (every node holds all of them).
  // This node's retained messages, for a peer that catches up.
  virtual std::vector<records::Message> RetainedSnapshot() = 0;
  // This node asked a peer for its retained messages: from now on, retained publishes seen
  // here win over what the answer says for their topics. `again`: an earlier ask got no whole
  // answer and this one replaces it; publishes seen since the first ask still win.
  virtual void OnRetainedSyncStarted(bool again) = 0;
  // A chunk of the peer's answer, in order; `last`: topics retained here but absent from the
  // whole answer (and not published since the sync started) are cleared.
  virtual void OnRetainedSync(std::vector<records::Message> chunk, bool last,
                              const std::string& from) = 0;
};

}  // namespace shardmq::cluster
