// The cluster's data plane as built today (issue #5, second part): clients on different nodes
// publish to and subscribe to each other.
//
// * Each node registers, per filter its local sessions subscribe to, one route at the filter's
//   owners: the leader of partition(filter) for a filter without wildcards, every live store
//   node for a wildcard filter (AddRoute's `done` waits for all of them: SUBACK after the route
//   is committed).
// * A publish from a local client is delivered locally by the broker and handed here
//   (Forward): it goes to T, the leader of partition(topic). T matches its routes (exact routes
//   of its partitions + every wildcard route) and sends the message to each matching node but
//   the origin; a retained publish goes to every live node, so each node's retained index has
//   it. One publisher's messages for one topic take one stream to one T and one stream from T
//   to each node, so their order is kept.
// * When the map or the members change, the node registers its routes at owners that do not
//   have them yet (a new leader, a restarted store node); an owner drops the routes of a node
//   that left, and of an earlier incarnation of a node that rejoined.
//
// * Shared subscriptions: a node registers ($share/<group>/<filter>) as a route with the group.
//   The owner picks, per matching shared subscription, one node with members (round-robin) and
//   tells it to serve that subscription; the publisher's node delivers only to its plain
//   subscribers and leaves shared ones to the owner.
//
// * Sessions: PlaceSession says where a client's session lives (the leader of its client id's
//   partition); a front-end relays the client's bytes there (RelayOpen/RelaySend), and the
//   broker on each side implements the ends (LocalDelivery::OnRelay*).
// * Fencing: publishes, exact routes and relay opens carry the partition's epoch; a node that
//   does not lead the partition at that epoch (or whose own lease may have expired) refuses
//   them, and the sender sends them again once its map has moved on (the retry thread).
// * Retained catch-up after a new lease: the whole set from the member that joined first.
// * Partition hand-off (handoff.cc): a move listed in the map (PartitionMove) copies the
//   partition's sessions from the old leader to the new one before the controller flips it
//   (steps in proto/cluster.proto, HandoffOffer). Owners answer a hand-off BARRIER only after
//   every delivery they routed before it has been handed to its link (DeliveryBarrier).
//
// Thread-safety: every method from any thread; one mutex, never held while calling out.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cluster/membership.h"
#include "cluster/node_server.h"
#include "cluster/owner_routes.h"
#include "cluster/peer_link.h"
#include "cluster/router.h"

namespace shardmq::cluster {

class ClusterRouter final : public Router, public PeerHandler {
 public:
  // QoS 0 messages for a peer whose link already has this many items waiting are dropped
  // (counted): under overload the cheapest place to shed QoS 0 is before the next hop, and the
  // queue stays small. QoS 1/2 items wait (up to PeerLink::kMaxQueued).
  static constexpr size_t kQos0LinkBacklog = 10000;
  ClusterRouter(std::string self_id, LocalDelivery& local);
  ~ClusterRouter() override;

  // Membership updates (cluster threads). SetLease: this node's current lease (sent with every
  // batch; a new one makes the owners forget the routes of the previous incarnation).
  void SetLease(int64_t lease);
  void OnMap(const PartitionMap& map);
  void OnMembers(const std::map<std::string, v1::MemberRecord>& members);
  // Stops sending (shutdown): pending items fail with Unavailable.
  void Stop();

  // Router
  void AddRoute(const std::string& filter, const std::string& group, Done done) override;
  void RemoveRoute(const std::string& filter, const std::string& group) override;
  void Forward(const records::Message& message, Done done) override;
  absl::StatusOr<Placement> PlaceSession(const std::string& client_id) override;
  void RelayOpen(const Placement& placement, RelayOpenArgs args, Done done) override;
  void RelaySend(const std::string& node, uint64_t conn, bool upstream, std::string data,
                 bool close, Done done, int64_t consumed = -1) override;
  void RelayCongestion(const std::string& node, uint64_t conn, bool congested) override;
  uint64_t Qos0DropsOnThisThread() const override;
  void WhenRoomAfterDrop(std::function<void()> resume) override;

  // Partition hand-off: this node (the new leader) holds the sessions of `partition` copied
  // from `from` (leader at `epoch`): tell the controller (Membership::MarkHandoffReady); and
  // the record is no longer needed (Membership::ClearHandoff).
  // The hook's arguments: partition, from, from's lease, epoch.
  using HandoffReady =
      std::function<absl::Status(uint32_t, const std::string&, int64_t, uint64_t)>;
  void set_handoff_hooks(HandoffReady ready, std::function<void(uint32_t)> clear) {
    std::lock_guard lock(mu_);
    handoff_ready_ = std::move(ready);
    handoff_clear_ = std::move(clear);
  }

  // Whether this node may act as a partition's leader at all now (Membership::LeaseValid).
  // Unset: always.
  void set_lease_check(std::function<bool()> check) {
    std::lock_guard lock(mu_);
    lease_check_ = std::move(check);
  }

  // cluster.qos0_overload: whether Qos0DropsOnThisThread counts (a broker holds a client only
  // when it does). Set before use. Default: yes.
  void set_hold_qos0_publishers(bool hold) { hold_qos0_publishers_ = hold; }

  // PeerHandler
  absl::Status Handle(const std::string& sender, int64_t sender_lease,
                      const v1::PeerItem& item) override;
  void StreamEnded(const std::string& sender, int64_t sender_lease) override;
  // Tests: breaks the stream to `node` if it has items in flight (PeerLink::BreakStreamForTest).
  size_t BreakLinkForTest(const std::string& node) {
    std::shared_ptr<PeerLink> link;
    {
      std::lock_guard lock(mu_);
      if (auto it = links_.find(node); it != links_.end()) link = it->second;
    }
    return link ? link->BreakStreamForTest() : 0;
  }
  void HandleRevoke(const v1::RevokeRequest& request) override;

  // Quiet topics (proto QuietGrant): at most this many topics granted as owner, and held as
  // publisher's node; an owner sends a grant again to a node still forwarding after this long.
  static constexpr size_t kMaxQuietTopics = 100000;
  static constexpr std::chrono::milliseconds kQuietResend{1000};
  // How long a peer stream waits for the holders of grants a new route matches to end them
  // before the route is refused (and sent again).
  static constexpr std::chrono::milliseconds kRevokeWait{250};

  // A publish or route registration refused by fencing (the receiver does not lead the
  // partition at the epoch this node knows) is sent again after kRefusedRetryDelay, to
  // whichever node leads it in this node's map by then, up to kMaxRefusedRetries times; then
  // it fails with the refusal.
  static constexpr std::chrono::milliseconds kRefusedRetryDelay{100};
  static constexpr int kMaxRefusedRetries = 30;
  // A retained catch-up that gets no chunk for this long is asked again.
  static constexpr std::chrono::seconds kSyncSilence{5};
  // How long a publish for a partition this node just gained waits for every live member's
  // routes (RoutesSynced) before it is routed with the routes in place.
  static constexpr std::chrono::milliseconds kGateWait{2000};
  // A hand-off from this node that has not flipped this long after it started is started
  // again (a lost item, a new leader that could not write its record).
  static constexpr std::chrono::milliseconds kHandoffTimeout{30000};

  struct Stats {
    uint64_t forwarded = 0;        // publishes handed to an owner on another node
    uint64_t forward_errors = 0;   // ... that failed (owner down or unknown, stream broken)
    uint64_t delivered_in = 0;     // messages from other nodes delivered locally
    uint64_t routed_out = 0;       // messages this node, as owner, sent to other nodes
    uint64_t owner_routes = 0;     // routes this node holds as owner
    uint64_t local_filters = 0;    // filters this node has registered
    uint64_t qos0_dropped = 0;     // QoS 0 messages dropped because the next node lags
    uint64_t batches_out = 0;      // gRPC messages sent on the peer links
    uint64_t items_out = 0;        // items in them: items_out / batches_out = batching
    uint64_t relays_out = 0;       // client connections relayed to their session's node
    uint64_t relays_in = 0;        // relayed connections accepted for this node's sessions
    uint64_t fenced = 0;           // requests refused: not the leader at the sender's epoch
    uint64_t retained_syncs = 0;   // retained catch-ups completed (from a peer)
    uint64_t route_waits = 0;      // publishes held back: a gained partition's routes not all in
    uint64_t handoffs_out = 0;     // partitions handed off to another node (flipped)
    uint64_t handoffs_in = 0;      // partitions taken over from another node (flipped)
    uint64_t handoffs_cancelled = 0;  // hand-offs ended without a flip (a node left, a failure)
    uint64_t handoff_sessions_out = 0;  // sessions sent in hand-offs
    uint64_t handoff_sessions_in = 0;   // sessions received and stored in hand-offs
    uint64_t handoffs_active = 0;       // hand-offs this node takes part in, not flipped yet
    uint64_t held_for_down = 0;         // QoS 1/2 deliveries held for down store nodes (now)
    uint64_t held_for_down_dropped = 0; // ... dropped: over kMaxHeldForDown, or node removed
    uint64_t forwards_skipped = 0;      // QoS 0 publishes not forwarded: quiet topic (granted)
    uint64_t quiet_grants = 0;          // quiet-topic grants sent as owner
    uint64_t quiet_revokes = 0;         // Peer.Revoke calls made as owner (before a route ack)
    uint64_t quiet_topics = 0;          // quiet-topic grants this node holds now
    uint64_t items_resent = 0;          // QoS 1/2 items sent again after a peer stream broke
    uint64_t duplicates_dropped = 0;    // ... that arrived here twice, and were dropped
  };
  // QoS 1/2 deliveries an owner holds for one down store node, in count and payload bytes
  // (the oldest are dropped beyond either).
  static constexpr size_t kMaxHeldForDown = 100000;
  static constexpr size_t kMaxHeldBytesForDown = 256 << 20;
  Stats stats() const;

 private:
  struct Owner {
    std::string node;
    int64_t lease = 0;
    bool operator<(const Owner& o) const {
      return std::tie(node, lease) < std::tie(o.node, o.lease);
    }
  };
  struct LocalFilter {
    int count = 0;                    // local subscriptions
    int refusals = 0;                 // registrations refused (fencing) since the last success
    std::set<Owner> registered;       // owners that acknowledged the route
    std::set<Owner> pending;          // owners asked, no answer yet
    int retrying = 0;                 // refused registrations waiting to be sent again
    std::vector<Done> waiters;        // AddRoute calls waiting for `pending` to empty
    absl::Status failure;             // the first failure while pending
  };
  struct Outgoing {
    std::string node;
    v1::PeerItem item;
    Done done;
    bool droppable = false;  // QoS 0: dropped if the link lags (kQos0LinkBacklog)
  };

  using RouteKey = std::pair<std::string, std::string>;  // (filter, group)

  // Under mu_.
  std::vector<Owner> OwnersOfLocked(const std::string& filter) const;
  bool AliveLocked(const std::string& node) const { return members_.contains(node); }
  void RegisterLocked(const RouteKey& key, LocalFilter& lf, std::vector<Outgoing>* out);
  void RouteAckLocked(const RouteKey& key, const Owner& owner, const absl::Status& st,
                      std::vector<std::pair<Done, absl::Status>>* ready);
  // Hands the AddRoute calls waiting on `lf` to `ready` once no owner is pending or retried.
  void CompleteIfSettledLocked(LocalFilter& lf, std::vector<std::pair<Done, absl::Status>>* ready);
  // As owner: where a publish from `origin` goes. *here: what this node delivers itself
  // (nothing if both plain is false and shared is empty).
  void RoutePublishLocked(const std::string& origin, const records::Message& message,
                          std::vector<Outgoing>* out, LocalDelivery::Scope* here);

  // partition(key) in the current map (0 when there is none yet).
  uint32_t PartitionLocked(std::string_view key) const;
  // Whether this node leads `partition` at `epoch` and may act on it (fencing).
  bool LeadsLocked(uint32_t partition, uint64_t epoch) const;
  // Whether every live member has registered its routes for the map in which this node gained
  // `partition` (RoutesSynced); "" if so, else the id of a member still missing.
  std::string RoutesMissingLocked(uint32_t partition) const;
  // RoutesSynced markers for every other member (after a registration pass).
  void MarkSyncedLocked(std::vector<Outgoing>* out);
  // Local publishes held for partitions whose routes are not all in: routes those whose gate
  // opened (or waited kGateWait, or all if `force`), in order. Outside the lock, FinishFlush
  // sends, delivers this node's shared picks and completes them.
  void FlushHeldLocked(bool force, std::vector<Outgoing>* out,
                       std::vector<std::pair<Done, absl::Status>>* ready,
                       std::vector<std::pair<records::Message, LocalDelivery::Scope>>* here);
  // Returns `ticket` (TicketLocked) once done.
  void FinishFlush(std::vector<Outgoing> out, std::vector<std::pair<Done, absl::Status>> ready,
                   std::vector<std::pair<records::Message, LocalDelivery::Scope>> here,
                   int ticket);
  void ScheduleGateCheckLocked();

  // Outside mu_.
  void Send(std::vector<Outgoing> out);
  void ForwardAttempt(const records::Message& message, Done done, int attempt);
  // Runs `fn` on the retry thread after kRefusedRetryDelay (dropped if the router stops).
  void Later(std::function<void()> fn);
  // The same, under mu_, after `delay`.
  void LaterLocked(std::function<void()> fn,
                   std::chrono::milliseconds delay = kRefusedRetryDelay);
  void RetryLoop();
  void OnRouteAck(const RouteKey& key, const Owner& owner, const absl::Status& st);

  // --- Items sent again after a broken stream (PeerLink `resend`): which ones, and the
  // receiver's memory of the last kMaxRecent it got from each sender incarnation, by origin id.
  static bool ResentOnBreak(const v1::PeerItem& item);
  // Whether `message` came from `sender` before (as a publish, or as a delivery); remembers it.
  bool SeenLocked(const std::string& sender, int64_t sender_lease, bool deliver,
                  const records::Message& message);
  // The same question, without remembering it.
  bool SeenBeforeLocked(const std::string& sender, int64_t sender_lease, bool deliver,
                        const records::Message& message) const;
  static constexpr size_t kMaxRecent = 65536;
  using RecentKey = std::pair<uint64_t, uint64_t>;  // (origin, origin_seq * 2 + deliver)
  static RecentKey KeyOf(const records::Message& message, bool deliver) {
    return {message.origin(), message.origin_seq() * 2 + (deliver ? 1 : 0)};
  }
  struct RecentHash {
    size_t operator()(const RecentKey& k) const {
      return std::hash<uint64_t>()(k.first * 0x9E3779B97F4A7C15ULL ^ k.second);
    }
  };
  struct Recent {
    std::unordered_set<RecentKey, RecentHash> seen;
    std::deque<RecentKey> order;
  };
  std::map<std::pair<std::string, int64_t>, Recent> recent_;
  uint64_t closed_resent_ = 0;

  // --- Quiet topics (proto QuietGrant).
  // As owner, routing a remote QoS 0 publish of `origin` that matched nothing else: a grant for
  // its topic, unless `origin` holds one (or had one sent within kQuietResend).
  void MaybeGrantLocked(const std::string& origin, const records::Message& message,
                        const OwnerRoutes::Matches& matches, std::vector<Outgoing>* out);
  // As owner, a route (filter, group) of `node` was just added: the nodes holding grants for
  // topics it matches, which must end them before the route is acknowledged (all but `node`
  // itself for a plain route: it delivers to its own subscribers).
  std::vector<std::string> GrantHoldersLocked(const std::string& filter, const std::string& group,
                                              const std::string& node) const;
  // As owner: forgets the grants given to `node` with ids up to `upto`.
  void ForgetGrantsLocked(const std::string& node, uint64_t upto);
  // Revokes every grant to `holders` (Peer.Revoke); `done` once all answered (OK) or with the
  // first failure. Outside mu_.
  void RevokeGrants(const std::vector<std::string>& holders, Done done);
  // As publisher's node: whether a QoS 0 publish for `topic` (partition `p`) need not go to
  // its owner `leader`.
  bool QuietLocked(const std::string& topic, uint32_t p, const std::string& leader) const;
  struct QuietTopic {  // a grant this node holds
    std::string owner;
    int64_t owner_lease = 0;
    uint64_t epoch = 0;
    uint64_t id = 0;
  };
  std::unordered_map<std::string, QuietTopic> quiet_;  // by topic
  // Per owner incarnation: grants up to this id were revoked (a grant can arrive after its
  // revocation: the revoke is a unary call beside the stream).
  std::map<std::pair<std::string, int64_t>, uint64_t> revoked_upto_;
  struct Granted {  // a grant this node gave as owner
    uint64_t id = 0;
    uint64_t epoch = 0;  // of the topic's partition
    std::chrono::steady_clock::time_point sent;
  };
  std::unordered_map<std::string, std::map<std::string, Granted>> granted_;  // topic -> node
  uint64_t grant_seq_ = 0;

  // --- Partition hand-off (handoff.cc).
  struct Handoff {
    enum class Stage {
      kFreezing,   // from: waiting for LocalDelivery::HandoffFreeze
      kOffered,    // from: offer sent, waiting for ROUTES_READY
      kBarrier,    // from: waiting for BARRIER_REPLY from `barrier`
      kExporting,  // from: waiting for LocalDelivery::HandoffExport
      kSent,       // from: data sent, waiting for the flip
      kPreparing,  // to: waiting for LocalDelivery::HandoffPrepare
      kPrepared,   // to: routes in, waiting for the data
      kImporting,  // to: waiting for LocalDelivery::HandoffImport
      kReady,      // to: handoffs/<p> written, waiting for the flip
    };
    bool outgoing = false;  // this node is the move's `from`
    std::string peer;       // the other end
    int64_t peer_lease = 0; // to: the lease of `from` when it offered
    uint64_t epoch = 0;     // of the partition when the move was planned
    int64_t planned_at = 0; // map revision that listed the move (to: from the offer)
    uint64_t attempt = 0;   // a restart after a failure is a new attempt
    Stage stage = Stage::kFreezing;
    std::set<std::string> barrier;            // from: store nodes yet to answer
    std::vector<records::SessionTransfer> data;  // to: HandoffData so far
  };
  // Store nodes that are down but whose partitions wait for them (they lead partitions in the
  // map): as an owner this node keeps their routes and holds the QoS 1/2 deliveries for them,
  // in memory, and sends them first when the node is back (new lease).
  struct DownStore {
    std::deque<v1::PeerItem> held;  // DeliverItems, oldest first
    size_t bytes = 0;               // their payloads
    uint64_t dropped = 0;
  };
  std::map<std::string, DownStore> down_stores_;
  bool WaitedForLocked(const std::string& node) const {
    return map_.revision != 0 && map_.CountLedBy(node) > 0;
  }

  // Starts, finishes and cancels hand-offs for a new map (under mu_); `after` runs outside.
  void HandoffsOnMapLocked(std::vector<std::function<void()>>* after);
  void HandoffsOnMembersLocked(std::vector<std::function<void()>>* after);
  void StartHandoffLocked(uint32_t p, const std::string& to, std::vector<std::function<void()>>* after);
  void RestartHandoff(uint32_t p, uint64_t attempt, const std::string& why);
  void SendBarriersLocked(uint32_t p, Handoff& h, std::vector<Outgoing>* out,
                          std::vector<std::function<void()>>* after);
  void BarrierDoneLocked(uint32_t p, Handoff& h, std::vector<std::function<void()>>* after);
  void SendHandoffData(uint32_t p, uint64_t epoch, uint64_t attempt, const std::string& to,
                       LocalDelivery::Sessions sessions);
  // An item for `to` that is sent again (up to kMaxRefusedRetries times, kRefusedRetryDelay
  // apart) if it does not get through: hand-off answers, messages held for a node that was
  // down.
  Outgoing Resending(const std::string& to, v1::PeerItem item, int tries = 0);
  absl::Status HandleHandoff(const std::string& sender, int64_t sender_lease,
                             const v1::PeerItem& item);
  // As the new leader, with the sessions stored: writes handoffs/<p> (handoff_ready_).
  void MarkHandoffReady(uint32_t p, const std::string& from, int64_t from_lease, uint64_t epoch,
                        uint64_t attempt, int tries);
  // The hand-off of `p` if it is attempt `attempt` and at `stage` (a callback's step is still
  // the current one), else nullptr.
  Handoff* AtStageLocked(uint32_t p, uint64_t attempt, Handoff::Stage stage);
  bool FrozenLocked(uint32_t p) const { return p < frozen_.size() && frozen_[p]; }
  // Delivery barrier: every publish routed here takes a ticket (under mu_) and returns it once
  // its deliveries are handed to their links and to LocalDelivery. DeliveryBarrier (not under
  // mu_) waits until every ticket taken before it was called has been returned.
  int TicketLocked() {
    const int slot = static_cast<int>(delivery_epoch_ & 1);
    tickets_[slot].fetch_add(1, std::memory_order_relaxed);
    return slot;
  }
  void ReturnTicket(int slot) { tickets_[slot].fetch_sub(1, std::memory_order_release); }
  void DeliveryBarrier();

  const std::string self_;
  LocalDelivery& local_;
  std::map<uint32_t, Handoff> handoffs_;
  std::vector<bool> frozen_;  // partitions whose sessions are being handed off from here
  uint64_t handoff_attempts_ = 0;
  HandoffReady handoff_ready_;
  std::function<void(uint32_t)> handoff_clear_;
  uint64_t delivery_epoch_ = 0;  // under mu_
  std::atomic<int64_t> tickets_[2] = {0, 0};
  std::mutex barrier_mu_;  // one DeliveryBarrier at a time
  bool hold_qos0_publishers_ = true;
  mutable std::mutex mu_;
  bool stopped_ = false;
  int64_t lease_ = 0;
  std::function<bool()> lease_check_;
  PartitionMap map_;
  std::map<std::string, v1::MemberRecord> members_;
  std::map<std::string, std::shared_ptr<PeerLink>> links_;
  OwnerRoutes owner_routes_;
  std::map<RouteKey, LocalFilter> local_filters_;
  // Round-robin position per shared subscription (group, filter), as this node owns it.
  std::map<std::pair<std::string, std::string>, uint64_t> shared_rr_;
  Stats stats_;
  // Route hand-over when this node gains a partition (proto RoutesSynced): the map revision in
  // which it gained each partition it leads, and each member incarnation's synced revision.
  std::vector<int64_t> gained_at_;
  std::map<std::pair<std::string, int64_t>, int64_t> synced_;
  std::condition_variable gate_cv_;  // a RoutesSynced arrived (remote publishes wait on it)
  struct HeldPublish {
    records::Message message;
    Done done;
  };
  struct Held {
    std::chrono::steady_clock::time_point since;
    std::deque<HeldPublish> items;
  };
  std::map<uint32_t, Held> held_;  // local publishes waiting for a gained partition's routes
  bool gate_check_pending_ = false;
  // Retained catch-up (proto RetainedSyncRequest): needed after every new lease; asked of the
  // live member that joined first, if it joined before this node.
  enum class SyncState { kNone, kNeeded, kAwaiting };
  SyncState sync_state_ = SyncState::kNone;
  uint64_t sync_token_ = 0;
  std::string sync_peer_;
  bool sync_asked_ = false;    // asked since the lease changed: a new ask keeps local updates
  uint64_t sync_progress_ = 0;  // chunks received
  void MaybeStartSync();  // outside mu_
  void WatchSyncLocked(uint64_t token, uint64_t progress);
  void SendRetainedSync(const std::string& to, uint64_t token, int tries);  // outside mu_
  std::condition_variable retry_cv_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::function<void()>>> later_;
  std::thread retry_thread_;
  uint64_t closed_batches_ = 0;  // batches_sent/items_sent of links already closed
  uint64_t closed_items_ = 0;
};

}  // namespace shardmq::cluster
