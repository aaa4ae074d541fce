// One MQTT session: subscriptions, outgoing queue and in-flight window, incoming QoS 2 state,
// will and expiry. Lives on one worker at a time (it moves with its client, see broker_core.h)
// and is used only on that worker's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/steady_timer.hpp>

#include "absl/container/flat_hash_map.h"
#include "broker/codec/packets.h"
#include "broker/session/lazy_deque.h"
#include "broker/session/message.h"
#include "storage/storage.h"

namespace shardmq::broker::session {

class ConnectionHandler;
class WorkerCore;

inline constexpr uint32_t kSessionNeverExpires = 0xFFFFFFFF;

struct SubscriptionOptions {
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
  uint32_t subscription_id = 0;
};

// A full filter as the cluster routes it: (filter without $share prefix, group or "").
std::pair<std::string, std::string> RouteOf(const std::string& full);
// A stored subscription's options, and the stored form of a subscription.
SubscriptionOptions OptionsOf(const records::Subscription& record);
records::Subscription RecordOf(const std::string& filter, const SubscriptionOptions& options);

struct WillSpec {
  MessagePtr message;            // expiry_at_ms unset: the expiry starts when it is published
  uint32_t message_expiry_s = 0; // 0 = none
  uint32_t delay_s = 0;
};

class Session {
 public:
  Session(WorkerCore& core, std::string client_id, uint64_t gen);
  ~Session();

  const std::string& client_id() const { return client_id_; }
  uint64_t gen() const { return gen_; }
  uint64_t NextLocationVersion() { return ++location_version_; }

  // Moves the session to another worker: timers are dropped here and re-armed there.
  void DetachFromWorker();
  void AttachToWorker(WorkerCore& core);
  WorkerCore& core() { return *core_; }

  // --- connection
  ConnectionHandler* connection() const { return connection_; }
  bool online() const { return connection_ != nullptr; }
  // Binds a new connection: cancels will and expiry timers, resends in-flight messages (DUP)
  // and pumps the queue.
  void Attach(ConnectionHandler* connection);
  // The connection went away. `will_due`: abnormal loss or DISCONNECT 0x04 (the will is
  // published now or after its delay); otherwise the will is discarded. A session with expiry 0
  // ends here: the Session object is destroyed before Detach returns.
  void Detach(bool will_due);
  // The node is shutting down: forget the connection, change nothing stored (after a restart
  // the session counts as disconnected at start-up, and its will as due from then).
  void DetachForShutdown() { connection_ = nullptr; }

  // --- recovery (before the workers run)
  void Restore(const storage::StoredSession& stored,
               const absl::flat_hash_map<uint64_t, std::shared_ptr<Message>>& bodies,
               int64_t now_ms);
  // Arms the will-delay and expiry timers of an offline session, counted from its disconnect
  // (a will due now is published at once only if `may_publish_now`; during recovery it waits
  // for the loop to start, when every session is back).
  void ArmOfflineTimers(int64_t disconnected_at_ms, int64_t now_ms, bool may_publish_now);
  // Deletes everything stored for the session and releases its stored message bodies (the
  // session is ending).
  void DropStored();

  // --- settings from CONNECT
  codec::ProtocolVersion version = codec::ProtocolVersion::kV311;
  uint32_t expiry_s = 0;  // kSessionNeverExpires = never
  std::optional<WillSpec> will;
  bool persistent() const { return expiry_s != 0; }

  // --- subscriptions (full filter incl. $share prefix -> options)
  std::map<std::string, SubscriptionOptions> subscriptions;

  // --- outgoing
  // Queues or sends a delivery. Drops (and counts) it when the queue is full, or QoS 0 while
  // offline.
  void Enqueue(Delivery&& delivery);
  // Sends queued messages while the in-flight window has room.
  void Pump();
  // Drops queued (not in-flight) messages whose Message Expiry has passed. Returns how many.
  size_t SweepExpired(int64_t now_ms);
  void OnPuback(uint16_t packet_id);
  // Returns false if the packet id is unknown.
  bool OnPubrec(uint16_t packet_id, codec::ReasonCode reason);
  void OnPubcomp(uint16_t packet_id);
  // Hold() makes Enqueue keep live deliveries aside until the matching Release() (a SUBACK is
  // pending); nesting is counted. Detach releases everything.
  void Hold() { ++hold_depth_; }
  void Release();
  size_t queued() const { return queue_.size(); }
  size_t inflight() const { return inflight_.size(); }

  // --- incoming QoS 2 packet ids awaiting PUBREL (use Add/RemoveIncomingQos2 to change)
  std::set<uint16_t> incoming_qos2;

  // --- move protocol state
  bool moving_in = false;            // arrived from another worker; direct deliveries held
  std::vector<Delivery> held;        // held until the move completes

  // --- partition hand-off (BrokerCore::Handoff*, proto/cluster.proto HandoffOffer)
  // Old leader: the session is being handed off; it is not served and its timers are stopped
  // (deliveries still queue).
  bool frozen() const { return frozen_; }
  void Freeze();
  // The hand-off was cancelled (or this copy now serves): timers run again, counted from the
  // disconnect.
  void Thaw();
  // New leader: a copy being filled in; deliveries wait in `import_held` until the state
  // arrives. `imported`: filled in, its timers not started until the partition flips.
  bool importing = false;
  bool imported = false;
  std::vector<Delivery> import_held;
  // Client id, settings and subscriptions (a hand-off offer).
  void ExportHeader(records::SessionTransfer* out) const;
  // Everything: the header, will, queued and in-flight entries with their messages, incoming
  // QoS 2 ids.
  void Export(records::SessionTransfer* out) const;
  int64_t disconnected_at_ms() const { return disconnected_at_ms_; }

  // Publishes the will now (if any) and forgets it.
  void PublishWill();
  // Sets (or clears) the will; stored when the session is persistent.
  void SetWill(std::optional<WillSpec> will);
  // Writes the session settings to storage if persistent (the first time also every
  // subscription and the will).
  void Persist();
  // Stores a subscription change (if persistent).
  void StoreSubscription(const std::string& filter, const SubscriptionOptions& options);
  void StoreUnsubscription(const std::string& filter);
  // Incoming QoS 2 packet ids awaiting PUBREL, stored when persistent.
  void AddIncomingQos2(uint16_t packet_id);
  bool RemoveIncomingQos2(uint16_t packet_id);

 private:
  // One per queued or in-flight message of every session: kept to 40 bytes (the small fields
  // sit in the tail padding of subscription_ids).
  struct Outgoing {
    uint64_t seq = 0;
    MessagePtr message;
    [[no_unique_address]] SubscriptionIds subscription_ids;
    uint16_t packet_id = 0;
    uint8_t qos : 2 = 0;
    bool durable : 1 = false;     // backed by a stored entry (client id, message->id)
    bool superseded : 1 = false;  // telemetry policy: replaced by a newer message on its topic
    bool retain : 1 = false;
    bool released : 1 = false;    // QoS 2: PUBREC received, PUBREL sent
  };
  static_assert(sizeof(Outgoing) <= 40, "Outgoing grew: it is the memory of every queued message");
  uint16_t NextPacketId();
  void SendDeferred(uint64_t seq, std::weak_ptr<ConnectionHandler> connection);
  void CancelTimers();
  void StoreInflight(const Outgoing& out);
  void Forget(const Outgoing& out);  // forgets the stored entry, if any
  records::QueueEntry EntryRecord(const Outgoing& out) const;
  void StoreWill();

  WorkerCore* core_;
  const std::string client_id_;
  const uint64_t gen_;
  uint64_t location_version_ = 0;
  ConnectionHandler* connection_ = nullptr;
  LazyDeque<Outgoing> queue_;
  size_t queued_bytes_ = 0;
  // In-flight messages in the order they were first sent (resent in that order).
  std::map<uint64_t, Outgoing> inflight_;
  absl::flat_hash_map<uint16_t, uint64_t> inflight_by_id_;
  uint64_t next_seq_ = 1;
  int hold_depth_ = 0;
  bool frozen_ = false;
  int64_t disconnected_at_ms_ = 0;  // when the client last disconnected (wall clock ms)
  bool stored_ = false;       // a session record exists in storage
  bool will_stored_ = false;  // a will record exists in storage
  // Telemetry policy: topic -> seq of its queued (unsent) entry.
  absl::flat_hash_map<std::string, uint64_t> latest_by_topic_;
  std::vector<Delivery> held_for_suback_;
  uint16_t last_packet_id_ = 0;
  std::unique_ptr<boost::asio::steady_timer> will_timer_;
  std::unique_ptr<boost::asio::steady_timer> expiry_timer_;
};

}  // namespace shardmq::broker::session
