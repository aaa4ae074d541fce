#include "broker/session/session.h"

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
  return m;
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
  will.reset();
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
    DropEntry(it->second);
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
  if (!will_due) will.reset();
  if (expiry_s == 0) {
    core_->EndSession(*this);  // publishes the will; destroys *this
    return;
  }
  if (will) {
    uint32_t delay = std::min(will->delay_s, expiry_s);
    if (delay == 0) {
      PublishWill();
    } else {
      will_timer_ = std::make_unique<boost::asio::steady_timer>(core_->worker().io());
      will_timer_->expires_after(std::chrono::seconds(delay));
      will_timer_->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) PublishWill();
      });
    }
  }
  if (expiry_s != kSessionNeverExpires) {
    expiry_timer_ = std::make_unique<boost::asio::steady_timer>(core_->worker().io());
    expiry_timer_->expires_after(std::chrono::seconds(expiry_s));
    expiry_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (!ec) core_->EndSession(*this);  // destroys *this
    });
  }
  Persist();
  core_->OnSessionOffline(*this);
}

void Session::PublishWill() {
  if (!will) return;
  WillSpec w = std::move(*will);
  will.reset();
  if (w.message_expiry_s != 0) {
    auto m = std::make_shared<Message>(*w.message);
    m->expiry_at_ms = core_->broker().clock().NowMs() + int64_t{w.message_expiry_s} * 1000;
    w.message = std::move(m);
  }
  core_->Publish(w.message);
}

void Session::Persist() {
  if (!persistent()) return;
  records::Session r;
  r.set_client_id(client_id_);
  r.set_protocol_version(static_cast<uint32_t>(version));
  r.set_expiry_interval_s(expiry_s);
  for (const auto& [filter, o] : subscriptions) {
    auto* s = r.add_subscriptions();
    s->set_filter(filter);
    s->set_qos(o.qos);
    s->set_no_local(o.no_local);
    s->set_retain_as_published(o.retain_as_published);
    s->set_retain_handling(o.retain_handling);
    s->set_subscription_id(o.subscription_id);
  }
  if (!online()) r.set_disconnected_at_ms(static_cast<uint64_t>(core_->broker().clock().NowMs()));
  if (will) {
    *r.mutable_will()->mutable_message() = ToRecord(*will->message);
    r.mutable_will()->set_delay_interval_s(will->delay_s);
  }
  absl::Status st = core_->broker().storage().sessions().Save(r);
  if (!st.ok()) SHARDMQ_LOG(WARNING) << "session " << client_id_ << " not saved: " << st;
}

void Session::StoreEntry(const Outgoing& out) {
  if (!persistent() || out.qos == 0) return;
  records::QueueEntry e;
  *e.mutable_message() = ToRecord(*out.message);
  e.set_qos(out.qos);
  e.set_packet_id(out.packet_id);
  e.set_state(out.packet_id == 0  ? records::QueueEntry::QUEUED
              : out.released      ? records::QueueEntry::RELEASED
                                  : records::QueueEntry::SENT);
  for (uint32_t id : out.subscription_ids) e.add_subscription_ids(id);
  e.set_retain(out.retain);
  core_->broker().storage().queues().Put(client_id_, out.seq, e).IgnoreError();  // in-memory
}

void Session::DropEntry(const Outgoing& out) {
  if (!persistent() || out.qos == 0) return;
  core_->broker().storage().queues().Remove(client_id_, out.seq).IgnoreError();  // in-memory
}

void Session::Enqueue(Delivery&& d) {
  // A route left over from an earlier session with this client id: not ours.
  if (d.session_gen != gen_) return;
  if (hold_depth_ > 0 && !d.retain_on_subscribe) {
    held_for_suback_.push_back(std::move(d));
    return;
  }
  WorkerStats& st = core_->stats();
  if (d.message->expiry_at_ms != 0 &&
      d.message->expiry_at_ms <= core_->broker().clock().NowMs()) {
    st.Add(st.dropped_expired);
    return;
  }
  if (d.qos == 0) {
    if (connection_ == nullptr) {
      st.Add(st.dropped_qos0_offline);
      return;
    }
    if (connection_->congested()) {
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
  if (queue_.size() >= cfg.max_queued_messages() ||
      (cfg.max_queued_bytes() != 0 && queued_bytes_ + size > cfg.max_queued_bytes())) {
    // Drop policy: the new message is dropped (the queue keeps the oldest, in order).
    st.Add(st.dropped_queue_full);
    return;
  }
  Outgoing out;
  out.seq = next_seq_++;
  out.message = std::move(d.message);
  out.qos = d.qos;
  out.retain = d.retain;
  out.subscription_ids = std::move(d.subscription_ids);
  StoreEntry(out);
  queued_bytes_ += size;
  queue_.push_back(std::move(out));
  Pump();
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
    queued_bytes_ -= out.message->payload.size();
    if (out.message->expiry_at_ms != 0 && out.message->expiry_at_ms <= now) {
      st.Add(st.dropped_expired);
      DropEntry(out);
      continue;
    }
    out.packet_id = NextPacketId();
    if (!connection_->SendPublish(*out.message, out.qos, out.retain, false, out.packet_id,
                                  out.subscription_ids)) {
      st.Add(st.dropped_too_large);
      DropEntry(out);
      continue;
    }
    StoreEntry(out);
    inflight_by_id_[out.packet_id] = out.seq;
    inflight_.emplace(out.seq, std::move(out));
  }
}

void Session::OnPuback(uint16_t packet_id) {
  auto it = inflight_by_id_.find(packet_id);
  if (it == inflight_by_id_.end()) return;
  auto out = inflight_.find(it->second);
  if (out->second.qos != 1) return;  // PUBACK for a QoS 2 message: ignore
  DropEntry(out->second);
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
    DropEntry(out->second);
    inflight_.erase(out);
    inflight_by_id_.erase(it);
    Pump();
    return true;
  }
  out->second.released = true;
  StoreEntry(out->second);
  if (connection_ != nullptr) connection_->SendPubrel(packet_id);
  return true;
}

void Session::OnPubcomp(uint16_t packet_id) {
  auto it = inflight_by_id_.find(packet_id);
  if (it == inflight_by_id_.end()) return;
  auto out = inflight_.find(it->second);
  if (!out->second.released) return;
  DropEntry(out->second);
  inflight_.erase(out);
  inflight_by_id_.erase(it);
  Pump();
}

}  // namespace shardmq::broker::session
