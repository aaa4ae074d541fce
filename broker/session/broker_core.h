// The MQTT broker core of one node: sessions, routing and delivery across the network workers.
//
// Threads: every network worker has one WorkerCore, used only on that worker's thread. A session
// lives on the worker of its current (or last) connection; when a client reconnects on another
// worker its session moves there (see the move protocol in broker_core.cc). Publishes are
// matched on the publisher's worker against that worker's RouteTable replica; deliveries for
// sessions on other workers are batched per target worker and posted once per event-loop turn,
// so no lock is taken per message. The only lock on the connect path is the session directory
// (client id -> worker), never touched per message.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/string_map.h"
#include "absl/functional/any_invocable.h"
#include "broker/net/worker.h"
#include "broker/session/message.h"
#include "broker/session/route_table.h"
#include "broker/session/topic_owner.h"
#include "cluster/router.h"
#include "common/clock.h"
#include "proto/config.pb.h"
#include "storage/batch.h"
#include "storage/retained_index.h"
#include "storage/storage.h"

namespace shardmq::broker::session {

class ConnectionHandler;
class Session;

// Counters of one worker, written by that worker only and read by $SYS and /metrics.
struct WorkerStats {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<int64_t> clients_connected{0};
  std::atomic<uint64_t> messages_received{0};  // PUBLISH packets from clients
  std::atomic<uint64_t> messages_sent{0};      // PUBLISH packets to clients
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> dropped_queue_full{0};
  std::atomic<uint64_t> dropped_qos0_offline{0};
  std::atomic<uint64_t> dropped_qos0_backpressure{0};
  std::atomic<uint64_t> dropped_expired{0};
  std::atomic<uint64_t> dropped_too_large{0};
  std::atomic<uint64_t> dropped_superseded{0};  // telemetry policy: a newer message replaced it
  std::atomic<uint64_t> retained_rejected_count{0};
  std::atomic<uint64_t> retained_rejected_size{0};
  std::atomic<uint64_t> storage_errors{0};
  // Relayed client sockets whose reading was held because their session's node lagged behind.
  std::atomic<uint64_t> relay_read_holds{0};
  // Clients not read for a while because a QoS 0 message of theirs was dropped at a full link
  // to another node (cluster::Router::WhenRoomAfterDrop).
  std::atomic<uint64_t> qos0_publisher_holds{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<int64_t> sessions{0};  // resident on this worker
  std::atomic<int64_t> subscriptions{0};

  void Add(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

// What a CONNECT asks of the session layer.
struct SessionRequest {
  std::string client_id;
  bool clean_start = false;
};

class BrokerCore;

class WorkerCore {
 public:
  WorkerCore(BrokerCore& broker, net::Worker& worker);
  ~WorkerCore();

  int index() const { return worker_.index(); }
  net::Worker& worker() { return worker_; }
  BrokerCore& broker() { return broker_; }
  RouteTable& routes() { return routes_; }
  WorkerStats& stats() { return stats_; }

  // Publishes a message from a client, a will or the broker: stores/clears the retained
  // message, matches routes and dispatches the deliveries. Durable effects (retained update,
  // body and queue entries for persistent sessions' QoS 1/2 deliveries) go into batch(); use
  // AfterCommit to act once they are durable.
  // `scope` (cluster mode): which of this node's subscribers the message is for (see
  // cluster::LocalDelivery::Scope); nullptr = all of them.
  void Publish(std::shared_ptr<Message> message,
               const cluster::LocalDelivery::Scope* scope = nullptr);
  // Where this worker's connections hand their publishes (TopicOwner): on one node, this core.
  TopicOwner& topic_owner(const std::string& topic) {
    (void)topic;  // one owner for every topic until the cluster layer routes by partition
    return local_owner_;
  }

  // This worker's pending storage changes; committed at the end of the event-loop turn.
  storage::Batch& batch();
  // Runs `fn` on this worker once everything put in batch() so far is durable (or failed).
  // Callbacks run in registration order.
  void AfterCommit(absl::AnyInvocable<void(const absl::Status&)> fn);
  // Finishes the stored delivery of `message` to `client_id` (a done mark) and drops the body
  // when no delivery needs it any more.
  void ReleaseStored(const std::string& client_id, const Message& message);
  // Commits batch() now (shutdown).
  void CommitPending();
  // Commits batch() before the end of the turn once it holds kEarlyCommitDeliveries stored
  // deliveries: a turn that reads many publishes with a large persistent fan-out would
  // otherwise hold every PUBACK until all are routed, while the storage thread sits idle.
  void CommitIfLarge() {
    if (uncommitted_deliveries_ >= kEarlyCommitDeliveries) CommitPending();
  }
  static constexpr size_t kEarlyCommitDeliveries = 4096;
  // Storage commits issued by this worker and not yet completed.
  int inflight_commits() const { return inflight_commits_; }

  // Delivers to a session resident on this worker (or forwards it if the session moved).
  void DeliverLocal(Delivery&& delivery);

  // Cluster mode: a publisher's acknowledgement waits for two things, the local commit and the
  // topic owner's answer, and acknowledgements must still go out in publish order. OpenAck
  // takes `done` and returns a ticket; each part calls CompleteAck(ticket, status) on this
  // worker; `done` runs (with the first error, if any) once both parts are in and every
  // earlier ticket's `done` has run.
  uint64_t OpenAck(TopicOwner::Done done, int parts);
  void CompleteAck(uint64_t ticket, const absl::Status& status);

  // QoS 0 backpressure across workers. A session of this worker whose connection has more than
  // kCongestedBytes unwritten is marked congested; other workers then drop QoS 0 deliveries to it
  // where they are published (counted as qos0_backpressure there) instead of handing them over
  // to be dropped here: under QoS 0 overload the subscriber's worker keeps its time for writing
  // to the subscriber. Call on this worker.
  void SetCongested(const std::string& client_id, bool congested);
  // Whether `client_id`, resident on worker `worker`, is marked congested. Call on this worker.
  bool PeerCongested(int worker, const std::string& client_id);

  // Runs fn on `target`'s thread, after every delivery this worker queued for it.
  void PostTo(int target, absl::AnyInvocable<void(WorkerCore&)> fn);
  // Runs fn on every worker (on this one synchronously, first). `done`, if given, runs on this
  // worker once every worker has run fn. `ack_to` (a worker index) receives the
  // acknowledgements instead of this worker when set (used by the session move protocol).
  void Broadcast(std::function<void(WorkerCore&)> fn, absl::AnyInvocable<void()> done = nullptr);

  // Finds or creates the session for a CONNECT and attaches `handler` to it. Calls
  // handler->OnSessionReady() later (possibly after the session moved from another worker).
  void Connect(std::shared_ptr<ConnectionHandler> handler, SessionRequest request);

  // Called by Session when the client disconnects (session stays) or the session ends.
  void OnSessionOffline(Session& session);
  // Ends the session: publishes a pending will, removes routes, storage and the directory entry.
  void EndSession(Session& session);
  // Broadcasts the session's current location (worker, online) to every worker.
  void AnnounceLocation(Session& session, absl::AnyInvocable<void()> done = nullptr);

  Session* FindSession(std::string_view client_id);
  // The same, without hashing the id again (the per-delivery look-up).
  Session* FindSessionOf(const SharedString& client_id) {
    auto it = sessions_.find(client_id.view(), client_id.hash());
    return it == sessions_.end() ? nullptr : it->second.get();
  }
  size_t session_count() const { return sessions_.size(); }
  // Closes every connection on this worker (shutdown). v5 clients get DISCONNECT 0x8B.
  void CloseAll();
  // Every `interval`, drops expired messages from the queues of this worker's sessions (so
  // expired messages of offline sessions leave memory and disk). Call on this worker.
  void StartExpirySweeper(std::chrono::milliseconds interval);
  void StopExpirySweeper() { sweeper_.reset(); }

  // --- Relayed connections (cluster mode: relayed_connection.h, Router::RelayOpen).
  // As S, the session's node: a connection relayed from front-end `origin`, named `key` in
  // this worker's table.
  void OpenRelayed(const std::string& origin, const std::string& key,
                   cluster::Router::RelayOpenArgs args);
  // Client bytes for it (then the end of it, if `close`).
  void RelayedIn(const std::string& key, std::string_view data, bool close);
  void RelayedCongestion(const std::string& key, bool congested);
  void ForgetRelayed(const std::string& key);
  // As front-end: a client connection of this worker relayed to its session's node. Returns
  // the connection's relay id (its low 8 bits are this worker's index).
  uint64_t RegisterRelay(std::shared_ptr<ConnectionHandler> handler);
  void UnregisterRelay(uint64_t conn) { relays_out_.erase(conn); }
  // Bytes (and upstream credit, -1: none) from the session's node for relayed connection `conn`.
  void RelayReply(const std::string& from, uint64_t conn, std::string_view data, bool close,
                  bool not_leader, int64_t consumed);
  // `node` is gone: the connections relayed from it are lost (wills due), those relayed to it
  // are closed (their clients reconnect).
  void RelayNodeGone(const std::string& node);
  // Disconnects (v5: 0x9C) the clients of this worker's sessions in the partitions marked in
  // `lost` (by partition number): this node no longer leads them.
  void KickLostSessions(const std::vector<bool>& lost);

  // --- Partition hand-off (handoff.cc; the BrokerCore::Handoff* steps, run on each worker).
  std::vector<Session*> SessionsOfPartition(uint32_t partition, uint32_t partitions);
  // Freezes the partition's sessions here (kicking their clients) and adds their headers.
  // `late`: only the ones not frozen yet (sessions that were moving between workers).
  void HandoffFreeze(uint32_t partition, uint32_t partitions,
                     cluster::LocalDelivery::Sessions* headers, bool late = false);
  void HandoffPrepare(const records::SessionTransfer& offered,
                      std::function<void(const absl::Status&)> routed);
  void HandoffExport(uint32_t partition, uint32_t partitions,
                     cluster::LocalDelivery::Sessions* out);
  void HandoffImport(const records::SessionTransfer& transfer,
                     std::function<void(const absl::Status&)> done);
  void HandoffFinish(uint32_t partition, uint32_t partitions, bool outgoing, bool moved);
  // Ends a session without its will (it lives on at another node, or was a copy).
  void DiscardSession(Session& session);

  // Every connection of this worker is registered from construction to OnClosed. One ticker
  // per worker (every kDeadlineTick) calls OnDeadline on those whose deadline has passed: CONNECT
  // timeout and keepalive need no timer per connection (an idle connection stays small).
  void RegisterConnection(ConnectionHandler* handler);
  void UnregisterConnection(ConnectionHandler* handler);
  // Sets when `handler` wants OnDeadline (steady ms; 0 = never). A deadline may be early: the
  // handler re-checks and sets the next one.
  void SetDeadline(ConnectionHandler* handler, int64_t deadline_ms);
  void StopDeadlineTicker() { ticker_.reset(); }
  static constexpr std::chrono::milliseconds kDeadlineTick{250};

 private:
  friend class BrokerCore;
  // Hands each delivery to the worker of its session: targets[i] is the worker index of
  // deliveries[i]'s session, -1 if it has ended.
  // slots[i] is the route slot of deliveries[i] (from RouteTable::Match).
  void Dispatch(std::vector<Delivery>& deliveries, const std::vector<int>& targets,
                const std::vector<LocationSlot*>& slots);
  // Enqueues on a session of this worker (or holds the delivery while the session moves in).
  void DeliverTo(Session& session, Delivery&& delivery);
  void UpdateRetained(const Message& message);
  void ScheduleFlush();
  void FlushOutboxes();
  void FlushOutbox(int target);
  Session& CreateSession(const std::string& client_id);
  void FinishConnect(std::shared_ptr<ConnectionHandler> handler, Session& session, bool present);
  void ConnectAttempt(std::shared_ptr<ConnectionHandler> handler, SessionRequest request,
                      int tries);
  void RetryConnect(std::shared_ptr<ConnectionHandler> handler, SessionRequest request, int tries);
  // Cluster mode: `client_id`'s partition is being handed off from this node (frozen).
  bool HandingOff(const std::string& client_id);
  // Whether `client_id`'s session is placed on this node now (no hand-off under way, no
  // newer leader, this node's lease valid). Always without a cluster.
  bool ServedHere(const std::string& client_id);
  // Move protocol (see broker_core.cc).
  void DetachForMove(const std::string& client_id, int to, bool clean_start);
  void SessionArrived(const std::string& client_id, int from, std::unique_ptr<Session> session);
  void LocationAck(const std::string& client_id);
  void MoveComplete(const std::string& client_id);

  BrokerCore& broker_;
  net::Worker& worker_;
  RouteTable routes_;
  WorkerStats stats_;
  StringMap<std::unique_ptr<Session>> sessions_;
  std::vector<std::vector<Delivery>> outbox_;
  bool flush_scheduled_ = false;
  storage::Batch batch_;
  std::vector<absl::AnyInvocable<void(const absl::Status&)>> after_commit_;
  int inflight_commits_ = 0;
  size_t uncommitted_deliveries_ = 0;  // stored deliveries in batch_
  int publish_depth_ = 0;              // nested Publish calls in progress
  struct PendingAck {
    TopicOwner::Done done;
    int parts_left = 0;
    absl::Status status;
  };
  std::deque<PendingAck> acks_;  // OpenAck tickets, oldest first
  uint64_t acks_base_ = 0;       // ticket of acks_.front()
  // Sessions that moved away, still forwarding until every worker knows the new location.
  struct Forward {
    int to = 0;
    int acks_left = 0;
  };
  StringMap<Forward> forwarding_;
  // Connects waiting for their session to arrive from another worker.
  struct PendingConnect {
    std::shared_ptr<ConnectionHandler> handler;
    SessionRequest request;
    std::vector<Delivery> held;  // direct deliveries that arrived before the session
  };
  StringMap<PendingConnect> pending_connects_;
  struct ConnectionSlot {
    ConnectionHandler* handler;
    int64_t deadline_ms;  // 0 = none
  };
  void ScheduleTick();
  void Tick();
  std::vector<ConnectionSlot> connections_;  // ConnectionHandler::slot_ is the index
  LocalTopicOwner local_owner_{*this};
  std::unique_ptr<boost::asio::steady_timer> ticker_;
  // Congested sessions of this worker (read by other workers under congested_mu_, and only
  // when congested_version_ has changed since their last copy).
  std::mutex congested_mu_;
  absl::flat_hash_set<std::string> congested_;
  std::atomic<uint64_t> congested_version_{0};
  struct PeerCongestion {
    uint64_t version = 0;
    absl::flat_hash_set<std::string> sessions;
  };
  std::vector<PeerCongestion> peer_congestion_;  // by worker index
  std::unique_ptr<boost::asio::steady_timer> sweeper_;
  absl::flat_hash_map<std::string, std::shared_ptr<class RelayedConnection>> relayed_in_;
  absl::flat_hash_map<uint64_t, std::weak_ptr<ConnectionHandler>> relays_out_;
  uint64_t next_relay_ = 0;
};

// Process-wide broker state shared by the workers.
class BrokerCore final : public cluster::LocalDelivery {
 public:
  // `mqtt` must have every optional field set (broker/app applies the defaults).
  BrokerCore(const config::Config& config, storage::Storage& storage,
             storage::RetainedIndex& retained, const Clock& clock,
             std::vector<net::Worker*> workers);
  ~BrokerCore() override;

  // The cluster's data plane, when the node is in a cluster (set before the workers start;
  // nullptr on a single node).
  void set_router(cluster::Router* router) { router_ = router; }
  cluster::Router* router() const { return router_; }
  // Registers the cluster routes of the sessions recovered from storage. Call after
  // set_router, before the workers start.
  void RegisterRecoveredRoutes();
  // cluster::LocalDelivery: a message published on another node, for this node's sessions.
  // Posted to the worker of hash(topic), so one topic's messages keep their order.
  // Backpressure: while more than kMaxPeerBacklog such messages wait for their workers, the
  // peer stream a message came on waits (gRPC flow control pushes back to the sender, whose
  // link then drops QoS 0 before sending it: cheaper than decoding it here to drop it).
  // Called on a worker (this node's own shared pick), it never waits: QoS 0 is dropped
  // (counted: peer_backlog_dropped), QoS 1/2 goes past the bound. The bound is small on
  // purpose: a message that waits here costs more than one the sender never sends
  // (bench/cluster_compare fan-in: 0.14x of a single node with 20,000, 0.30x with 500; 100
  // was no better; holding QoS 0 instead of dropping it here: 0.24x -> 0.36x, session 8).
  void DeliverLocal(records::Message message, Scope scope) override;
  // Relayed connections: posted to the worker that holds (or will hold) the connection.
  void OnRelayOpen(const std::string& origin, int64_t origin_lease,
                   cluster::Router::RelayOpenArgs args) override;
  void OnRelayData(const std::string& origin, int64_t origin_lease, uint64_t conn, bool upstream,
                   std::string data, bool close, bool not_leader,
                   int64_t consumed) override;
  void OnNodeGone(const std::string& node) override;
  void OnRelayCongestion(const std::string& origin, int64_t origin_lease, uint64_t conn,
                         bool congested) override;
  void OnPartitionsLost(const std::vector<uint32_t>& lost, uint32_t partitions) override;
  // Partition hand-off (cluster::LocalDelivery; handoff.cc).
  void HandoffFreeze(uint32_t partition, uint32_t partitions,
                     std::function<void(Sessions)> done) override;
  void HandoffPrepare(uint32_t partition, uint32_t partitions, Sessions offered,
                      cluster::Router::Done done) override;
  void HandoffExport(uint32_t partition, uint32_t partitions,
                     std::function<void(Sessions)> done) override;
  void HandoffImport(uint32_t partition, uint32_t partitions, Sessions sessions,
                     cluster::Router::Done done) override;
  void HandoffFinish(uint32_t partition, uint32_t partitions, bool outgoing,
                     bool moved) override;
  // Cluster mode: the identity a publish gets on this node (records::Message.origin).
  uint64_t origin() const { return origin_; }
  uint64_t NextOriginSeq() { return next_origin_seq_.fetch_add(1, std::memory_order_relaxed); }
  // Retained catch-up from a peer (cluster::LocalDelivery). Topics published here since the
  // sync started keep their value; the others take the peer's, and topics the peer does not
  // have are cleared ($SYS/ topics are each node's own and are left alone).
  std::vector<records::Message> RetainedSnapshot() override;
  void OnRetainedSyncStarted(bool again) override;
  void OnRetainedSync(std::vector<records::Message> chunk, bool last,
                      const std::string& from) override;
  // While a retained catch-up runs, a retained publish notes its topic and holds the returned
  // lock while it updates the retained index (so the catch-up never overwrites it).
  bool retained_syncing() const { return retained_syncing_.load(std::memory_order_relaxed); }
  std::unique_lock<std::mutex> NoteRetainedUpdate(const std::string& topic);
  uint64_t NextRelayedId() { return next_relayed_id_.fetch_add(1, std::memory_order_relaxed); }
  static constexpr int64_t kMaxPeerBacklog = 500;
  uint64_t peer_stream_waits() const { return peer_stream_waits_.load(std::memory_order_relaxed); }
  uint64_t peer_backlog_overruns() const {
    return peer_backlog_overruns_.load(std::memory_order_relaxed);
  }
  uint64_t peer_backlog_dropped() const {
    return peer_backlog_dropped_.load(std::memory_order_relaxed);
  }
  // Stops DeliverLocal from waiting (shutdown).
  void StopPeerDeliveries() { peer_stopping_.store(true); }

  const config::Config& config() const { return config_; }
  const config::MqttConfig& mqtt() const { return config_.mqtt(); }
  storage::Storage& storage() { return storage_; }
  storage::RetainedIndex& retained() { return retained_; }
  uint64_t NextMessageId() { return next_message_id_.fetch_add(1, std::memory_order_relaxed); }
  // True if `topic` falls under mqtt.latest_only_filters (telemetry policy).
  bool LatestOnly(std::string_view topic) const;

  // Rebuilds sessions, routes, queues, wills, timers and retained messages from storage. Call
  // before the workers start. Will and expiry timers count from each session's disconnect time
  // (sessions that were connected when the node stopped count from now).
  void Recover(storage::Snapshot snapshot);
  const Clock& clock() const { return clock_; }
  int worker_count() const { return static_cast<int>(cores_.size()); }
  WorkerCore& core(int index) { return *cores_[index]; }
  int64_t started_at_ms() const { return started_at_ms_; }

  uint64_t NextSessionGen() { return next_gen_.fetch_add(1, std::memory_order_relaxed); }

  // Session directory: which worker holds each client id's session. Locked only on connect,
  // session end and moves.
  enum class ClaimResult { kNew, kBusy, kExisting };
  // Claims `client_id` for worker `by`. kNew: no session existed (entry created, busy).
  // kExisting: *from is where the session is; the entry now points at `by` and is busy.
  // kBusy: another connect for the id is in progress; try again shortly.
  ClaimResult Claim(const std::string& client_id, int by, int* from);
  // Marks the entry settled at `worker` (connect finished).
  void Settle(const std::string& client_id, int worker);
  // Removes the entry if it is settled at `worker` (a session ended).
  void Release(const std::string& client_id, int worker);
  // Removes the entry claimed by `worker`, busy or not (a connect that ends without a session).
  void ReleaseClaim(const std::string& client_id, int worker);
  // Runs `step` for each session on the worker that holds (or would hold) it; `done` once all
  // have finished, with the first failure.
  void OnHomeWorkers(cluster::LocalDelivery::Sessions sessions,
                     void (WorkerCore::*step)(const records::SessionTransfer&,
                                              std::function<void(const absl::Status&)>),
                     cluster::Router::Done done);
  // A session created on `worker` without a connect (a hand-off copy): settled there.
  void Adopt(const std::string& client_id, int worker);
  // The worker that holds `client_id`'s session, or would hold a new one (hash of the id).
  WorkerCore& HomeOf(const std::string& client_id);

  // Totals over all workers.
  struct Totals {
    int64_t clients_connected = 0;
    int64_t connections_open = 0;
    uint64_t messages_received = 0;
    uint64_t messages_sent = 0;
    uint64_t bytes_received = 0;
    uint64_t bytes_sent = 0;
    int64_t sessions = 0;
    int64_t subscriptions = 0;
    uint64_t dropped = 0;
  };
  Totals GetTotals();

  // Starts the $SYS publisher (on worker 0) if mqtt.sys_interval > 0.
  void StartSysTopics();
  // Stops it (shutdown; before the workers stop).
  void StopSysTopics();

 private:
  const config::Config config_;
  storage::Storage& storage_;
  storage::RetainedIndex& retained_;
  const Clock& clock_;
  std::atomic<uint64_t> next_message_id_{1};
  const uint64_t origin_;  // random, never 0
  std::atomic<uint64_t> next_origin_seq_{1};
  std::vector<std::string> latest_only_filters_;
  const int64_t started_at_ms_;
  std::vector<std::unique_ptr<WorkerCore>> cores_;
  std::atomic<uint64_t> next_gen_{1};
  struct DirEntry {
    int worker = 0;
    bool busy = false;
  };
  std::mutex dir_mu_;
  absl::flat_hash_map<std::string, DirEntry> directory_;
  std::unique_ptr<class SysTopics> sys_;
  cluster::Router* router_ = nullptr;
  std::atomic<int64_t> peer_backlog_{0};  // DeliverLocal messages posted, not yet published
  std::atomic<uint64_t> peer_backlog_dropped_{0};
  std::atomic<uint64_t> peer_stream_waits_{0};
  std::atomic<uint64_t> peer_backlog_overruns_{0};
  std::atomic<bool> peer_stopping_{false};
  std::atomic<uint64_t> next_relayed_id_{uint64_t{1} << 62};  // Transport ids of relayed ones
  static std::string RelayKey(const std::string& origin, int64_t origin_lease, uint64_t conn);
  WorkerCore* RelayCore(const std::string& key);
  // Retained catch-up state (sync_mu_).
  void ApplySyncedRetained(WorkerCore& core, const records::Message& message);
  void SyncTaskDone();
  std::atomic<bool> retained_syncing_{false};
  std::mutex sync_mu_;
  absl::flat_hash_set<std::string> sync_touched_;  // retained publishes seen since the start
  absl::flat_hash_set<std::string> sync_seen_;     // topics in the peer's answer so far
  int64_t sync_pending_ = 0;                       // apply tasks posted, not yet run
  bool sync_answered_ = false;                     // the last chunk arrived
  uint64_t sync_generation_ = 0;
  std::string sync_from_;
  uint64_t sync_set_ = 0;
  uint64_t sync_cleared_ = 0;
};

}  // namespace shardmq::broker::session
