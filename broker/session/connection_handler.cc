#include "broker/session/connection_handler.h"

#include <algorithm>
#include <random>

#include "broker/codec/encoder.h"
#include "broker/session/broker_core.h"
#include "broker/session/protocol_errors.h"
#include "broker/session/session.h"
#include "common/log.h"
#include "common/topic.h"
#include "common/utf8.h"

namespace shardmq::broker::session {

using codec::PacketType;
using codec::ProtocolVersion;
using codec::ReasonCode;

namespace {

// Outgoing packets are encoded into one buffer per worker thread, then copied into the
// transport's write buffer: a per-connection buffer would keep the capacity of the largest
// packet ever sent on every connection.
std::string& EncodeBuffer() {
  thread_local std::string buffer;
  if (buffer.capacity() > (1u << 20)) std::string().swap(buffer);
  buffer.clear();
  return buffer;
}

constexpr size_t kCongestedBytes = 4 << 20;

std::string GenerateClientId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string id = "shardmq-";
  uint64_t v = rng();
  for (int i = 0; i < 16; ++i) id.push_back(kHex[(v >> (i * 4)) & 0xF]);
  return id;
}

// Pass-through properties of a PUBLISH or will (MQTT 5 s3.3.2.3): everything else is hop-by-hop.
codec::Properties PassThrough(codec::Properties&& in) {
  codec::Properties out;
  out.payload_format_indicator = in.payload_format_indicator;
  out.content_type = std::move(in.content_type);
  out.response_topic = std::move(in.response_topic);
  out.correlation_data = std::move(in.correlation_data);
  out.user_properties = std::move(in.user_properties);
  return out;
}

bool IsSysTopic(std::string_view topic) {
  return topic == "$SYS" || topic.substr(0, 5) == "$SYS/";
}

}  // namespace

ConnectionHandler::ConnectionHandler(WorkerCore& core, net::Transport& transport)
    : core_(core), transport_(&transport) {
  limits_.max_packet_size = core_.broker().mqtt().max_packet_size();
  WorkerStats& st = core_.stats();
  st.Add(st.connections_accepted);
  st.connections_open.fetch_add(1, std::memory_order_relaxed);
  core_.RegisterConnection(this);
}

ConnectionHandler::~ConnectionHandler() = default;

void ConnectionHandler::Start() {
  core_.SetDeadline(this, core_.broker().clock().SteadyMs() +
                              int64_t{core_.broker().mqtt().connect_timeout()} * 1000);
}

std::string ConnectionHandler::Describe() const {
  return "[c:" + std::to_string(transport_ ? transport_->id() : 0) + " cid:" + client_id_ + "] ";
}

namespace {
// The raw bytes of the CONNECT being handled (HandleConnect runs inside OnData): a front-end
// that relays the connection passes them on as they came.
thread_local std::string_view current_connect_bytes;

std::string_view AsChars(std::span<const uint8_t> data) {
  return {reinterpret_cast<const char*>(data.data()), data.size()};
}
}  // namespace

size_t ConnectionHandler::OnData(std::span<const uint8_t> data, size_t* wanted) {
  if (replay_.empty() && !drop_held_) {
    const size_t used = Process(data, wanted);
    if (!drop_held_ || used >= data.size()) return used;
    // Held after a dropped QoS 0 message (HoldAfterDrop): the rest waits here.
    replay_.assign(AsChars(data.subspan(used)));
    return data.size();
  }
  // Bytes given back by a CONNECT that waited for its session's placement (ServeLocally), or
  // read before a hold (HoldAfterDrop), come first; an incomplete packet at the end stays here
  // for the next call.
  auto self = shared_from_this();
  replay_.append(AsChars(data));
  if (drop_held_) return data.size();
  std::string buf = std::move(replay_);
  replay_.clear();
  const size_t used =
      Process(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()), buf.size()),
              wanted);
  if (used < buf.size()) replay_.assign(buf, used);
  return data.size();
}

void ConnectionHandler::HoldAfterDrop() {
  cluster::Router* router = core_.broker().router();
  if (drop_held_ || input_ended_ || transport_ == nullptr || router == nullptr) return;
  drop_held_ = true;
  const uint64_t generation = ++drop_hold_generation_;
  core_.stats().Add(core_.stats().qos0_publisher_holds);
  transport_->HoldReading(true);
  std::weak_ptr<ConnectionHandler> weak = weak_from_this();
  if (drop_hold_timer_ == nullptr) {
    drop_hold_timer_ = std::make_unique<boost::asio::steady_timer>(core_.worker().io());
  }
  drop_hold_timer_->expires_after(kMaxDropHold);
  drop_hold_timer_->async_wait([weak, generation](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto h = weak.lock()) h->ReleaseDropHold(generation);
  });
  router->WhenRoomAfterDrop([weak, core = &core_, generation] {
    core->worker().Post([weak, generation] {
      if (auto h = weak.lock()) h->ReleaseDropHold(generation);
    });
  });
}

void ConnectionHandler::ReleaseDropHold(uint64_t generation) {
  if (!drop_held_ || generation != drop_hold_generation_) return;
  auto self = shared_from_this();
  drop_held_ = false;
  drop_hold_timer_->cancel();
  if (!replay_.empty()) {  // what was read before the hold
    size_t wanted = 0;
    OnData({}, &wanted);
    if (drop_held_) return;  // held again
  }
  if (transport_ != nullptr && (relay_ == nullptr || !relay_->read_held)) {
    transport_->HoldReading(false);
  }
}

void ConnectionHandler::EndOfInput() {
  input_ended_ = true;
  if (drop_held_) ReleaseDropHold(drop_hold_generation_);
}

void ConnectionHandler::CountReceived(size_t n) {
  const size_t skip = std::min(n, counted_ahead_);
  counted_ahead_ -= skip;
  if (n > skip) core_.stats().Add(core_.stats().bytes_received, n - skip);
}

size_t ConnectionHandler::Process(std::span<const uint8_t> data, size_t* wanted) {
  auto self = shared_from_this();  // packet handling may close and release us
  size_t off = 0;
  *wanted = 0;
  if (state_ == State::kRelaying) {
    RelayUp(AsChars(data));
    return data.size();
  }
  cluster::Router* const router = core_.broker().router();
  while (off < data.size() && !drop_held_ &&
         (state_ == State::kAwaitConnect || state_ == State::kConnecting ||
          state_ == State::kConnected)) {
    std::optional<ProtocolVersion> v;
    if (version_known_) v = version_;
    codec::DecodeResult r = codec::Decode(data.subspan(off), v, limits_);
    if (r.status == codec::DecodeResult::Status::kNeedMore) {
      *wanted = r.needed;
      break;
    }
    if (r.status == codec::DecodeResult::Status::kError) {
      WorkerStats& st = core_.stats();
      st.Add(st.protocol_errors);
      if (state_ == State::kAwaitConnect) {
        if (r.connect_level) {
          version_ = *r.connect_level == 5 ? ProtocolVersion::kV5 : ProtocolVersion::kV311;
          version_known_ = true;
        }
        SHARDMQ_LOG(DEBUG) << Describe() << "bad CONNECT: 0x" << std::hex
                           << static_cast<int>(r.error);
        SendConnackError(r.error);
      } else {
        Fail(r.error, "decode");
      }
      return data.size();
    }
    off += r.consumed;
    CountReceived(r.consumed);
    last_rx_ms_ = core_.broker().clock().SteadyMs();
    if (state_ == State::kConnecting) {
      pending_.push_back(std::move(r.packet));
    } else if (state_ == State::kAwaitConnect) {
      current_connect_bytes = AsChars(data.subspan(off - r.consumed, r.consumed));
      HandlePacket(r.packet);
      current_connect_bytes = {};
    } else if (router == nullptr) {
      HandlePacket(r.packet);
    } else {
      const uint64_t drops = router->Qos0DropsOnThisThread();
      HandlePacket(r.packet);
      if (router->Qos0DropsOnThisThread() != drops && state_ == State::kConnected) {
        HoldAfterDrop();
      }
    }
  }
  if (state_ == State::kRelaying) {
    RelayUp(AsChars(data.subspan(off)));  // what followed the CONNECT
    return data.size();
  }
  if (state_ == State::kClosing || state_ == State::kClosed) return data.size();
  return off;
}

void ConnectionHandler::HandlePacket(codec::Packet& packet) {
  if (state_ == State::kAwaitConnect) {
    if (auto* c = std::get_if<codec::Connect>(&packet)) {
      HandleConnect(*c);
    } else {
      CloseConnection(false);  // MQTT s3.1: the first packet must be CONNECT
    }
    return;
  }
  std::visit(
      [this](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, codec::Publish>) {
          HandlePublish(p);
        } else if constexpr (std::is_same_v<T, codec::PubResponse>) {
          HandlePubResponse(p);
        } else if constexpr (std::is_same_v<T, codec::Subscribe>) {
          HandleSubscribe(p);
        } else if constexpr (std::is_same_v<T, codec::Unsubscribe>) {
          HandleUnsubscribe(p);
        } else if constexpr (std::is_same_v<T, codec::Pingreq>) {
          SendPacket(codec::Pingresp{});
        } else if constexpr (std::is_same_v<T, codec::Disconnect>) {
          HandleDisconnect(p);
        } else if constexpr (std::is_same_v<T, codec::Connect>) {
          Fail(ReasonCode::kProtocolError, "second CONNECT");  // MQTT 5 s3.1.0-2
        } else if constexpr (std::is_same_v<T, codec::Auth>) {
          // No authentication method was agreed at CONNECT (MQTT 5 s4.12).
          Fail(ReasonCode::kProtocolError, "AUTH without authentication method");
        } else {
          Fail(ReasonCode::kProtocolError, "packet a client may not send");
        }
      },
      packet);
}

void ConnectionHandler::HandleConnect(codec::Connect& c) {
  const config::MqttConfig& cfg = core_.broker().mqtt();
  version_ = c.version;
  version_known_ = true;
  const bool v5 = version_ == ProtocolVersion::kV5;

  const bool generated = c.client_id.empty();
  if (relayed_in_) {
    // Relayed from a front-end: client_id_ is the one it determined (and checked).
    assigned_client_id_ = relayed_assigned_ && v5;
  } else if (c.client_id.empty()) {
    if (v5) {
      client_id_ = GenerateClientId();
      assigned_client_id_ = true;
    } else if (!c.clean_start || version_ == ProtocolVersion::kV31) {
      // MQTT 3.1.1 s3.1.3-8: an empty id needs Clean Session 1; 3.1 requires 1..23 characters.
      SendConnackError(ReasonCode::kClientIdentifierNotValid);
      return;
    } else {
      client_id_ = GenerateClientId();
    }
  } else {
    client_id_ = c.client_id;
  }
  if (!relayed_in_ && core_.broker().router() != nullptr) {
    // Cluster mode: the session lives on S = leader(partition(client id)).
    auto place = core_.broker().router()->PlaceSession(client_id_);
    if (!place.ok() && place.status().code() == absl::StatusCode::kAborted) {
      // The session's partition is being handed off from this node: wait for the flip (and
      // then relay to the new leader), as a relayed connect does, rather than turn the client
      // away.
      SHARDMQ_LOG(DEBUG) << Describe() << "CONNECT waits: " << place.status().message();
      relayed_assigned_ = generated;
      relay_ = std::make_unique<Relay>();
      relay_->opened_with.assign(current_connect_bytes);
      state_ = State::kRelaying;
      if (!ArmRelayRetry()) SendConnackError(ReasonCode::kServerUnavailable);
      return;
    }
    if (!place.ok()) {
      SHARDMQ_LOG(WARNING) << Describe() << "CONNECT refused: " << place.status().message();
      SendConnackError(ReasonCode::kServerUnavailable);
      return;
    }
    if (!place->local) {
      relayed_assigned_ = generated;
      StartRelay(*place, current_connect_bytes);
      return;
    }
  }
  if (v5 && c.properties.authentication_method) {
    SendConnackError(ReasonCode::kBadAuthenticationMethod);
    return;
  }
  if (c.will) {
    if (!topic::IsValidTopicName(c.will->topic)) {
      SendConnackError(ReasonCode::kTopicNameInvalid);
      return;
    }
    if (v5 && c.will->properties.payload_format_indicator.value_or(0) == 1 &&
        !utf8::IsValidMqttString(c.will->payload)) {
      SendConnackError(ReasonCode::kPayloadFormatInvalid);
      return;
    }
  }

  uint32_t ka = c.keep_alive;
  if (ka > cfg.max_keepalive() || (ka == 0 && !cfg.allow_zero_keepalive())) {
    ka = cfg.max_keepalive();
    if (v5) server_keep_alive_ = static_cast<uint16_t>(ka);
  }
  keepalive_ms_ = ka * 1000;

  if (v5) {
    send_window_ = c.properties.receive_maximum.value_or(65535);
    client_max_packet_ = c.properties.maximum_packet_size.value_or(0);
    client_alias_max_ = c.properties.topic_alias_maximum.value_or(0);
    request_problem_info_ = c.properties.request_problem_information.value_or(1) == 1;
  } else {
    send_window_ = static_cast<uint16_t>(cfg.max_inflight_out());
  }

  uint32_t expiry;
  if (v5) {
    expiry = c.properties.session_expiry_interval.value_or(0);
  } else {
    expiry = c.clean_start ? 0
             : cfg.v3_session_expiry() == 0 ? kSessionNeverExpires
                                            : cfg.v3_session_expiry();
  }
  connect_expiry_s_ = expiry;
  if (cfg.max_session_expiry() != 0 && expiry > cfg.max_session_expiry()) {
    expiry = cfg.max_session_expiry();
    expiry_capped_ = true;
  }
  session_expiry_s_ = expiry;

  state_ = State::kConnecting;
  bool clean = c.clean_start;
  connect_ = std::make_unique<codec::Connect>(std::move(c));
  core_.Connect(shared_from_this(), SessionRequest{client_id_, clean});
}

void ConnectionHandler::OnSessionReady(Session& session, bool present) {
  if (state_ != State::kConnecting) {
    // The connection went away while the session was being prepared.
    if (!present) session.expiry_s = session_expiry_s_;
    session.Detach(false);
    return;
  }
  const config::MqttConfig& cfg = core_.broker().mqtt();
  const bool v5 = version_ == ProtocolVersion::kV5;
  session_ = &session;
  session.version = version_;
  session.expiry_s = session_expiry_s_;

  codec::Connack ack;
  ack.session_present = present;
  ack.reason_code = 0;
  if (v5) {
    codec::Properties& p = ack.properties;
    if (cfg.receive_maximum() != 65535) p.receive_maximum = cfg.receive_maximum();
    p.topic_alias_maximum = static_cast<uint16_t>(cfg.topic_alias_maximum());
    p.maximum_packet_size = cfg.max_packet_size();
    p.retain_available = 1;
    p.wildcard_subscription_available = 1;
    p.subscription_identifier_available = 1;
    p.shared_subscription_available = 1;
    if (assigned_client_id_) p.assigned_client_identifier = client_id_;
    if (server_keep_alive_) p.server_keep_alive = *server_keep_alive_;
    if (expiry_capped_) p.session_expiry_interval = session_expiry_s_;
  }
  SendPacket(ack);
  state_ = State::kConnected;
  core_.stats().clients_connected.fetch_add(1, std::memory_order_relaxed);

  session.Attach(this);  // resends in-flight messages, then pumps the queue
  session.Persist();
  if (connect_ && connect_->will) {
    codec::Will& w = *connect_->will;
    auto m = std::make_shared<Message>();
    m->topic = std::move(w.topic);
    m->payload = std::move(w.payload);
    m->qos = w.qos;
    m->retain = w.retain;
    uint32_t expiry = w.properties.message_expiry_interval.value_or(0);
    uint32_t delay = w.properties.will_delay_interval.value_or(0);
    m->properties = PassThrough(std::move(w.properties));
    m->publisher = client_id_;
    session.SetWill(WillSpec{std::move(m), expiry, delay});
  }
  connect_.reset();
  core_.AnnounceLocation(session);
  ArmKeepalive();
  std::vector<codec::Packet> pending = std::move(pending_);
  pending_.clear();
  for (codec::Packet& p : pending) {
    if (state_ != State::kConnected) break;
    HandlePacket(p);
  }
}

void ConnectionHandler::RejectConnect(ReasonCode reason) { SendConnackError(reason); }

void ConnectionHandler::SendConnackError(ReasonCode reason) {
  if (version_known_ && version_ == ProtocolVersion::kV5) {
    if (IsConnackReason(reason)) {
      codec::Connack ack;
      ack.reason_code = static_cast<uint8_t>(reason);
      SendPacket(ack);
    }
  } else if (auto code = V3ConnackCode(reason)) {
    // A 3.1.1-format CONNACK also answers unknown protocol levels (MQTT 3.1.1 s3.1.2.2).
    ProtocolVersion saved = version_;
    version_ = ProtocolVersion::kV311;
    codec::Connack ack;
    ack.reason_code = *code;
    SendPacket(ack);
    version_ = saved;
  }
  CloseConnection(false);
}

void ConnectionHandler::Kick(ReasonCode reason) {
  if (state_ == State::kConnected && version_ == ProtocolVersion::kV5) {
    codec::Disconnect d;
    d.reason = reason;
    SendPacket(d);
  }
  if (reason == ReasonCode::kServerShuttingDown) {
    // The node stops: the session stays as stored; after a restart the client counts as
    // disconnected from then (and its will as due from then).
    if (session_ != nullptr) {
      session_->DetachForShutdown();
      session_ = nullptr;
      core_.stats().clients_connected.fetch_sub(1, std::memory_order_relaxed);
    }
    CloseConnection(false);
    return;
  }
  // On takeover the old connection's will is due (MQTT 5 s3.1.4-3); its delay, if any, is then
  // cancelled by the new connection.
  CloseConnection(reason == ReasonCode::kSessionTakenOver);
}

void ConnectionHandler::Fail(ReasonCode reason, const char* what) {
  WorkerStats& st = core_.stats();
  st.Add(st.protocol_errors);
  SHARDMQ_LOG(DEBUG) << Describe() << "protocol error (" << what << "): 0x" << std::hex
                     << static_cast<int>(reason);
  if (state_ == State::kConnected && version_ == ProtocolVersion::kV5) {
    codec::Disconnect d;
    d.reason = reason;
    SendPacket(d);
  }
  CloseConnection(true);
}

void ConnectionHandler::CloseConnection(bool will_due) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  auto self = shared_from_this();
  state_ = State::kClosing;
  if (congested_marked_) {
    congested_marked_ = false;
    core_.SetCongested(client_id_, false);
  }
  if (session_ != nullptr) {
    Session* s = session_;
    session_ = nullptr;
    core_.stats().clients_connected.fetch_sub(1, std::memory_order_relaxed);
    s->Detach(will_due);  // may destroy the session
  }
  if (transport_ != nullptr) transport_->Close();
}

void ConnectionHandler::OnClosed() {
  auto self = shared_from_this();
  if (relay_ != nullptr) {
    if (!relay_->closed_by_node && relay_->conn != 0 && core_.broker().router() != nullptr) {
      core_.broker().router()->RelaySend(relay_->node, relay_->conn, /*upstream=*/true, {},
                                         /*close=*/true, nullptr);
    }
    if (relay_->conn != 0) core_.UnregisterRelay(relay_->conn);
    relay_.reset();
  }
  if (state_ != State::kClosing && state_ != State::kClosed) {
    transport_ = nullptr;    // already closed underneath us
    CloseConnection(true);  // network loss without DISCONNECT: the will is due
  }
  state_ = State::kClosed;
  transport_ = nullptr;
  core_.stats().connections_open.fetch_sub(1, std::memory_order_relaxed);
  core_.UnregisterConnection(this);
}

void ConnectionHandler::SendPacket(const codec::Packet& packet) {
  if (transport_ == nullptr) return;
  std::string& out = EncodeBuffer();
  codec::Encode(packet, version_, &out);
  core_.stats().Add(core_.stats().bytes_sent, out.size());
  transport_->Send(out);
}

bool ConnectionHandler::congested() const {
  return transport_ == nullptr || transport_->PendingWriteBytes() > kCongestedBytes;
}

void ConnectionHandler::MarkCongested() {
  if (congested_marked_ || client_id_.empty()) return;
  congested_marked_ = true;
  core_.SetCongested(client_id_, true);
}

void ConnectionHandler::OnWritten(size_t pending_bytes) {
  if (relay_ != nullptr) {
    RelayWritten(pending_bytes);
    return;
  }
  // Hysteresis: cleared once a quarter of the threshold is left, not at every write.
  if (congested_marked_ && pending_bytes < kCongestedBytes / 4) {
    congested_marked_ = false;
    core_.SetCongested(client_id_, false);
  }
}

bool ConnectionHandler::SendPublish(const Message& m, uint8_t qos, bool retain, bool dup,
                                    uint16_t packet_id,
                                    const SubscriptionIds& subscription_ids) {
  if (transport_ == nullptr) return true;  // closing: stays in flight for the next connection
  codec::Publish h;
  h.dup = dup;
  h.qos = qos;
  h.retain = retain;
  h.packet_id = packet_id;
  bool new_alias = false;
  if (version_ == ProtocolVersion::kV5) {
    h.properties = m.properties;
    if (m.expiry_at_ms != 0) {
      int64_t left_ms = m.expiry_at_ms - core_.broker().clock().NowMs();
      // MQTT 5 s3.3.2.3.3: send the remaining lifetime.
      h.properties.message_expiry_interval =
          static_cast<uint32_t>(std::max<int64_t>(1, (left_ms + 999) / 1000));
    }
    h.properties.subscription_identifiers.assign(subscription_ids.begin(),
                                                 subscription_ids.end());
    if (client_alias_max_ > 0) {
      auto it = aliases().out.find(m.topic);
      if (it != aliases().out.end()) {
        h.properties.topic_alias = it->second;  // topic left empty
      } else {
        h.topic = m.topic;
        if (next_alias_out_ <= client_alias_max_) {
          h.properties.topic_alias = next_alias_out_;
          new_alias = true;
        }
      }
    } else {
      h.topic = m.topic;
    }
  } else {
    h.topic = m.topic;
  }
  size_t size = codec::PublishSize(h, m.payload.size(), version_);
  if (client_max_packet_ != 0 && size > client_max_packet_) return false;  // MQTT 5 s3.1.2.11.4
  if (new_alias) aliases().out[m.topic] = next_alias_out_++;
  std::string& out = EncodeBuffer();
  codec::EncodePublish(h, m.payload, version_, &out);
  WorkerStats& st = core_.stats();
  st.Add(st.messages_sent);
  st.Add(st.bytes_sent, out.size());
  transport_->Send(out);
  return true;
}

void ConnectionHandler::SendPubrel(uint16_t packet_id) {
  codec::PubResponse r;
  r.type = PacketType::kPubrel;
  r.packet_id = packet_id;
  SendPacket(r);
}

void ConnectionHandler::HandlePublish(codec::Publish& p) {
  const config::MqttConfig& cfg = core_.broker().mqtt();
  const bool v5 = version_ == ProtocolVersion::kV5;
  WorkerStats& st = core_.stats();
  st.Add(st.messages_received);

  if (v5 && !p.properties.subscription_identifiers.empty()) {
    Fail(ReasonCode::kProtocolError, "Subscription Identifier from a client");  // s3.3.4-6
    return;
  }
  if (v5 && p.properties.topic_alias) {
    uint16_t alias = *p.properties.topic_alias;
    if (alias == 0 || alias > cfg.topic_alias_maximum()) {
      Fail(ReasonCode::kTopicAliasInvalid, "topic alias out of range");  // MQTT 5 s3.3.2.3.4
      return;
    }
    if (p.topic.empty()) {
      auto it = aliases().in.find(alias);
      if (it == aliases().in.end()) {
        Fail(ReasonCode::kProtocolError, "unknown topic alias");
        return;
      }
      p.topic = it->second;
    } else {
      aliases().in[alias] = p.topic;
    }
  } else if (p.topic.empty()) {
    Fail(ReasonCode::kProtocolError, "empty topic without alias");
    return;
  }
  if (!topic::IsValidTopicName(p.topic)) {
    Fail(ReasonCode::kTopicNameInvalid, "invalid topic name");
    return;
  }
  if (p.qos == 2 && !session_->incoming_qos2.contains(p.packet_id) &&
      session_->incoming_qos2.size() >= cfg.receive_maximum()) {
    Fail(ReasonCode::kReceiveMaximumExceeded, "receive maximum exceeded");  // MQTT 5 s3.3.4
    return;
  }

  ReasonCode rc = ReasonCode::kSuccess;
  bool deliver = true;
  if (v5 && p.properties.payload_format_indicator.value_or(0) == 1 &&
      !utf8::IsValidMqttString(p.payload)) {
    rc = ReasonCode::kPayloadFormatInvalid;
    deliver = false;
  }
  if (IsSysTopic(p.topic)) {
    rc = ReasonCode::kNotAuthorized;  // $SYS belongs to the broker
    deliver = false;
  }
  const bool duplicate_qos2 = p.qos == 2 && session_->incoming_qos2.contains(p.packet_id);
  if (duplicate_qos2) deliver = false;  // MQTT s4.3.3: already received, PUBREC again

  const uint16_t packet_id = p.packet_id;
  const uint8_t qos = p.qos;
  if (qos == 2 && static_cast<uint8_t>(rc) < 0x80 && !duplicate_qos2) {
    session_->AddIncomingQos2(packet_id);  // stored in the same commit as the publish
  }
  // Honest acknowledgement: PUBACK/PUBREC once every durable effect of this publish (queue
  // entries of persistent subscribers, retained update, the QoS 2 packet id) is committed.
  // Acks complete in the order the publishes arrived (MQTT s4.6).
  TopicOwner::Done ack;
  if (qos > 0) {
    ack = [weak = weak_from_this(), qos, packet_id, rc](const absl::Status& st) {
      auto self = weak.lock();
      if (!self || self->state_ != State::kConnected) return;
      codec::PubResponse r;
      r.type = qos == 1 ? PacketType::kPuback : PacketType::kPubrec;
      r.packet_id = packet_id;
      r.reason = rc;
      if (!st.ok()) {
        SHARDMQ_LOG(INFO) << self->Describe() << "publish " << packet_id
                          << " not accepted: " << st.message();
        if (self->version_ != ProtocolVersion::kV5) {
          // 3.1.1 has no negative acknowledgement: close, so the client sends it again.
          self->CloseConnection(true);
          return;
        }
        r.reason = ReasonCode::kUnspecifiedError;
        if (qos == 2 && self->session_ != nullptr) self->session_->RemoveIncomingQos2(packet_id);
      }
      self->SendPacket(r);
    };
  }
  if (deliver) {
    auto m = std::make_shared<Message>();
    m->topic = std::move(p.topic);
    m->payload = std::move(p.payload);
    m->qos = p.qos;
    m->retain = p.retain;
    if (v5) {
      if (p.properties.message_expiry_interval) {
        m->expiry_at_ms = core_.broker().clock().NowMs() +
                          int64_t{*p.properties.message_expiry_interval} * 1000;
      }
      m->properties = PassThrough(std::move(p.properties));
    }
    m->publisher = client_id_;
    TopicOwner& owner = core_.topic_owner(m->topic);
    owner.Publish(std::move(m), std::move(ack));
  } else if (ack) {
    core_.AfterCommit(std::move(ack));  // not delivered (e.g. a QoS 2 resend): ack all the same
  }
}

void ConnectionHandler::HandlePubResponse(codec::PubResponse& r) {
  switch (r.type) {
    case PacketType::kPuback:
      session_->OnPuback(r.packet_id);
      break;
    case PacketType::kPubrec:
      if (!session_->OnPubrec(r.packet_id, r.reason) &&
          static_cast<uint8_t>(r.reason) < 0x80) {
        codec::PubResponse rel;
        rel.type = PacketType::kPubrel;
        rel.packet_id = r.packet_id;
        rel.reason = ReasonCode::kPacketIdentifierNotFound;
        SendPacket(rel);
      }
      break;
    case PacketType::kPubrel: {
      bool known = session_->RemoveIncomingQos2(r.packet_id);
      codec::PubResponse comp;
      comp.type = PacketType::kPubcomp;
      comp.packet_id = r.packet_id;
      comp.reason = known ? ReasonCode::kSuccess : ReasonCode::kPacketIdentifierNotFound;
      if (known && session_->persistent()) {
        // PUBCOMP once the packet id is durably forgotten: the client may reuse it right after,
        // and a crash that brought it back would take the new message for a duplicate.
        core_.AfterCommit([weak = weak_from_this(), comp](const absl::Status&) {
          auto self = weak.lock();
          if (self && self->state_ == State::kConnected) self->SendPacket(comp);
        });
      } else {
        SendPacket(comp);
      }
      break;
    }
    case PacketType::kPubcomp:
      session_->OnPubcomp(r.packet_id);
      break;
    default:
      Fail(ReasonCode::kProtocolError, "unexpected response type");
  }
}

void ConnectionHandler::HandleSubscribe(codec::Subscribe& s) {
  cluster::Router* router = core_.broker().router();
  if (router == nullptr) {
    ApplySubscribe(s, {}, {});
    return;
  }
  // In a cluster, a new (non-shared) filter first gets this node's route at the filter's
  // owners, so a publish anywhere after the SUBACK is seen; then the subscription is applied.
  // A filter whose owner cannot be reached is refused (SUBACK failure code).
  std::vector<std::string> routed;  // full filters ($share/... included)
  for (const codec::SubscriptionRequest& req : s.subscriptions) {
    topic::SharedFilter shared;
    const topic::ParseSharedResult kind = topic::ParseShared(req.filter, &shared);
    if (kind == topic::ParseSharedResult::kInvalid) continue;
    if (kind == topic::ParseSharedResult::kNotShared && !topic::IsValidFilter(req.filter)) continue;
    if (session_->subscriptions.contains(req.filter)) continue;
    if (std::find(routed.begin(), routed.end(), req.filter) == routed.end()) {
      routed.push_back(req.filter);
    }
  }
  if (routed.empty()) {
    ApplySubscribe(s, {}, {});
    return;
  }
  struct Pending {
    codec::Subscribe packet;
    std::vector<std::string> routed;
    std::vector<std::string> failed;
    size_t left = 0;
  };
  auto pending = std::make_shared<Pending>();
  pending->packet = std::move(s);
  pending->routed = routed;
  pending->left = routed.size();
  for (const std::string& filter : routed) {
    const auto [plain, group] = RouteOf(filter);
    router->AddRoute(plain, group, [weak = weak_from_this(), worker = &core_.worker(), pending,
                                    filter](const absl::Status& st) {
      worker->Post([weak, pending, filter, st] {
        if (!st.ok()) {
          SHARDMQ_LOG(WARNING) << "subscription to \"" << filter << "\" refused: " << st.message();
          pending->failed.push_back(filter);
        }
        if (--pending->left > 0) return;
        auto self = weak.lock();
        if (!self || self->state_ != State::kConnected || self->session_ == nullptr) {
          // Gone meanwhile: the routes it registered are not needed.
          cluster::Router* r = self ? self->core_.broker().router() : nullptr;
          for (const std::string& f : pending->routed) {
            const auto [plain, group] = RouteOf(f);
            if (r != nullptr) r->RemoveRoute(plain, group);
          }
          return;
        }
        self->ApplySubscribe(pending->packet, pending->routed, pending->failed);
      });
    });
  }
}

void ConnectionHandler::ApplySubscribe(codec::Subscribe& s, const std::vector<std::string>& routed,
                                       const std::vector<std::string>& failed) {
  const bool v5 = version_ == ProtocolVersion::kV5;
  cluster::Router* router = core_.broker().router();
  auto contains = [](const std::vector<std::string>& v, const std::string& f) {
    return std::find(v.begin(), v.end(), f) != v.end();
  };
  // Each routed filter carries one AddRoute: kept by the subscription it creates, or undone.
  std::vector<std::string> unused = routed;
  const uint8_t invalid = v5 ? static_cast<uint8_t>(ReasonCode::kTopicFilterInvalid) : 0x80;
  uint32_t sub_id = s.properties.subscription_identifiers.empty()
                        ? 0
                        : s.properties.subscription_identifiers.front();
  std::vector<uint8_t> codes;
  std::vector<RouteChange> changes;
  for (codec::SubscriptionRequest& req : s.subscriptions) {
    topic::SharedFilter shared;
    topic::ParseSharedResult kind = topic::ParseShared(req.filter, &shared);
    std::string_view plain = req.filter;
    if (kind == topic::ParseSharedResult::kInvalid) {
      codes.push_back(invalid);
      continue;
    }
    if (kind == topic::ParseSharedResult::kShared) {
      plain = shared.filter;
      if (v5 && req.no_local) {
        Fail(ReasonCode::kProtocolError, "No Local on a shared subscription");  // s3.8.3.1
        return;
      }
    } else if (!topic::IsValidFilter(req.filter)) {
      codes.push_back(invalid);
      continue;
    }
    if (contains(failed, req.filter)) {
      codes.push_back(v5 ? static_cast<uint8_t>(ReasonCode::kUnspecifiedError) : 0x80);
      continue;
    }
    SubscriptionOptions o;
    o.qos = std::min<uint8_t>(req.max_qos, 2);
    o.no_local = v5 && req.no_local;
    o.retain_as_published = v5 && req.retain_as_published;
    o.retain_handling = v5 ? req.retain_handling : 0;
    o.subscription_id = sub_id;
    auto [it, inserted] = session_->subscriptions.insert_or_assign(req.filter, o);
    if (inserted) core_.stats().subscriptions.fetch_add(1, std::memory_order_relaxed);
    if (router != nullptr && inserted) {
      if (auto u = std::find(unused.begin(), unused.end(), req.filter); u != unused.end()) {
        unused.erase(u);  // this subscription keeps the route registered for it
      } else {
        const auto [plain_filter, group] = RouteOf(req.filter);
        router->AddRoute(plain_filter, group, nullptr);  // not registered ahead (see above)
      }
    }
    session_->StoreSubscription(req.filter, o);
    RouteChange ch;
    ch.entry.client_id = client_id_;
    ch.entry.session_gen = session_->gen();
    ch.entry.group = kind == topic::ParseSharedResult::kShared ? std::string(shared.group) : "";
    ch.entry.filter = std::string(plain);
    ch.entry.qos = o.qos;
    ch.entry.no_local = o.no_local;
    ch.entry.retain_as_published = o.retain_as_published;
    ch.entry.subscription_id = sub_id;
    ch.full_filter = req.filter;
    ch.is_new = inserted;
    ch.shared = kind == topic::ParseSharedResult::kShared;
    ch.options = o;
    changes.push_back(std::move(ch));
    codes.push_back(o.qos);
  }
  for (const std::string& f : unused) {
    const auto [plain_filter, group] = RouteOf(f);
    if (router != nullptr) router->RemoveRoute(plain_filter, group);  // failed ones count too
  }
  std::vector<RouteEntry> entries;
  entries.reserve(changes.size());
  for (const auto& ch : changes) entries.push_back(ch.entry);
  const uint16_t packet_id = s.packet_id;
  // Matching messages may arrive before the SUBACK can go out: the session holds them back
  // until after the SUBACK and the retained messages.
  session_->Hold();
  // SUBACK only once every worker's replica has the routes: a publish after SUBACK is seen.
  core_.Broadcast(
      [entries = std::move(entries)](WorkerCore& w) {
        for (const auto& e : entries) w.routes().Add(e);
      },
      [weak = weak_from_this(), packet_id, codes = std::move(codes),
       changes = std::move(changes)]() mutable {
        auto self = weak.lock();
        if (!self || self->state_ != State::kConnected) return;
        // Every replica has the routes; SUBACK once the subscriptions are also durable.
        self->core_.AfterCommit([weak, packet_id, codes = std::move(codes),
                                 changes = std::move(changes)](const absl::Status&) mutable {
          auto self = weak.lock();
          if (!self || self->state_ != State::kConnected) return;
          codec::Suback ack;
          ack.packet_id = packet_id;
          ack.reason_codes = std::move(codes);
          self->SendPacket(ack);
          self->DeliverRetained(changes);
          if (self->session_ != nullptr) self->session_->Release();
        });
      });
}

void ConnectionHandler::DeliverRetained(const std::vector<RouteChange>& changes) {
  const int64_t now = core_.broker().clock().NowMs();
  for (const RouteChange& ch : changes) {
    if (session_ == nullptr) return;
    // MQTT 5 s3.3.1.3: retained messages are not sent for shared subscriptions; Retain
    // Handling 1 sends them only for a new subscription, 2 never.
    if (ch.shared || ch.options.retain_handling == 2 ||
        (ch.options.retain_handling == 1 && !ch.is_new)) {
      continue;
    }
    std::vector<std::string> expired;
    std::vector<records::Message> matched =
        core_.broker().retained().Match(ch.entry.filter, now, &expired);
    for (std::string& t : expired) core_.batch().DeleteRetained(std::move(t));
    for (const records::Message& rec : matched) {
      Delivery d;
      d.client_id = client_id_;
      d.session_gen = session_->gen();
      d.message = std::make_shared<const Message>(FromRecord(rec));
      d.qos = std::min<uint8_t>(static_cast<uint8_t>(rec.qos()), ch.options.qos);
      d.retain = true;
      d.retain_on_subscribe = true;
      if (ch.options.subscription_id != 0) d.subscription_ids.push_back(ch.options.subscription_id);
      session_->Enqueue(std::move(d));
    }
  }
}

void ConnectionHandler::HandleUnsubscribe(codec::Unsubscribe& u) {
  const bool v5 = version_ == ProtocolVersion::kV5;
  struct Removal {
    std::string group;
    std::string filter;
  };
  std::vector<Removal> removals;
  std::vector<uint8_t> codes;
  for (const std::string& f : u.filters) {
    bool existed = session_->subscriptions.erase(f) > 0;
    codes.push_back(existed ? 0x00 : static_cast<uint8_t>(ReasonCode::kNoSubscriptionExisted));
    if (!existed) continue;
    session_->StoreUnsubscription(f);
    core_.stats().subscriptions.fetch_sub(1, std::memory_order_relaxed);
    topic::SharedFilter shared;
    if (topic::ParseShared(f, &shared) == topic::ParseSharedResult::kShared) {
      removals.push_back({std::string(shared.group), std::string(shared.filter)});
    } else {
      removals.push_back({"", f});
    }
    if (cluster::Router* router = core_.broker().router()) {
      router->RemoveRoute(removals.back().filter, removals.back().group);
    }
  }
  const uint16_t packet_id = u.packet_id;
  std::string cid = client_id_;
  uint64_t gen = session_->gen();
  core_.Broadcast(
      [cid, gen, removals = std::move(removals)](WorkerCore& w) {
        for (const auto& r : removals) w.routes().Remove(cid, r.group, r.filter, gen);
      },
      [weak = weak_from_this(), packet_id, codes = std::move(codes), v5]() mutable {
        auto self = weak.lock();
        if (!self || self->state_ != State::kConnected) return;
        codec::Unsuback ack;
        ack.packet_id = packet_id;
        if (v5) ack.reason_codes = std::move(codes);
        self->SendPacket(ack);
      });
}

void ConnectionHandler::HandleDisconnect(codec::Disconnect& d) {
  const bool v5 = version_ == ProtocolVersion::kV5;
  if (v5 && d.properties.session_expiry_interval) {
    uint32_t requested = *d.properties.session_expiry_interval;
    if (connect_expiry_s_ == 0 && requested != 0) {
      // MQTT 5 s3.14.2.2.2: cannot make a session persistent at DISCONNECT.
      Fail(ReasonCode::kProtocolError, "session expiry set at DISCONNECT after 0 at CONNECT");
      return;
    }
    const config::MqttConfig& cfg = core_.broker().mqtt();
    if (cfg.max_session_expiry() != 0) requested = std::min(requested, cfg.max_session_expiry());
    session_->expiry_s = requested;
  }
  CloseConnection(v5 && d.reason == ReasonCode::kDisconnectWithWill);
}

void ConnectionHandler::ArmKeepalive() {
  // MQTT s3.1.2.10: disconnect after 1.5 times the Keep Alive without any packet. The deadline
  // is checked by the worker's ticker (WorkerCore::kDeadlineTick late at most); packets only
  // move last_rx_ms_, and OnDeadline sets the next deadline from it.
  core_.SetDeadline(this, keepalive_ms_ == 0 ? 0 : last_rx_ms_ + keepalive_ms_ + keepalive_ms_ / 2);
}

void ConnectionHandler::OnDeadline(int64_t now_ms) {
  if (state_ == State::kAwaitConnect) {
    SHARDMQ_LOG(DEBUG) << Describe() << "no CONNECT within the connect timeout";
    CloseConnection(false);
    return;
  }
  if (state_ == State::kRelaying) {
    if (relay_ != nullptr && !relay_->confirmed) {
      SHARDMQ_LOG(WARNING) << Describe()
                           << (relay_->node.empty() ? std::string("the session's partition")
                                                    : "the session's node " + relay_->node)
                           << " did not answer within the connect timeout";
      SendConnackError(ReasonCode::kServerUnavailable);
    }
    return;
  }
  if (state_ != State::kConnected || keepalive_ms_ == 0) return;
  if (now_ms - last_rx_ms_ >= keepalive_ms_ + keepalive_ms_ / 2) {
    SHARDMQ_LOG(DEBUG) << Describe() << "keepalive timeout";
    Fail(ReasonCode::kKeepAliveTimeout, "keepalive");
    return;
  }
  ArmKeepalive();
}

// ---------------------------------------------------------------- relaying (cluster mode)

namespace {
// Upstream flow control: at most this many of a relayed client's bytes are sent to its
// session's node and not yet handled there (RelayData.consumed), or held here before the open
// is confirmed; past it the client's socket is not read until the backlog is under half.
constexpr size_t kRelayWindow = 1 << 20;
// 10 s: long enough for a fencing refusal to meet a newer map, and for the hand-off of a
// moving partition's sessions (the old leader refuses their connects until the flip).
constexpr int kMaxRelayTries = 100;
constexpr std::chrono::milliseconds kRelayRetryDelay{100};
}  // namespace

void ConnectionHandler::SetRelayedIdentity(std::string client_id, bool assigned,
                                           const std::string& origin) {
  client_id_ = std::move(client_id);
  relayed_in_ = true;
  relayed_assigned_ = assigned;
  SHARDMQ_LOG(DEBUG) << Describe() << "relayed from " << origin;
}

const std::string& ConnectionHandler::relay_node() const {
  static const std::string kNone;
  return relay_ ? relay_->node : kNone;
}

void ConnectionHandler::StartRelay(const cluster::Router::Placement& placement,
                                   std::string_view connect_bytes) {
  relay_ = std::make_unique<Relay>();
  relay_->opened_with.assign(connect_bytes);
  state_ = State::kRelaying;
  SendRelayOpen(placement);
}

void ConnectionHandler::SendRelayOpen(const cluster::Router::Placement& placement) {
  if (relay_->conn == 0) relay_->conn = core_.RegisterRelay(shared_from_this());
  relay_->node = placement.node;
  relay_->opened_with += relay_->held;
  relay_->held.clear();
  cluster::Router::RelayOpenArgs args;
  args.conn = relay_->conn;
  args.client_id = client_id_;
  args.assigned = relayed_assigned_;
  args.data = relay_->opened_with;
  args.peer = transport_ ? transport_->peer() : std::string();
  // An open that did not reach the node (a link that broke): place the session and open
  // again, as after a fencing refusal.
  core_.broker().router()->RelayOpen(
      placement, std::move(args),
      OnLinkFailure([node = placement.node](ConnectionHandler& h) {
        h.OnRelayReply(node, {}, false, /*not_leader=*/true);
      }));
}

cluster::Router::Done ConnectionHandler::OnLinkFailure(
    std::function<void(ConnectionHandler&)> then) {
  return [weak = weak_from_this(), core = &core_,
          then = std::move(then)](const absl::Status& st) {
    if (st.ok()) return;
    core->worker().Post([weak, then] {
      if (auto h = weak.lock()) then(*h);
    });
  };
}

void ConnectionHandler::RelayUp(std::string_view data) {
  if (data.empty() || relay_ == nullptr) return;
  CountReceived(data.size());
  if (!relay_->confirmed) {
    relay_->held.append(data);
    UpdateRelayReadHold();
    return;
  }
  SendUp(data);
}

void ConnectionHandler::SendUp(std::string_view data) {
  relay_->unconsumed_up += data.size();
  core_.broker().router()->RelaySend(
      relay_->node, relay_->conn, /*upstream=*/true, std::string(data), /*close=*/false,
      OnLinkFailure([](ConnectionHandler& h) { h.OnRelayNodeGone(); }));
  UpdateRelayReadHold();
}

void ConnectionHandler::UpdateRelayReadHold() {
  // A client that sends faster than its session's node handles its bytes (a QoS 0 flood; QoS
  // 1/2 is bounded by the in-flight window) is slowed down the TCP way: its socket is not read
  // while more than kRelayWindow of its bytes wait at S (or here, before the open is
  // confirmed). Only with an S that reports what it handled (RelayData.consumed).
  if (transport_ == nullptr || relay_ == nullptr) return;
  const size_t backlog = relay_->confirmed ? (relay_->credit ? relay_->unconsumed_up : 0)
                                           : relay_->held.size();
  const bool hold = relay_->read_held ? backlog > kRelayWindow / 2 : backlog > kRelayWindow;
  if (hold == relay_->read_held) return;
  relay_->read_held = hold;
  if (hold) core_.stats().Add(core_.stats().relay_read_holds);
  transport_->HoldReading(hold);
}

void ConnectionHandler::RelayWritten(size_t pending_bytes) {
  // Tell S when the client falls behind (or catches up), so QoS 0 to it is dropped at S.
  const bool congested = relay_->downstream_congested ? pending_bytes >= kCongestedBytes / 4
                                                      : pending_bytes > kCongestedBytes;
  if (congested == relay_->downstream_congested || !relay_->confirmed) return;
  relay_->downstream_congested = congested;
  core_.broker().router()->RelayCongestion(relay_->node, relay_->conn, congested);
}

void ConnectionHandler::OnRelayReply(const std::string& from, std::string_view data, bool close,
                                     bool not_leader, int64_t consumed) {
  if (state_ != State::kRelaying || relay_ == nullptr || from != relay_->node) return;
  if (consumed >= 0) {
    relay_->credit = true;
    relay_->unconsumed_up -= std::min(static_cast<size_t>(consumed), relay_->unconsumed_up);
  }
  if (not_leader) {
    // Fencing: S does not lead the session's partition at the epoch of our map. Wait for a
    // newer map and place the session again.
    if (!ArmRelayRetry()) {
      SHARDMQ_LOG(WARNING) << Describe() << "no node accepts the session (fencing)";
      SendConnackError(ReasonCode::kServerUnavailable);
    }
    return;
  }
  if (!relay_->confirmed) {
    relay_->confirmed = true;
    std::string().swap(relay_->opened_with);
    core_.SetDeadline(this, 0);  // S runs the keepalive from here on
    std::string held = std::move(relay_->held);
    relay_->held.clear();
    if (!held.empty()) SendUp(held);
  }
  UpdateRelayReadHold();
  if (!data.empty() && transport_ != nullptr) {
    core_.stats().Add(core_.stats().bytes_sent, data.size());
    transport_->Send(data);
    RelayWritten(transport_->PendingWriteBytes());
  }
  if (close) {
    relay_->closed_by_node = true;
    CloseConnection(false);
  }
}

bool ConnectionHandler::ArmRelayRetry() {
  if (++relay_->tries > kMaxRelayTries) return false;
  relay_->retry = std::make_unique<boost::asio::steady_timer>(core_.worker().io());
  relay_->retry->expires_after(kRelayRetryDelay);
  std::weak_ptr<ConnectionHandler> weak = weak_from_this();
  relay_->retry->async_wait([weak](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto h = weak.lock()) h->RetryRelay();
  });
  return true;
}

void ConnectionHandler::RetryRelay() {
  if (state_ != State::kRelaying || relay_ == nullptr || relay_->confirmed) return;
  auto place = core_.broker().router()->PlaceSession(client_id_);
  if (!place.ok() && place.status().code() == absl::StatusCode::kAborted) {
    if (!ArmRelayRetry()) {  // a hand-off here that outlasts the retries
      SHARDMQ_LOG(WARNING) << Describe() << "CONNECT refused: " << place.status().message();
      SendConnackError(ReasonCode::kServerUnavailable);
    }
    return;
  }
  if (!place.ok()) {
    SHARDMQ_LOG(INFO) << Describe() << "session placement changed while connecting: "
                      << place.status().message();
    SendConnackError(ReasonCode::kServerUnavailable);
    return;
  }
  if (place->local) {
    ServeLocally();
    return;
  }
  SendRelayOpen(*place);
}

void ConnectionHandler::ServeLocally() {
  // The session's partition is led here (again, or now): the CONNECT and every byte after it
  // are handled as on a direct connection. No other node holds anything for this connection:
  // the open was refused, or never sent.
  SHARDMQ_LOG(DEBUG) << Describe() << "the session is served here";
  std::string bytes = std::move(relay_->opened_with);
  bytes += relay_->held;
  if (relay_->conn != 0) core_.UnregisterRelay(relay_->conn);
  const bool held = relay_->read_held;
  relay_.reset();
  state_ = State::kAwaitConnect;
  counted_ahead_ += bytes.size();  // counted when they were read
  replay_.insert(0, bytes);
  size_t wanted = 0;
  OnData({}, &wanted);
  if (!held || transport_ == nullptr) return;
  if (relay_ != nullptr) {  // relayed after all (the placement changed again)
    relay_->read_held = true;
    UpdateRelayReadHold();
  } else {
    transport_->HoldReading(false);
  }
}

void ConnectionHandler::OnRelayNodeGone() {
  if (state_ != State::kRelaying || relay_ == nullptr) return;
  SHARDMQ_LOG(INFO) << Describe() << "the session's node " << relay_->node << " is gone";
  relay_->closed_by_node = true;
  if (!relay_->confirmed) {
    SendConnackError(ReasonCode::kServerUnavailable);
  } else {
    CloseConnection(false);
  }
}

}  // namespace shardmq::broker::session
