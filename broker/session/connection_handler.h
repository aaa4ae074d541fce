// The MQTT protocol state machine of one client connection: CONNECT, keepalive, topic aliases,
// flow control, and turning packets into session and broker operations. Used only on its
// connection's worker thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>
#include <optional>
#include <string>


#include "absl/container/flat_hash_map.h"
#include "broker/codec/decoder.h"
#include "broker/codec/packets.h"
#include "broker/net/transport.h"
#include "broker/session/message.h"
#include "broker/session/route_table.h"
#include "broker/session/session.h"
#include "cluster/router.h"

namespace shardmq::broker::session {

class WorkerCore;

// One subscription of a SUBSCRIBE packet, as applied.
struct RouteChange {
  RouteEntry entry;
  std::string full_filter;
  bool is_new = false;
  bool shared = false;
  SubscriptionOptions options;
};

class ConnectionHandler final : public net::ConnectionCallbacks,
                                public std::enable_shared_from_this<ConnectionHandler> {
 public:
  ConnectionHandler(WorkerCore& core, net::Transport& transport);
  ~ConnectionHandler() override;

  // Arms the CONNECT timeout. Call once after construction.
  void Start();

  // net::ConnectionCallbacks
  size_t OnData(std::span<const uint8_t> data, size_t* wanted) override;
  void OnClosed() override;
  void OnWritten(size_t pending_bytes) override;
  // The transport will pass no more bytes (a relayed client closed at its front-end): what was
  // given is handled now, and no hold (HoldAfterDrop) keeps it back any more, so a DISCONNECT
  // among it counts.
  void EndOfInput();

  // --- called by the session layer
  // The session for this connection's CONNECT is ready (found, moved here, or created).
  void OnSessionReady(Session& session, bool session_present);
  // The CONNECT cannot be served (e.g. directory busy for too long).
  void RejectConnect(codec::ReasonCode reason);
  // Another connection took over the session (v5: DISCONNECT 0x8E), or the broker is closing.
  void Kick(codec::ReasonCode reason);
  // The deadline set through WorkerCore::SetDeadline has passed: CONNECT timeout or keepalive.
  void OnDeadline(int64_t now_ms);

  // Sends a PUBLISH for the session. Returns false (and sends nothing) when the packet would
  // exceed the client's Maximum Packet Size.
  bool SendPublish(const Message& message, uint8_t qos, bool retain, bool dup, uint16_t packet_id,
                   const SubscriptionIds& subscription_ids);
  void SendPubrel(uint16_t packet_id);
  // Outgoing in-flight window (client's Receive Maximum, or the configured default).
  uint16_t send_window() const { return send_window_; }
  // True when the socket's write buffer is so full that QoS 0 messages should be dropped.
  bool congested() const;
  // A QoS 0 delivery was dropped because of congested(): other workers are told to drop QoS 0
  // deliveries to this session at their end until the backlog is written (WorkerCore::
  // SetCongested).
  void MarkCongested();
  codec::ProtocolVersion version() const { return version_; }

  // --- cluster mode: sessions live on S = leader(partition(client id)). A CONNECT on another
  // node makes this connection a relay (state kRelaying): the client's bytes go to S and S's
  // bytes come back (Router::RelayOpen); S runs the protocol.
  // As S: this handler serves a connection relayed from a front-end; the client id is the one
  // the front-end determined (`assigned`: generated there).
  void SetRelayedIdentity(std::string client_id, bool assigned, const std::string& origin);
  // As front-end: bytes (or the end, or a fencing refusal) from the session's node, and how
  // many more of the client's bytes S has handled (`consumed`, -1: not said).
  void OnRelayReply(const std::string& from, std::string_view data, bool close, bool not_leader,
                    int64_t consumed = -1);
  // As front-end: the session's node is gone; the client reconnects.
  void OnRelayNodeGone();
  // The node this connection is relayed to ("" if it is not relayed).
  const std::string& relay_node() const;
  uint64_t id() const { return transport_ ? transport_->id() : 0; }
  const std::string& client_id() const { return client_id_; }

 private:
  friend class WorkerCore;  // slot_
  enum class State { kAwaitConnect, kConnecting, kConnected, kRelaying, kClosing, kClosed };

  void HandlePacket(codec::Packet& packet);
  void HandleConnect(codec::Connect& connect);
  void HandlePublish(codec::Publish& publish);
  void HandlePubResponse(codec::PubResponse& response);
  void HandleSubscribe(codec::Subscribe& subscribe);
  // The subscription itself, once any cluster routes are registered: `routed` got an AddRoute
  // each (kept by the subscription it creates, undone otherwise); `failed` could not be
  // registered and are refused.
  void ApplySubscribe(codec::Subscribe& subscribe, const std::vector<std::string>& routed,
                      const std::vector<std::string>& failed);
  void HandleUnsubscribe(codec::Unsubscribe& unsubscribe);
  void HandleDisconnect(codec::Disconnect& disconnect);
  // Relaying (as front-end).
  void StartRelay(const cluster::Router::Placement& placement, std::string_view connect_bytes);
  void SendRelayOpen(const cluster::Router::Placement& placement);
  void RelayUp(std::string_view data);  // client bytes: held until S accepted, then sent
  void SendUp(std::string_view data);
  void UpdateRelayReadHold();  // holds or resumes reading the client's socket
  // QoS 0 overload protection (cluster::Router::WhenRoomAfterDrop): one of the client's QoS 0
  // messages was dropped at a full link to another node, so the client is not read until that
  // link has room, or for kMaxDropHold at most (a link that stays full, e.g. to a paused node,
  // must not stop the client's keepalive). What was read already waits in replay_.
  static constexpr std::chrono::milliseconds kMaxDropHold{100};
  void HoldAfterDrop();
  void ReleaseDropHold(uint64_t generation);
  // Places the session again after kRelayRetryDelay; false once kMaxRelayTries are used up.
  bool ArmRelayRetry();
  void RetryRelay();
  // The session turned out to be local after all: handle the held bytes here.
  void ServeLocally();
  size_t Process(std::span<const uint8_t> data, size_t* wanted);  // OnData without replay_
  void CountReceived(size_t n);  // bytes_received, less counted_ahead_
  // A link callback that, if the item failed, runs `then` on this connection's worker (when
  // the connection still exists).
  cluster::Router::Done OnLinkFailure(std::function<void(ConnectionHandler&)> then);
  void RelayWritten(size_t pending_bytes);
  void DeliverRetained(const std::vector<RouteChange>& changes);
  // Protocol violation or malformed packet: v5 DISCONNECT with `reason`, then close; the will
  // is published.
  void Fail(codec::ReasonCode reason, const char* what);
  // Closes the connection; `will_due` decides whether the session publishes its will.
  void CloseConnection(bool will_due);
  void SendPacket(const codec::Packet& packet);
  void SendConnackError(codec::ReasonCode reason);
  void ArmKeepalive();
  std::string Describe() const;

  WorkerCore& core_;
  net::Transport* transport_;
  State state_ = State::kAwaitConnect;
  codec::ProtocolVersion version_ = codec::ProtocolVersion::kV311;
  bool version_known_ = false;
  codec::DecoderLimits limits_;
  std::string client_id_;
  Session* session_ = nullptr;
  // Packets received while the session is being prepared (a vector: no allocation when empty,
  // unlike std::deque, which matters with many idle connections).
  std::vector<codec::Packet> pending_;
  std::unique_ptr<codec::Connect> connect_;  // the CONNECT, kept until the session is ready
  bool assigned_client_id_ = false;
  uint32_t connect_expiry_s_ = 0;   // as requested in CONNECT
  uint32_t session_expiry_s_ = 0;   // after the configured cap
  bool expiry_capped_ = false;
  std::optional<uint16_t> server_keep_alive_;

  // keepalive
  uint32_t keepalive_ms_ = 0;
  int64_t last_rx_ms_ = 0;
  bool congested_marked_ = false;
  bool relayed_in_ = false;       // as S: relayed from a front-end, the client id is set
  bool relayed_assigned_ = false;
  size_t slot_ = SIZE_MAX;  // index in WorkerCore's connection registry

  // flow control and limits announced by the client (v5)
  uint16_t send_window_ = 0;
  uint32_t client_max_packet_ = 0;  // 0 = no limit
  uint16_t client_alias_max_ = 0;
  bool request_problem_info_ = true;
  // topic aliases
  // MQTT 5 topic aliases, allocated at first use (most connections never use them).
  struct TopicAliases {
    absl::flat_hash_map<uint16_t, std::string> in;
    absl::flat_hash_map<std::string, uint16_t> out;
  };
  TopicAliases& aliases() {
    if (!aliases_) aliases_ = std::make_unique<TopicAliases>();
    return *aliases_;
  }
  std::unique_ptr<TopicAliases> aliases_;
  // As front-end, while relaying (allocated only then).
  struct Relay {
    std::string node;
    uint64_t conn = 0;
    bool confirmed = false;     // the first bytes came back from S: the open was accepted
    bool closed_by_node = false;
    std::string opened_with;    // the RelayOpen's bytes, kept until confirmed (for a retry)
    std::string held;           // client bytes after the open, held until confirmed
    int tries = 0;              // opens refused (fencing), or places unavailable
    bool downstream_congested = false;  // S was told the client's socket is congested
    // Upstream flow control (UpdateRelayReadHold).
    bool credit = false;        // S reports the bytes it handled (RelayData.consumed)
    size_t unconsumed_up = 0;   // client bytes sent to S that S has not reported handled
    bool read_held = false;     // the client's socket is not read meanwhile
    std::unique_ptr<boost::asio::steady_timer> retry;
  };
  std::unique_ptr<Relay> relay_;
  std::string replay_;          // client bytes to handle before the transport's (ServeLocally,
                                // HoldAfterDrop)
  bool drop_held_ = false;      // HoldAfterDrop
  bool input_ended_ = false;    // EndOfInput: no more holds
  uint64_t drop_hold_generation_ = 0;
  std::unique_ptr<boost::asio::steady_timer> drop_hold_timer_;
  size_t counted_ahead_ = 0;    // bytes of replay_ already counted in bytes_received
  uint16_t next_alias_out_ = 1;
};

}  // namespace shardmq::broker::session
