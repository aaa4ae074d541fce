#include "broker/session/session.h"

#include "common/topic.h"

#include <algorithm>

#include "broker/session/broker_core.h"
#include "broker/session/connection_handler.h"
#include "common/log.h"

namespace shardmq::broker::session {

// ---------------------------------------------------------------- records

records::Message ToRecord(const Message& m) {
  records::Message r;
  r.set_topic(m.topic);
  r.set_payload(m.payload);
  r.set_qos(m.qos);
  r.set_retain(m.retain);
  const codec::Properties& p = m.properties;
  if (p.payload_format_indicator) r.set_payload_format_indicator(*p.payload_format_indicator);
  r.set_expiry_at_ms(static_cast<uint64_t>(m.expiry_at_ms));
  if (p.content_type) r.set_content_type(*p.content_type);
  if (p.response_topic) r.set_response_topic(*p.response_topic);
  if (p.correlation_data) r.set_correlation_data(*p.correlation_data);
  for (const auto& [k, v] : p.user_properties) {
    auto* up = r.add_user_properties();
    up->set_key(k);
    up->set_value(v);
  }
  r.set_publisher(m.publisher);
  if (m.origin != 0) {
    r.set_origin(m.origin);
    r.set_origin_seq(m.origin_seq);
  }
  return r;
}

Message FromRecord(const records::Message& r) {
  Message m;
  m.topic = r.topic();
  m.payload = r.payload();
  m.qos = static_cast<uint8_t>(r.qos());
  m.retain = r.retain();
  if (r.has_payload_format_indicator()) {
    m.properties.payload_format_indicator = static_cast<uint8_t>(r.payload_format_indicator());
  }
  m.expiry_at_ms = static_cast<int64_t>(r.expiry_at_ms());
  if (r.has_content_type()) m.properties.content_type = r.content_type();
  if (r.has_response_topic()) m.properties.response_topic = r.response_topic();
  if (r.has_correlation_data()) m.properties.correlation_data = r.correlation_data();
  for (const auto& up : r.user_properties()) {
    m.properties.user_properties.emplace_back(up.key(), up.value());
  }
  m.publisher = r.publisher();
  m.origin = r.origin();
  m.origin_seq = r.origin_seq();
  return m;
}

std::pair<std::string, std::string> RouteOf(const std::string& full) {
  topic::SharedFilter shared;
  if (topic::ParseShared(full, &shared) == topic::ParseSharedResult::kShared) {
    return {std::string(shared.filter), std::string(shared.group)};
  }
  return {full, ""};
}

SubscriptionOptions OptionsOf(const records::Subscription& r) {
  SubscriptionOptions o;
  o.qos = static_cast<uint8_t>(r.qos());
  o.no_local = r.no_local();
  o.retain_as_published = r.retain_as_published();
  o.retain_handling = static_cast<uint8_t>(r.retain_handling());
  o.subscription_id = r.subscription_id();
  return o;
}

records::Subscription RecordOf(const std::string& filter, const SubscriptionOptions& o) {
  records::Subscription r;
  r.set_filter(filter);
  r.set_qos(o.qos);
  r.set_no_local(o.no_local);
  r.set_retain_as_published(o.retain_as_published);
  r.set_retain_handling(o.retain_handling);
  r.set_subscription_id(o.subscription_id);
  return r;
}

// ---------------------------------------------------------------- Session

Session::Session(WorkerCore& core, std::string client_id, uint64_t gen)
    : core_(&core), client_id_(std::move(client_id)), gen_(gen) {}

Session::~Session() { CancelTimers(); }

void Session::DetachFromWorker() {
  CancelTimers();
  core_ = nullptr;
}

void Session::AttachToWorker(WorkerCore& core) { core_ = &core; }

void Session::CancelTimers() {
  will_timer_.reset();
  expiry_timer_.reset();
}

void Session::Attach(ConnectionHandler* connection) {
  CancelTimers();
  // MQTT 5 s3.1.3.2.2: a new connection before the Will Delay elapsed cancels the old will.
  SetWill(std::nullopt);
  connection_ = connection;
  // Resend what was in flight, in its original order, with DUP set (MQTT 5 s4.4).
  std::vector<uint64_t> too_large;
  for (auto& [seq, out] : inflight_) {
    if (out.released) {
      connection_->SendPubrel(out.packet_id);
    } else if (!connection_->SendPublish(*out.message, out.qos, out.retain, true, out.packet_id,
                                         out.subscription_ids)) {
      too_large.push_back(seq);
    }
  }
  for (uint64_t seq : too_large) {
    auto it = inflight_.find(seq);
    inflight_by_id_.erase(it->second.packet_id);
    Forget(it->second);
    inflight_.erase(it);
    core_->stats().Add(core_->stats().dropped_too_large);
  }
  Pump();
}

void Session::Release() {
  if (hold_depth_ > 0) --hold_depth_;
  if (hold_depth_ > 0 || held_for_suback_.empty()) return;
  std::vector<Delivery> held;
  held.swap(held_for_suback_);
  for (Delivery& d : held) Enqueue(std::move(d));
}

void Session::Detach(bool will_due) {
  connection_ = nullptr;
  hold_depth_ = 1;
  Release();  // held QoS 1/2 messages go to the queue
  if (!will_due) SetWill(std::nullopt);
  if (expiry_s == 0) {
    core_->EndSession(*this);  // publishes the will; destroys *this
    return;
  }
  Persist();  // records the disconnect time
  const int64_t now = core_->broker().clock().NowMs();
  disconnected_at_ms_ = now;
  if (!frozen_) ArmOfflineTimers(now, now, /*may_publish_now=*/true);
  core_->OnSessionOffline(*this);
}

void Session::Freeze() {
  frozen_ = true;
  CancelTimers();
}

void Session::Thaw() {
  frozen_ = false;
  imported = false;
  if (online()) return;
  const int64_t now = core_->broker().clock().NowMs();
  ArmOfflineTimers(disconnected_at_ms_ != 0 ? disconnected_at_ms_ : now, now,
                   /*may_publish_now=*/true);
}

void Session::ExportHeader(records::SessionTransfer* out) const {
  records::Session* r = out->mutable_session();
  r->set_client_id(client_id_);
  r->set_protocol_version(static_cast<uint32_t>(version));
  r->set_expiry_interval_s(expiry_s);
  r->set_disconnected_at_ms(static_cast<uint64_t>(disconnected_at_ms_));
  for (const auto& [filter, o] : subscriptions) *out->add_subscriptions() = RecordOf(filter, o);
}

void Session::Export(records::SessionTransfer* out) const {
  ExportHeader(out);
  if (will) {
    records::Will* w = out->mutable_will();
    *w->mutable_message() = ToRecord(*will->message);
    w->set_delay_interval_s(will->delay_s);
    w->set_message_expiry_s(will->message_expiry_s);
  }
  auto add = [&](const Outgoing& o) {
    records::QueueEntry e = EntryRecord(o);
    e.set_message_id(static_cast<uint64_t>(out->messages_size()));
    *out->add_messages() = ToRecord(*o.message);
    *out->add_entries() = std::move(e);
  };
  for (const auto& [seq, o] : inflight_) add(o);  // sent first, so older
  for (const Outgoing& o : queue_) {
    if (!o.superseded) add(o);
  }
  for (uint16_t id : incoming_qos2) out->add_incoming_qos2(id);
}

void Session::ArmOfflineTimers(int64_t disconnected_at_ms, int64_t now_ms,
                               bool may_publish_now) {
  auto remaining = [&](uint32_t seconds) {
    int64_t due = disconnected_at_ms + int64_t{seconds} * 1000;
    return std::chrono::milliseconds(std::max<int64_t>(0, due - now_ms));
  };
  if (will) {
    uint32_t delay = std::min(will->delay_s, expiry_s);
    if (delay == 0 && may_publish_now) {
      PublishWill();
    } else {
      will_timer_ = std::make_unique<boost::asio::steady_timer>(core_->worker().io());
      will_timer_->expires_after(remaining(delay));
      will_timer_->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) PublishWill();
      });
    }
  }
  if (expiry_s != kSessionNeverExpires) {
    expiry_timer_ = std::make_unique<boost::asio::steady_timer>(core_->worker().io());
    expiry_timer_->expires_after(remaining(expiry_s));
    expiry_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (!ec) core_->EndSession(*this);  // destroys *this
    });
  }
}

void Session::SetWill(std::optional<WillSpec> w) {
  will = std::move(w);
  StoreWill();
}

void Session::StoreWill() {
  if (!persistent()) return;
  if (will) {
    records::Will r;
    *r.mutable_message() = ToRecord(*will->message);
    r.set_delay_interval_s(will->delay_s);
    r.set_message_expiry_s(will->message_expiry_s);
    core_->batch().PutWill(client_id_, r);
    will_stored_ = true;
  } else if (will_stored_) {
    core_->batch().DeleteWill(client_id_);
    will_stored_ = false;
  }
}

void Session::PublishWill() {
  if (!will) return;
  WillSpec w = std::move(*will);
  SetWill(std::nullopt);
  auto m = std::make_shared<Message>(*w.message);
  if (w.message_expiry_s != 0) {
    m->expiry_at_ms = core_->broker().clock().NowMs() + int64_t{w.message_expiry_s} * 1000;
  }
  // Through the topic's owner, like a client's publish: in a cluster it reaches other nodes.
  core_->topic_owner(m->topic).Publish(std::move(m), nullptr);
}

void Session::Persist() {
  if (!persistent()) return;
  records::Session r;
  r.set_client_id(client_id_);
  r.set_protocol_version(static_cast<uint32_t>(version));
  r.set_expiry_interval_s(expiry_s);
  if (!online()) r.set_disconnected_at_ms(static_cast<uint64_t>(core_->broker().clock().NowMs()));
  storage::Batch& b = core_->batch();
  b.PutSession(r);
  if (!stored_) {
    // First time stored (new, or a transient session that became persistent): everything.
    stored_ = true;
    for (const auto& [filter, o] : subscriptions) StoreSubscription(filter, o);
    StoreWill();
    for (uint16_t id : incoming_qos2) b.PutIncomingQos2(client_id_, id);
  }
}

void Session::StoreSubscription(const std::string& filter, const SubscriptionOptions& o) {
  if (!stored_) return;
  core_->batch().PutSubscription(client_id_, RecordOf(filter, o));
}

void Session::StoreUnsubscription(const std::string& filter) {
  if (stored_) core_->batch().DeleteSubscription(client_id_, filter);
}

void Session::AddIncomingQos2(uint16_t packet_id) {
  if (incoming_qos2.insert(packet_id).second && stored_) {
    core_->batch().PutIncomingQos2(client_id_, packet_id);
  }
}

bool Session::RemoveIncomingQos2(uint16_t packet_id) {
  if (incoming_qos2.erase(packet_id) == 0) return false;
  if (stored_) core_->batch().DeleteIncomingQos2(client_id_, packet_id);
  return true;
}

void Session::DropStored() {
  // Each stored delivery is finished (a done mark), not just forgotten: the message lists this
  // client id, and a later session with the same id must not inherit it.
  for (auto& out : queue_) {
    if (out.durable && !out.superseded) {
      Forget(out);
      out.durable = false;
    }
  }
  for (auto& [seq, out] : inflight_) {
    if (out.durable) {
      Forget(out);
      out.durable = false;
    }
  }
  for (Delivery& d : held_for_suback_) {
    if (d.durable) core_->ReleaseStored(client_id_, *d.message);
  }
  held_for_suback_.clear();
  if (stored_) core_->batch().DeleteSession(client_id_);
  stored_ = false;
  will_stored_ = false;
}

void Session::Restore(const storage::StoredSession& stored,
                      const absl::flat_hash_map<uint64_t, std::shared_ptr<Message>>& bodies,
                      int64_t now_ms) {
  const records::Session& r = stored.session;
  version = static_cast<codec::ProtocolVersion>(r.protocol_version());
  expiry_s = r.expiry_interval_s();
  disconnected_at_ms_ = static_cast<int64_t>(r.disconnected_at_ms());
  stored_ = true;
  for (const records::Subscription& sub : stored.subscriptions) {
    subscriptions[sub.filter()] = OptionsOf(sub);
  }
  if (stored.will) {
    WillSpec w;
    w.message = std::make_shared<const Message>(FromRecord(stored.will->message()));
    w.delay_s = stored.will->delay_interval_s();
    w.message_expiry_s = stored.will->message_expiry_s();
    will = std::move(w);
    will_stored_ = true;
  }
  for (uint16_t id : stored.incoming_qos2) incoming_qos2.insert(id);
  size_t superseded = 0;
  for (const auto& [id, e] : stored.entries) {
    auto body = bodies.find(id);
    if (body == bodies.end()) continue;  // Load dropped it as an orphan
    body->second->durable_refs.fetch_add(1, std::memory_order_relaxed);
    Outgoing out;
    out.seq = next_seq_++;
    out.durable = true;
    out.message = body->second;
    out.qos = static_cast<uint8_t>(e.qos());
    out.retain = e.retain();
    for (uint32_t sid : e.subscription_ids()) out.subscription_ids.push_back(sid);
    if (e.state() == records::QueueEntry::QUEUED || e.packet_id() == 0) {
      queued_bytes_ += out.message->payload.size();
      if (core_->broker().LatestOnly(out.message->topic)) {
        // Entries come in message id order. Two queued entries on one latest-only topic mean
        // the process died after the newer one was stored but before the older one's deletion
        // (written by the session's worker, not with the publisher's ack) was: finish it now.
        auto [it, fresh] = latest_by_topic_.try_emplace(out.message->topic, out.seq);
        if (!fresh) {
          for (Outgoing& older : queue_) {
            if (older.seq != it->second || older.superseded) continue;
            older.superseded = true;
            queued_bytes_ -= older.message->payload.size();
            Forget(older);
            ++superseded;
          }
          it->second = out.seq;
        }
      }
      queue_.push_back(std::move(out));
    } else {
      out.packet_id = static_cast<uint16_t>(e.packet_id());
      out.released = e.state() == records::QueueEntry::RELEASED;
      inflight_by_id_[out.packet_id] = out.seq;
      last_packet_id_ = std::max(last_packet_id_, out.packet_id);
      inflight_.emplace(out.seq, std::move(out));
    }
  }
  if (superseded > 0) {
    queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                                [](const Outgoing& o) { return o.superseded; }),
                 queue_.end());
    core_->stats().Add(core_->stats().dropped_superseded, superseded);
  }
  // A crash can leave more queued entries than the limits allow: a delivery to a full queue is
  // stored with the publisher's acknowledgement and dropped by the session's worker a moment
  // later, whose done mark may not have been written. Drop the newest again, as Enqueue did
  // (counted as queue_full), so a restored queue never exceeds the limits.
  const config::MqttConfig& cfg = core_->broker().mqtt();
  size_t over = 0;
  while (!queue_.empty() &&
         (queue_.size() > cfg.max_queued_messages() ||
          (cfg.max_queued_bytes() != 0 && queued_bytes_ > cfg.max_queued_bytes()))) {
    Outgoing& last = queue_.back();
    queued_bytes_ -= last.message->payload.size();
    if (auto it = latest_by_topic_.find(last.message->topic);
        it != latest_by_topic_.end() && it->second == last.seq) {
      latest_by_topic_.erase(it);
    }
    Forget(last);
    queue_.pop_back();
    ++over;
  }
  if (over > 0) core_->stats().Add(core_->stats().dropped_queue_full, over);
  (void)now_ms;
}

records::QueueEntry Session::EntryRecord(const Outgoing& out) const {
  records::QueueEntry e;
  e.set_message_id(out.message->id);
  e.set_qos(out.qos);
  e.set_packet_id(out.packet_id);
  e.set_state(out.packet_id == 0  ? records::QueueEntry::QUEUED
              : out.released      ? records::QueueEntry::RELEASED
                                  : records::QueueEntry::SENT);
  for (uint32_t id : out.subscription_ids) e.add_subscription_ids(id);
  e.set_retain(out.retain);
  return e;
}

void Session::StoreInflight(const Outgoing& out) {
  if (out.durable) core_->batch().PutInflight(client_id_, out.message->id, EntryRecord(out));
}

void Session::Forget(const Outgoing& out) {
  if (out.durable) core_->ReleaseStored(client_id_, *out.message);
}

void Session::Enqueue(Delivery&& d) {
  // A route left over from an earlier session with this client id: not ours.
  if (d.session_gen != gen_) {
    if (d.durable) core_->ReleaseStored(d.client_id, *d.message);
    return;
  }
  if (hold_depth_ > 0 && !d.retain_on_subscribe) {
    held_for_suback_.push_back(std::move(d));
    return;
  }
  WorkerStats& st = core_->stats();
  auto drop = [&](std::atomic<uint64_t>& counter) {
    st.Add(counter);
    if (d.durable) core_->ReleaseStored(client_id_, *d.message);
  };
  if (d.message->expiry_at_ms != 0 &&
      d.message->expiry_at_ms <= core_->broker().clock().NowMs()) {
    drop(st.dropped_expired);
    return;
  }
  if (d.qos == 0) {
    if (connection_ == nullptr) {
      st.Add(st.dropped_qos0_offline);
      return;
    }
    if (connection_->congested()) {
      connection_->MarkCongested();
      st.Add(st.dropped_qos0_backpressure);
      return;
    }
    if (!connection_->SendPublish(*d.message, 0, d.retain, false, 0, d.subscription_ids)) {
      st.Add(st.dropped_too_large);
    }
    return;
  }
  const config::MqttConfig& cfg = core_->broker().mqtt();
  size_t size = d.message->payload.size();
  // Telemetry policy: a newer message on the same topic replaces the queued one.
  uint64_t supersede = 0;
  const bool latest_only = core_->broker().LatestOnly(d.message->topic);
  if (latest_only) {
    auto it = latest_by_topic_.find(d.message->topic);
    if (it != latest_by_topic_.end()) supersede = it->second;
  }
  if (supersede == 0 &&
      (queue_.size() >= cfg.max_queued_messages() ||
       (cfg.max_queued_bytes() != 0 && queued_bytes_ + size > cfg.max_queued_bytes()))) {
    // Drop policy: the new message is dropped (the queue keeps the oldest, in order).
    drop(st.dropped_queue_full);
    return;
  }
  if (supersede != 0) {
    auto pos = std::lower_bound(queue_.begin(), queue_.end(), supersede,
                                [](const Outgoing& o, uint64_t seq) { return o.seq < seq; });
    if (pos != queue_.end() && pos->seq == supersede && !pos->superseded) {
      pos->superseded = true;
      queued_bytes_ -= pos->message->payload.size();
      Forget(*pos);
      st.Add(st.dropped_superseded);
    }
  }
  Outgoing out;
  out.seq = next_seq_++;
  out.durable = d.durable;
  out.message = std::move(d.message);
  out.qos = d.qos;
  out.retain = d.retain;
  out.subscription_ids = std::move(d.subscription_ids);
  if (latest_only) latest_by_topic_[out.message->topic] = out.seq;
  queued_bytes_ += size;
  queue_.push_back(std::move(out));
  Pump();
}

size_t Session::SweepExpired(int64_t now_ms) {
  size_t dropped = 0;
  for (Outgoing& out : queue_) {
    if (out.superseded || out.message->expiry_at_ms == 0 || out.message->expiry_at_ms > now_ms) {
      continue;
    }
    out.superseded = true;  // dead: skipped by Pump, removed below
    queued_bytes_ -= out.message->payload.size();
    auto latest = latest_by_topic_.find(out.message->topic);
    if (latest != latest_by_topic_.end() && latest->second == out.seq) latest_by_topic_.erase(latest);
    Forget(out);
    ++dropped;
  }
  if (dropped > 0) {
    queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                                [](const Outgoing& o) { return o.superseded; }),
                 queue_.end());
    core_->stats().Add(core_->stats().dropped_expired, dropped);
  }
  return dropped;
}

uint16_t Session::NextPacketId() {
  do {
    last_packet_id_ = static_cast<uint16_t>(last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1);
  } while (inflight_by_id_.contains(last_packet_id_));
  return last_packet_id_;
}

void Session::Pump() {
  if (connection_ == nullptr) return;
  const size_t window = connection_->send_window();
  const int64_t now = core_->broker().clock().NowMs();
  WorkerStats& st = core_->stats();
  while (!queue_.empty() && inflight_.size() < window) {
    Outgoing out = std::move(queue_.front());
    queue_.pop_front();
    if (out.superseded) continue;  // already released and counted
    queued_bytes_ -= out.message->payload.size();
    auto latest = latest_by_topic_.find(out.message->topic);
    if (latest != latest_by_topic_.end() && latest->second == out.seq) {
      latest_by_topic_.erase(latest);
    }
    if (out.message->expiry_at_ms != 0 && out.message->expiry_at_ms <= now) {
      st.Add(st.dropped_expired);
      Forget(out);
      continue;
    }
    out.packet_id = NextPacketId();
    if (out.durable) {
      // The packet id must be durable before the client sees the PUBLISH: after a crash the
      // message is resent with its original packet id (MQTT-4.4.0-1), which for QoS 2 is what
      // lets the client recognise it (exactly once).
      StoreInflight(out);
      const uint64_t seq = out.seq;
      inflight_by_id_[out.packet_id] = seq;
      inflight_.emplace(seq, std::move(out));
      // By the time the commit completes the session may have ended or moved to another
      // worker: find it again on this one.
      core_->AfterCommit([core = core_, cid = client_id_, gen = gen_, seq,
                          weak = connection_->weak_from_this()](const absl::Status&) {
        Session* s = core->FindSession(cid);
        if (s != nullptr && s->gen() == gen) s->SendDeferred(seq, weak);
      });
      continue;
    }
    if (!connection_->SendPublish(*out.message, out.qos, out.retain, false, out.packet_id,
                                  out.subscription_ids)) {
      st.Add(st.dropped_too_large);
      Forget(out);
      continue;
    }
    StoreInflight(out);
    inflight_by_id_[out.packet_id] = out.seq;
    inflight_.emplace(out.seq, std::move(out));
  }
}

void Session::SendDeferred(uint64_t seq, std::weak_ptr<ConnectionHandler> weak) {
  auto conn = weak.lock();
  // Only on the connection it was meant for: a new connection resends everything in flight.
  if (!conn || conn.get() != connection_) return;
  auto it = inflight_.find(seq);
  if (it == inflight_.end() || it->second.released) return;
  Outgoing& out = it->second;
  if (!conn->SendPublish(*out.message, out.qos, out.retain, false, out.packet_id,
                         out.subscription_ids)) {
    core_->stats().Add(core_->stats().dropped_too_large);
    inflight_by_id_.erase(out.packet_id);
    Forget(out);
    inflight_.erase(it);
    Pump();
  }
}

void Session::OnPuback(uint16_t packet_id) {
  auto it = inflight_by_id_.find(packet_id);
  if (it == inflight_by_id_.end()) return;
  auto out = inflight_.find(it->second);
  if (out->second.qos != 1) return;  // PUBACK for a QoS 2 message: ignore
  Forget(out->second);
  inflight_.erase(out);
  inflight_by_id_.erase(it);
  Pump();
}

bool Session::OnPubrec(uint16_t packet_id, codec::ReasonCode reason) {
  auto it = inflight_by_id_.find(packet_id);
  if (it == inflight_by_id_.end()) return false;
  auto out = inflight_.find(it->second);
  if (out->second.qos != 2) return false;
  if (static_cast<uint8_t>(reason) >= 0x80) {
    // MQTT 5 s4.3.3: a PUBREC with an error ends the exchange; no PUBREL.
    Forget(out->second);
    inflight_.erase(out);
    inflight_by_id_.erase(it);
    Pump();
    return true;
  }
  out->second.released = true;
  StoreInflight(out->second);
  if (connection_ != nullptr) {
    // PUBREL only once RELEASED is durable: after a PUBREL the client forgets the packet id, so
    // a crash that brought back the SENT state would resend the PUBLISH and it would be
    // delivered twice.
    if (out->second.durable) {
      core_->AfterCommit([weak = connection_->weak_from_this(), packet_id](const absl::Status&) {
        if (auto conn = weak.lock()) conn->SendPubrel(packet_id);
      });
    } else {
      connection_->SendPubrel(packet_id);
    }
  }
  return true;
}

void Session::OnPubcomp(uint16_t packet_id) {
  auto it = inflight_by_id_.find(packet_id);
  if (it == inflight_by_id_.end()) return;
  auto out = inflight_.find(it->second);
  if (!out->second.released) return;
  Forget(out->second);
  inflight_.erase(out);
  inflight_by_id_.erase(it);
  Pump();
}

}  // namespace shardmq::broker::session
