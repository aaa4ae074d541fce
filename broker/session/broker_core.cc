// Session move protocol (a client reconnects on worker C while its session lives on worker S):
//   1. C claims the client id in the directory (busy, now pointing at C) and asks S to detach.
//   2. S kicks the old connection (0x8E), then either ends the session (Clean Start) or hands the
//      Session object to C, and keeps forwarding deliveries that still arrive at S to C.
//   3. C installs the session and broadcasts its new location; each worker, once it has applied
//      it, acknowledges to S (so every delivery that worker sent to S before is already at S).
//   4. When S has every acknowledgement it tells C "move complete"; C then releases the direct
//      deliveries it held back meanwhile (they are newer than anything S forwarded), and settles
//      the directory entry.
// This keeps per-publisher order across a move without any lock on the delivery path.
#include "broker/session/broker_core.h"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <random>
#include <thread>

#include "broker/session/connection_handler.h"
#include "broker/session/relayed_connection.h"
#include "broker/session/session.h"
#include "broker/session/sys_topics.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/topic.h"

namespace shardmq::broker::session {

namespace {
struct AckState {
  int remaining = 0;
  absl::AnyInvocable<void()> done;
};
}  // namespace

// ---------------------------------------------------------------- WorkerCore

WorkerCore::WorkerCore(BrokerCore& broker, net::Worker& worker)
    : broker_(broker), worker_(worker) {}

WorkerCore::~WorkerCore() = default;

Session* WorkerCore::FindSession(std::string_view client_id) {
  auto it = sessions_.find(client_id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

Session& WorkerCore::CreateSession(const std::string& client_id) {
  auto session = std::make_unique<Session>(*this, client_id, broker_.NextSessionGen());
  Session& ref = *session;
  sessions_[client_id] = std::move(session);
  routes_.AttachSession(client_id, &ref);
  stats_.sessions.fetch_add(1, std::memory_order_relaxed);
  return ref;
}

void WorkerCore::Publish(std::shared_ptr<Message> message,
                         const cluster::LocalDelivery::Scope* scope) {
  if (message->retain) UpdateRetained(*message);
  // Publishes nest (a delivery can end a session, which publishes its will): slots from Match
  // are freed only once the outermost publish is done.
  ++publish_depth_;
  std::vector<Delivery> deliveries;
  std::vector<LocationSlot*> slots;
  routes_.Match(message, &deliveries, &slots, scope);
  // Where each session is (from its route's slot, no look-up by client id). QoS 1/2
  // deliveries to persistent sessions are stored (the body once, with the list of those
  // sessions) in this worker's batch, so the publisher's acknowledgement can wait for them.
  std::vector<int> targets(deliveries.size());
  int durable = 0;
  for (size_t i = 0; i < deliveries.size(); ++i) {
    Delivery& d = deliveries[i];
    const SessionLocation* loc = RouteTable::LocationIn(slots[i]);
    targets[i] = loc == nullptr ? -1 : loc->worker;
    if (d.qos != 0 && loc != nullptr && loc->persistent && loc->gen == d.session_gen) {
      d.durable = true;
      ++durable;
    }
  }
  if (durable > 0) {
    message->id = broker_.NextMessageId();
    message->durable_refs.store(durable, std::memory_order_relaxed);
    uncommitted_deliveries_ += static_cast<size_t>(durable);
    storage::Recipients recipients;
    recipients.Reserve(static_cast<size_t>(durable),
                       static_cast<size_t>(durable) * deliveries.front().client_id.size());
    for (const Delivery& d : deliveries) {
      if (d.durable) recipients.Add(d.client_id, d.qos, d.retain, d.subscription_ids);
    }
    batch().PutMessage(message->id, ToRecord(*message), std::move(recipients));
  }
  Dispatch(deliveries, targets, slots);
  if (--publish_depth_ == 0) routes_.CollectGarbage();
}

void LocalTopicOwner::Publish(std::shared_ptr<Message> message, Done done) {
  cluster::Router* router = core_.broker().router();
  if (router == nullptr) {
    core_.Publish(std::move(message));
    if (done) core_.AfterCommit(std::move(done));
    core_.CommitIfLarge();
    return;
  }
  // In a cluster the message also goes to the topic's owner, for the other nodes' subscribers;
  // the publisher's acknowledgement waits for the owner too.
  // This node delivers to its own non-shared subscribers; the topic's owner picks the node
  // that serves each shared subscription (possibly this one).
  static const cluster::LocalDelivery::Scope kPlainOnly{true, {}};
  // Every copy of this publish, here and on other nodes, carries the same identity.
  message->origin = core_.broker().origin();
  message->origin_seq = core_.broker().NextOriginSeq();
  records::Message rec = ToRecord(*message);
  core_.Publish(std::move(message), &kPlainOnly);
  if (!done) {
    router->Forward(rec, nullptr);
    core_.CommitIfLarge();
    return;
  }
  const uint64_t ticket = core_.OpenAck(std::move(done), 2);
  WorkerCore* core = &core_;
  core_.AfterCommit([core, ticket](const absl::Status& st) { core->CompleteAck(ticket, st); });
  router->Forward(rec, [core, ticket](const absl::Status& st) {
    core->worker().Post([core, ticket, st] { core->CompleteAck(ticket, st); });
  });
  core_.CommitIfLarge();
}

uint64_t WorkerCore::OpenAck(TopicOwner::Done done, int parts) {
  acks_.push_back(PendingAck{std::move(done), parts, absl::OkStatus()});
  return acks_base_ + acks_.size() - 1;
}

void WorkerCore::CompleteAck(uint64_t ticket, const absl::Status& status) {
  if (ticket < acks_base_ || ticket - acks_base_ >= acks_.size()) return;
  PendingAck& a = acks_[ticket - acks_base_];
  if (!status.ok() && a.status.ok()) a.status = status;
  --a.parts_left;
  while (!acks_.empty() && acks_.front().parts_left <= 0) {
    PendingAck front = std::move(acks_.front());
    acks_.pop_front();
    ++acks_base_;
    if (front.done) front.done(front.status);
  }
}

void WorkerCore::UpdateRetained(const Message& message) {
  std::unique_lock<std::mutex> sync_lock;
  if (broker_.retained_syncing()) sync_lock = broker_.NoteRetainedUpdate(message.topic);
  const config::MqttConfig& cfg = broker_.mqtt();
  if (message.payload.empty()) {
    records::Message rec;
    rec.set_topic(message.topic);
    broker_.retained().Set(rec).IgnoreError();  // clearing cannot exceed a limit
    batch().DeleteRetained(message.topic);
    return;
  }
  if (cfg.max_retained_payload() != 0 && message.payload.size() > cfg.max_retained_payload()) {
    stats_.Add(stats_.retained_rejected_size);
    return;
  }
  records::Message rec = ToRecord(message);
  if (!broker_.retained().Set(rec).ok()) {
    stats_.Add(stats_.retained_rejected_count);
    return;
  }
  // $SYS statistics are regenerated after a restart: not worth a write every interval.
  if (message.topic.rfind("$SYS/", 0) == 0) return;
  batch().PutRetained(rec);
}

storage::Batch& WorkerCore::batch() {
  ScheduleFlush();
  return batch_;
}

void WorkerCore::AfterCommit(absl::AnyInvocable<void(const absl::Status&)> fn) {
  after_commit_.push_back(std::move(fn));
  ScheduleFlush();
}

void WorkerCore::ReleaseStored(const std::string& client_id, const Message& message) {
  batch().DeleteEntry(client_id, message.topic, message.id);
  if (message.durable_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    batch().DeleteMessage(message.topic, message.id);
  }
}

void WorkerCore::CommitPending() {
  if (batch_.empty() && after_commit_.empty()) return;
  std::vector<absl::AnyInvocable<void(const absl::Status&)>> callbacks;
  callbacks.swap(after_commit_);
  if (batch_.empty() && inflight_commits_ == 0) {
    // Nothing to write and nothing earlier still in flight: order is already kept.
    for (auto& cb : callbacks) cb(absl::OkStatus());
    return;
  }
  storage::Batch b = std::move(batch_);
  batch_ = storage::Batch();
  uncommitted_deliveries_ = 0;
  ++inflight_commits_;
  broker_.storage().Commit(
      std::move(b), [this, callbacks = std::move(callbacks)](absl::Status st) mutable {
        worker_.Post([this, st = std::move(st), callbacks = std::move(callbacks)]() mutable {
          --inflight_commits_;
          if (!st.ok()) {
            stats_.Add(stats_.storage_errors);
            SHARDMQ_LOG(ERROR) << "storage write failed: " << st;
          }
          for (auto& cb : callbacks) cb(st);
        });
      });
}

void WorkerCore::Dispatch(std::vector<Delivery>& deliveries, const std::vector<int>& targets,
                          const std::vector<LocationSlot*>& slots) {
  for (size_t i = 0; i < deliveries.size(); ++i) {
    Delivery& d = deliveries[i];
    const int target = targets[i];
    if (target < 0) {  // the session has ended
      if (d.durable) ReleaseStored(d.client_id, *d.message);
      continue;
    }
    if (target == index()) {
      // The slot says whether the session is here; read now, not before the loop: an earlier
      // delivery of this loop may have ended or moved it.
      if (Session* s = slots[i]->local; s != nullptr) {
        DeliverTo(*s, std::move(d));
      } else {
        DeliverLocal(std::move(d));
      }
    } else if (d.qos == 0 && !d.retain_on_subscribe && PeerCongested(target, d.client_id)) {
      stats_.Add(stats_.dropped_qos0_backpressure);
    } else {
      std::vector<Delivery>& box = outbox_[target];
      if (box.empty()) box.reserve(deliveries.size());
      box.push_back(std::move(d));
      ScheduleFlush();
    }
  }
}

void WorkerCore::DeliverLocal(Delivery&& d) {
  // Look-ups by the hash the client id carries (SharedString::hash): nothing is hashed here.
  const std::string_view cid = d.client_id.view();
  const size_t hash = d.client_id.hash();
  if (auto f = forwarding_.find(cid, hash); f != forwarding_.end()) {
    d.forwarded = true;
    outbox_[f->second.to].push_back(std::move(d));
    ScheduleFlush();
    return;
  }
  Session* s = FindSessionOf(d.client_id);
  if (s == nullptr) {
    auto p = pending_connects_.find(cid, hash);
    if (p != pending_connects_.end() && !d.forwarded) {
      p->second.held.push_back(std::move(d));
    } else if (d.durable) {
      ReleaseStored(d.client_id, *d.message);
    }
    return;
  }
  DeliverTo(*s, std::move(d));
}

void WorkerCore::DeliverTo(Session& s, Delivery&& d) {
  if (s.moving_in && !d.forwarded) {
    s.held.push_back(std::move(d));
    return;
  }
  if (s.importing) {  // a hand-off copy: held until the old leader's state is in
    if (d.session_gen != s.gen()) return;
    s.import_held.push_back(std::move(d));
    return;
  }
  s.Enqueue(std::move(d));
}

void WorkerCore::SetCongested(const std::string& client_id, bool congested) {
  std::lock_guard lock(congested_mu_);
  const bool changed = congested ? congested_.insert(client_id).second
                                 : congested_.erase(client_id) > 0;
  if (changed) congested_version_.fetch_add(1, std::memory_order_release);
}

bool WorkerCore::PeerCongested(int worker, const std::string& client_id) {
  WorkerCore& peer = broker_.core(worker);
  PeerCongestion& copy = peer_congestion_[static_cast<size_t>(worker)];
  if (peer.congested_version_.load(std::memory_order_acquire) != copy.version) {
    std::lock_guard lock(peer.congested_mu_);
    copy.sessions = peer.congested_;
    copy.version = peer.congested_version_.load(std::memory_order_relaxed);
  }
  return !copy.sessions.empty() && copy.sessions.contains(client_id);
}

void WorkerCore::ScheduleFlush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  worker_.Post([this] {
    flush_scheduled_ = false;
    FlushOutboxes();
  });
}

void WorkerCore::FlushOutboxes() {
  CommitPending();
  for (int t = 0; t < static_cast<int>(outbox_.size()); ++t) FlushOutbox(t);
}

void WorkerCore::FlushOutbox(int target) {
  if (outbox_[target].empty()) return;
  // The stored queue entries of these deliveries must reach the storage queue before anything
  // the target worker writes about them (e.g. moving them to in-flight): commits are applied in
  // the order they are issued.
  if (!batch_.empty()) CommitPending();
  std::vector<Delivery> batch;
  batch.swap(outbox_[target]);
  WorkerCore& tc = broker_.core(target);
  tc.worker().Post([&tc, batch = std::move(batch)]() mutable {
    for (Delivery& d : batch) tc.DeliverLocal(std::move(d));
  });
}

void WorkerCore::PostTo(int target, absl::AnyInvocable<void(WorkerCore&)> fn) {
  FlushOutbox(target);
  WorkerCore& tc = broker_.core(target);
  tc.worker().Post([&tc, fn = std::move(fn)]() mutable { fn(tc); });
}

void WorkerCore::Broadcast(std::function<void(WorkerCore&)> fn, absl::AnyInvocable<void()> done) {
  fn(*this);
  int n = broker_.worker_count();
  if (n == 1) {
    if (done) done();
    return;
  }
  std::shared_ptr<AckState> state;
  if (done) {
    state = std::make_shared<AckState>();
    state->remaining = n - 1;
    state->done = std::move(done);
  }
  auto shared_fn = std::make_shared<std::function<void(WorkerCore&)>>(std::move(fn));
  int origin = index();
  for (int t = 0; t < n; ++t) {
    if (t == origin) continue;
    PostTo(t, [shared_fn, state, origin](WorkerCore& w) {
      (*shared_fn)(w);
      if (state) {
        w.PostTo(origin, [state](WorkerCore&) {
          if (--state->remaining == 0) state->done();
        });
      }
    });
  }
}

void WorkerCore::AnnounceLocation(Session& session, absl::AnyInvocable<void()> done) {
  SessionLocation loc{index(), session.online(), session.persistent(), session.gen(),
                      session.NextLocationVersion()};
  std::string cid = session.client_id();
  Broadcast([cid, loc](WorkerCore& w) { w.routes().SetLocation(cid, loc); }, std::move(done));
}

void WorkerCore::Connect(std::shared_ptr<ConnectionHandler> handler, SessionRequest request) {
  ConnectAttempt(std::move(handler), std::move(request), 0);
}

void WorkerCore::ConnectAttempt(std::shared_ptr<ConnectionHandler> handler,
                                SessionRequest request, int tries) {
  const std::string cid = request.client_id;
  if (!ServedHere(cid)) {
    // The session's partition froze for a hand-off since the connection was placed, or (a
    // connect that retried, RetryConnect) has even moved to another node: its sessions take no
    // client here any more (the client connects again, and is placed anew).
    SHARDMQ_LOG(INFO) << "connect of " << cid << " refused: its session is moving or has "
                      << "moved to another node";
    handler->RejectConnect(codec::ReasonCode::kServerUnavailable);
    return;
  }
  int from = -1;
  switch (broker_.Claim(cid, index(), &from)) {
    case BrokerCore::ClaimResult::kBusy:
      RetryConnect(std::move(handler), std::move(request), tries);
      return;
    case BrokerCore::ClaimResult::kNew: {
      Session& s = CreateSession(cid);
      FinishConnect(std::move(handler), s, false);
      return;
    }
    case BrokerCore::ClaimResult::kExisting:
      break;
  }
  if (from != index()) {
    pending_connects_[cid] = PendingConnect{std::move(handler), request, {}};
    int me = index();
    bool clean = request.clean_start;
    PostTo(from, [cid, me, clean](WorkerCore& w) { w.DetachForMove(cid, me, clean); });
    return;
  }
  // The session is on this worker.
  Session* s = FindSession(cid);
  if (s != nullptr && s->online()) {
    s->connection()->Kick(codec::ReasonCode::kSessionTakenOver);
    s = FindSession(cid);  // a session with expiry 0 ended with its connection
  }
  bool present = s != nullptr;
  if (s != nullptr && request.clean_start) {
    EndSession(*s);
    s = nullptr;
    present = false;
  }
  if (s == nullptr) s = &CreateSession(cid);
  FinishConnect(std::move(handler), *s, present);
}

bool WorkerCore::ServedHere(const std::string& client_id) {
  if (broker_.router() == nullptr) return true;
  auto place = broker_.router()->PlaceSession(client_id);
  return place.ok() && place->local;
}

bool WorkerCore::HandingOff(const std::string& client_id) {
  if (broker_.router() == nullptr) return false;
  auto place = broker_.router()->PlaceSession(client_id);
  return !place.ok() && place.status().code() == absl::StatusCode::kAborted;
}

void WorkerCore::RetryConnect(std::shared_ptr<ConnectionHandler> handler, SessionRequest request,
                              int tries) {
  // Another connect with the same client id is in progress (rare: reconnect storms). Retry
  // every 5 ms for up to connect_timeout.
  if (tries * 5 > static_cast<int>(broker_.mqtt().connect_timeout()) * 1000) {
    handler->RejectConnect(codec::ReasonCode::kServerBusy);
    return;
  }
  auto timer = std::make_shared<boost::asio::steady_timer>(worker_.io());
  timer->expires_after(std::chrono::milliseconds(5));
  timer->async_wait([this, timer, handler = std::move(handler), request = std::move(request),
                     tries](const boost::system::error_code&) mutable {
    ConnectAttempt(std::move(handler), std::move(request), tries + 1);
  });
}

void WorkerCore::FinishConnect(std::shared_ptr<ConnectionHandler> handler, Session& session,
                               bool present) {
  const std::string cid = session.client_id();
  bool moving = session.moving_in;
  if (session.frozen() && HandingOff(cid)) {
    // It came from another worker while its partition froze for a hand-off (the connect
    // raced the freeze): it stays as it is; the client connects again. (A frozen session of a
    // partition not handed off from here is a copy this node imported and now leads.)
    SHARDMQ_LOG(INFO) << "connect of " << cid << " refused: its session is moving to another "
                      << "node";
    handler->RejectConnect(codec::ReasonCode::kServerUnavailable);
  } else {
    handler->OnSessionReady(session, present);
  }
  // OnSessionReady may have ended the session (connection already gone, transient session).
  if (!moving) {
    if (FindSession(cid) != nullptr) {
      broker_.Settle(cid, index());
    } else {
      broker_.ReleaseClaim(cid, index());
    }
  }
}

void WorkerCore::DetachForMove(const std::string& client_id, int to, bool clean_start) {
  Session* s = FindSession(client_id);
  auto arrive = [client_id, this](std::unique_ptr<Session> session) {
    int from = index();
    return [client_id, from, session = std::move(session)](WorkerCore& w) mutable {
      w.SessionArrived(client_id, from, std::move(session));
    };
  };
  if (s == nullptr || s->moving_in) {
    // Ended meanwhile (or, impossibly, still moving in: the directory serialises moves).
    PostTo(to, arrive(nullptr));
    return;
  }
  if (s->online()) {
    s->connection()->Kick(codec::ReasonCode::kSessionTakenOver);
    s = FindSession(client_id);  // a session with expiry 0 ended with its connection
    if (s == nullptr) {
      PostTo(to, arrive(nullptr));
      return;
    }
  }
  if (clean_start) {
    EndSession(*s);
    PostTo(to, arrive(nullptr));
    return;
  }
  auto it = sessions_.find(client_id);
  std::unique_ptr<Session> owned = std::move(it->second);
  sessions_.erase(it);
  routes_.DetachSession(client_id);
  stats_.sessions.fetch_sub(1, std::memory_order_relaxed);
  stats_.subscriptions.fetch_sub(static_cast<int64_t>(owned->subscriptions.size()),
                                 std::memory_order_relaxed);
  owned->DetachFromWorker();
  forwarding_[client_id] = Forward{to, broker_.worker_count()};
  PostTo(to, arrive(std::move(owned)));
}

void WorkerCore::SessionArrived(const std::string& client_id, int from,
                                std::unique_ptr<Session> session) {
  auto p = pending_connects_.find(client_id);
  if (p == pending_connects_.end()) return;  // cannot happen: the directory entry was ours
  PendingConnect pc = std::move(p->second);
  pending_connects_.erase(p);
  if (session == nullptr) {
    Session& fresh = CreateSession(client_id);
    FinishConnect(std::move(pc.handler), fresh, false);
    return;
  }
  Session& ref = *session;
  sessions_[client_id] = std::move(session);
  routes_.AttachSession(client_id, &ref);
  stats_.sessions.fetch_add(1, std::memory_order_relaxed);
  stats_.subscriptions.fetch_add(static_cast<int64_t>(ref.subscriptions.size()),
                                 std::memory_order_relaxed);
  ref.AttachToWorker(*this);
  ref.moving_in = true;
  ref.held = std::move(pc.held);
  // Broadcast the new location; every worker acknowledges to the old worker (see top).
  SessionLocation loc{index(), true, ref.persistent(), ref.gen(), ref.NextLocationVersion()};
  int n = broker_.worker_count();
  for (int t = 0; t < n; ++t) {
    PostTo(t, [client_id, loc, from](WorkerCore& w) {
      w.routes().SetLocation(client_id, loc);
      w.PostTo(from, [client_id](WorkerCore& old) { old.LocationAck(client_id); });
    });
  }
  FinishConnect(std::move(pc.handler), ref, true);
}

void WorkerCore::LocationAck(const std::string& client_id) {
  auto it = forwarding_.find(client_id);
  if (it == forwarding_.end()) return;
  if (--it->second.acks_left > 0) return;
  int to = it->second.to;
  forwarding_.erase(it);
  PostTo(to, [client_id](WorkerCore& w) { w.MoveComplete(client_id); });
}

void WorkerCore::MoveComplete(const std::string& client_id) {
  Session* s = FindSession(client_id);
  if (s == nullptr || !s->moving_in) {
    broker_.ReleaseClaim(client_id, index());  // the session ended while moving in
    return;
  }
  s->moving_in = false;
  std::vector<Delivery> held;
  held.swap(s->held);
  for (Delivery& d : held) s->Enqueue(std::move(d));
  broker_.Settle(client_id, index());
}

void WorkerCore::OnSessionOffline(Session& session) { AnnounceLocation(session); }

void WorkerCore::EndSession(Session& session) {
  const std::string cid = session.client_id();
  const uint64_t gen = session.gen();
  session.PublishWill();
  struct Removal {
    std::string group;
    std::string filter;
  };
  std::vector<Removal> removals;
  for (const auto& [full, opts] : session.subscriptions) {
    topic::SharedFilter shared;
    if (topic::ParseShared(full, &shared) == topic::ParseSharedResult::kShared) {
      removals.push_back({std::string(shared.group), std::string(shared.filter)});
    } else {
      removals.push_back({"", full});
    }
  }
  stats_.subscriptions.fetch_sub(static_cast<int64_t>(session.subscriptions.size()),
                                 std::memory_order_relaxed);
  if (cluster::Router* router = broker_.router()) {
    for (const Removal& r : removals) router->RemoveRoute(r.filter, r.group);
  }
  Broadcast([cid, gen, removals = std::move(removals)](WorkerCore& w) {
    for (const auto& r : removals) w.routes().Remove(cid, r.group, r.filter, gen);
    w.routes().RemoveLocation(cid, gen);
  });
  session.DropStored();  // deletes its records and releases stored message bodies
  bool moving = session.moving_in;
  routes_.DetachSession(cid);
  sessions_.erase(cid);
  stats_.sessions.fetch_sub(1, std::memory_order_relaxed);
  if (!moving) broker_.Release(cid, index());
}

void WorkerCore::RegisterConnection(ConnectionHandler* handler) {
  handler->slot_ = connections_.size();
  connections_.push_back(ConnectionSlot{handler, 0});
  if (!ticker_) ScheduleTick();
}

void WorkerCore::UnregisterConnection(ConnectionHandler* handler) {
  const size_t i = handler->slot_;
  if (i >= connections_.size() || connections_[i].handler != handler) return;
  connections_[i] = connections_.back();
  connections_[i].handler->slot_ = i;
  connections_.pop_back();
  handler->slot_ = SIZE_MAX;
}

void WorkerCore::SetDeadline(ConnectionHandler* handler, int64_t deadline_ms) {
  const size_t i = handler->slot_;
  if (i < connections_.size() && connections_[i].handler == handler) {
    connections_[i].deadline_ms = deadline_ms;
  }
}

void WorkerCore::ScheduleTick() {
  if (!ticker_) ticker_ = std::make_unique<boost::asio::steady_timer>(worker_.io());
  ticker_->expires_after(kDeadlineTick);
  ticker_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || !ticker_) return;
    Tick();
    if (ticker_) ScheduleTick();
  });
}

void WorkerCore::Tick() {
  const int64_t now = broker_.clock().SteadyMs();
  std::vector<std::shared_ptr<ConnectionHandler>> due;
  for (ConnectionSlot& slot : connections_) {
    if (slot.deadline_ms != 0 && slot.deadline_ms <= now) {
      slot.deadline_ms = 0;
      due.push_back(slot.handler->shared_from_this());
    }
  }
  // Outside the loop: a handler may close (and unregister) itself.
  for (auto& handler : due) handler->OnDeadline(now);
}

void WorkerCore::StartExpirySweeper(std::chrono::milliseconds interval) {
  sweeper_ = std::make_unique<boost::asio::steady_timer>(worker_.io());
  sweeper_->expires_after(interval);
  sweeper_->async_wait([this, interval](const boost::system::error_code& ec) {
    if (ec || !sweeper_) return;
    const int64_t now = broker_.clock().NowMs();
    for (auto& [cid, s] : sessions_) s->SweepExpired(now);
    StartExpirySweeper(interval);
  });
}

void WorkerCore::CloseAll() {
  std::vector<std::shared_ptr<ConnectionHandler>> all;
  all.reserve(connections_.size());
  for (const ConnectionSlot& slot : connections_) all.push_back(slot.handler->shared_from_this());
  for (auto& h : all) h->Kick(codec::ReasonCode::kServerShuttingDown);
}

// ---------------------------------------------------------------- relayed connections

void WorkerCore::OpenRelayed(const std::string& origin, const std::string& key,
                             cluster::Router::RelayOpenArgs args) {
  if (relayed_in_.contains(key)) return;  // a repeated open: the first one stands
  auto rc = std::make_shared<RelayedConnection>(*this, origin, key, args.conn, args.peer,
                                                broker_.NextRelayedId());
  auto handler = std::make_shared<ConnectionHandler>(*this, *rc);
  handler->SetRelayedIdentity(std::move(args.client_id), args.assigned, origin);
  relayed_in_.emplace(key, rc);
  rc->Start(std::move(handler), args.data);
}

void WorkerCore::RelayedIn(const std::string& key, std::string_view data, bool close) {
  auto it = relayed_in_.find(key);
  if (it == relayed_in_.end()) return;  // closed here already
  std::shared_ptr<RelayedConnection> rc = it->second;
  if (!data.empty()) rc->Receive(data);
  if (close) rc->Lost();
}

void WorkerCore::RelayedCongestion(const std::string& key, bool congested) {
  auto it = relayed_in_.find(key);
  if (it != relayed_in_.end()) it->second->SetFrontendCongested(congested);
}

void WorkerCore::ForgetRelayed(const std::string& key) { relayed_in_.erase(key); }

uint64_t WorkerCore::RegisterRelay(std::shared_ptr<ConnectionHandler> handler) {
  const uint64_t conn = (++next_relay_ << 8) | static_cast<uint64_t>(index());
  relays_out_.emplace(conn, std::move(handler));
  return conn;
}

void WorkerCore::RelayReply(const std::string& from, uint64_t conn, std::string_view data,
                            bool close, bool not_leader, int64_t consumed) {
  auto it = relays_out_.find(conn);
  if (it == relays_out_.end()) return;
  std::shared_ptr<ConnectionHandler> handler = it->second.lock();
  if (handler == nullptr) {
    relays_out_.erase(it);
    return;
  }
  handler->OnRelayReply(from, data, close, not_leader, consumed);
}

void WorkerCore::RelayNodeGone(const std::string& node) {
  std::vector<std::shared_ptr<RelayedConnection>> lost;
  for (const auto& [key, rc] : relayed_in_) {
    if (rc->origin() == node) lost.push_back(rc);
  }
  for (auto& rc : lost) rc->Lost();
  std::vector<std::shared_ptr<ConnectionHandler>> cut;
  for (const auto& [conn, weak] : relays_out_) {
    auto h = weak.lock();
    if (h && h->relay_node() == node) cut.push_back(std::move(h));
  }
  for (auto& h : cut) h->OnRelayNodeGone();
}

void WorkerCore::KickLostSessions(const std::vector<bool>& lost) {
  std::vector<std::shared_ptr<ConnectionHandler>> kick;
  for (const auto& entry : sessions_) {
    const Session& session = *entry.second;
    ConnectionHandler* c = session.connection();
    if (c == nullptr ||
        !lost[PartitionOf(session.client_id(), static_cast<uint32_t>(lost.size()))]) {
      continue;
    }
    kick.push_back(c->shared_from_this());
  }
  if (!kick.empty()) {
    SHARDMQ_LOG(INFO) << "disconnecting " << kick.size() << " client(s) of worker " << index()
                      << ": their sessions' partitions moved to another node";
  }
  for (auto& c : kick) c->Kick(codec::ReasonCode::kUseAnotherServer);
}

// ---------------------------------------------------------------- BrokerCore

namespace {
uint64_t RandomOrigin() {
  std::random_device rd;
  uint64_t v = 0;
  while (v == 0) v = (uint64_t{rd()} << 32) ^ rd();
  return v;
}
}  // namespace

BrokerCore::BrokerCore(const config::Config& config, storage::Storage& storage,
                       storage::RetainedIndex& retained, const Clock& clock,
                       std::vector<net::Worker*> workers)
    : config_(config),
      storage_(storage),
      retained_(retained),
      clock_(clock),
      origin_(RandomOrigin()),
      started_at_ms_(clock.NowMs()) {
  for (net::Worker* w : workers) cores_.push_back(std::make_unique<WorkerCore>(*this, *w));
  for (auto& c : cores_) {
    c->outbox_.resize(cores_.size());
    c->peer_congestion_.resize(cores_.size());
  }
  for (const std::string& f : config.mqtt().latest_only_filters()) latest_only_filters_.push_back(f);
}

bool BrokerCore::LatestOnly(std::string_view topic) const {
  for (const std::string& f : latest_only_filters_) {
    if (topic::Matches(f, topic)) return true;
  }
  return false;
}

void BrokerCore::Recover(storage::Snapshot snapshot) {
  const int64_t now = clock_.NowMs();
  if (snapshot.max_message_id >= next_message_id_.load()) {
    next_message_id_.store(snapshot.max_message_id + 1);
  }
  for (const records::Message& r : snapshot.retained) retained_.Set(r).IgnoreError();  // as before
  // One shared body per stored message, with its reference count.
  absl::flat_hash_map<uint64_t, std::shared_ptr<Message>> bodies;
  for (auto& [id, rec] : snapshot.messages) {
    auto m = std::make_shared<Message>(FromRecord(rec));
    m->id = id;
    bodies[id] = std::move(m);
  }
  size_t entries = 0;
  for (storage::StoredSession& stored : snapshot.sessions) {
    const std::string cid = stored.session.client_id();
    int w = static_cast<int>(Hash64(cid) % cores_.size());
    WorkerCore& wc = *cores_[w];
    Session& s = wc.CreateSession(cid);
    entries += stored.entries.size();
    s.Restore(stored, bodies, now);
    {
      std::lock_guard lock(dir_mu_);
      directory_[cid] = DirEntry{w, false};
    }
    wc.stats().subscriptions.fetch_add(static_cast<int64_t>(s.subscriptions.size()),
                                       std::memory_order_relaxed);
    // Routes and location straight into every replica: nothing runs yet.
    SessionLocation loc{w, false, s.persistent(), s.gen(), s.NextLocationVersion()};
    for (auto& c : cores_) {
      c->routes().SetLocation(cid, loc);
      for (const auto& [full, o] : s.subscriptions) {
        RouteEntry e;
        e.client_id = cid;
        e.session_gen = s.gen();
        topic::SharedFilter shared;
        if (topic::ParseShared(full, &shared) == topic::ParseSharedResult::kShared) {
          e.group = std::string(shared.group);
          e.filter = std::string(shared.filter);
        } else {
          e.filter = full;
        }
        e.qos = o.qos;
        e.no_local = o.no_local;
        e.retain_as_published = o.retain_as_published;
        e.subscription_id = o.subscription_id;
        c->routes().Add(e);
      }
    }
    // Sessions that were connected when the node stopped lost their connection now.
    int64_t disconnected_at = stored.session.disconnected_at_ms() != 0
                                  ? static_cast<int64_t>(stored.session.disconnected_at_ms())
                                  : now;
    s.ArmOfflineTimers(disconnected_at, now, /*may_publish_now=*/false);
  }
  SHARDMQ_LOG(INFO) << "recovered " << snapshot.sessions.size() << " sessions, " << entries
                    << " queued/in-flight messages, " << snapshot.retained.size()
                    << " retained messages";
}

BrokerCore::~BrokerCore() = default;

void BrokerCore::RegisterRecoveredRoutes() {
  if (router_ == nullptr) return;
  for (auto& c : cores_) {
    for (const auto& [cid, s] : c->sessions_) {
      for (const auto& [full, o] : s->subscriptions) {
        topic::SharedFilter shared;
        if (topic::ParseShared(full, &shared) == topic::ParseSharedResult::kShared) {
          router_->AddRoute(std::string(shared.filter), std::string(shared.group), nullptr);
        } else {
          router_->AddRoute(full, "", nullptr);
        }
      }
    }
  }
}

void BrokerCore::DeliverLocal(records::Message message, Scope scope) {
  if (peer_backlog_.load(std::memory_order_relaxed) >= kMaxPeerBacklog) {
    if (net::Worker::Current() != nullptr) {
      // A worker's own call (this node owns the topic and picked itself for a shared
      // subscription): waiting would wait for the workers, this one included. QoS 0 is
      // dropped; QoS 1/2 goes past the bound.
      if (message.qos() == 0) {
        peer_backlog_dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      peer_backlog_overruns_.fetch_add(1, std::memory_order_relaxed);
    } else {
      peer_stream_waits_.fetch_add(1, std::memory_order_relaxed);
      // A peer stream: held until the workers catch up (or the node stops), whatever the QoS.
      // The sender's link then fills up, and it drops QoS 0 there, before serialising, sending
      // and decoding it (ClusterRouter::kQos0LinkBacklog).
      while (peer_backlog_.load(std::memory_order_relaxed) >= kMaxPeerBacklog &&
             !peer_stopping_.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }
  const int w = static_cast<int>(Hash64(message.topic()) % cores_.size());
  WorkerCore* core = cores_[w].get();
  peer_backlog_.fetch_add(1, std::memory_order_relaxed);
  core->worker().Post([this, core, m = std::make_shared<Message>(FromRecord(message)),
                       scope = std::move(scope)]() mutable {
    peer_backlog_.fetch_sub(1, std::memory_order_relaxed);
    core->Publish(std::move(m), &scope);
  });
}

// A relayed connection's name on S: the front-end, its incarnation and its id for the
// connection. All of one connection's items go to the worker of hash(name).
std::string BrokerCore::RelayKey(const std::string& origin, int64_t origin_lease, uint64_t conn) {
  return origin + "/" + std::to_string(origin_lease) + "/" + std::to_string(conn);
}

WorkerCore* BrokerCore::RelayCore(const std::string& key) {
  return cores_[Hash64(key) % cores_.size()].get();
}

void BrokerCore::OnRelayOpen(const std::string& origin, int64_t origin_lease,
                             cluster::Router::RelayOpenArgs args) {
  std::string key = RelayKey(origin, origin_lease, args.conn);
  WorkerCore* core = RelayCore(key);
  core->worker().Post([core, origin, key = std::move(key), args = std::move(args)]() mutable {
    core->OpenRelayed(origin, key, std::move(args));
  });
}

void BrokerCore::OnRelayData(const std::string& origin, int64_t origin_lease, uint64_t conn,
                             bool upstream, std::string data, bool close, bool not_leader,
                             int64_t consumed) {
  if (upstream) {
    std::string key = RelayKey(origin, origin_lease, conn);
    WorkerCore* core = RelayCore(key);
    core->worker().Post([core, key = std::move(key), data = std::move(data), close] {
      core->RelayedIn(key, data, close);
    });
    return;
  }
  const size_t w = conn & 0xFF;  // RegisterRelay
  if (w >= cores_.size()) return;
  WorkerCore* core = cores_[w].get();
  core->worker().Post([core, origin, conn, data = std::move(data), close, not_leader, consumed] {
    core->RelayReply(origin, conn, data, close, not_leader, consumed);
  });
}

void BrokerCore::OnPartitionsLost(const std::vector<uint32_t>& lost, uint32_t partitions) {
  auto marks = std::make_shared<std::vector<bool>>(partitions, false);
  for (uint32_t p : lost) {
    if (p < partitions) (*marks)[p] = true;
  }
  for (auto& c : cores_) {
    WorkerCore* core = c.get();
    core->worker().Post([core, marks] { core->KickLostSessions(*marks); });
  }
}

namespace {
bool IsSys(std::string_view topic) { return topic.rfind("$SYS/", 0) == 0; }
}  // namespace

std::vector<records::Message> BrokerCore::RetainedSnapshot() {
  std::vector<records::Message> all = retained_.All(clock_.NowMs());
  std::erase_if(all, [](const records::Message& m) { return IsSys(m.topic()); });
  return all;
}

std::unique_lock<std::mutex> BrokerCore::NoteRetainedUpdate(const std::string& topic) {
  std::unique_lock lock(sync_mu_);
  sync_touched_.insert(topic);
  return lock;
}

void BrokerCore::OnRetainedSyncStarted(bool again) {
  std::lock_guard lock(sync_mu_);
  ++sync_generation_;
  if (!again || !retained_syncing_) sync_touched_.clear();
  sync_seen_.clear();
  sync_answered_ = false;
  sync_set_ = 0;
  sync_cleared_ = 0;
  retained_syncing_ = true;
}

void BrokerCore::OnRetainedSync(std::vector<records::Message> chunk, bool last,
                                const std::string& from) {
  std::vector<records::Message> apply;
  {
    std::lock_guard lock(sync_mu_);
    if (!retained_syncing_) return;
    sync_from_ = from;
    for (records::Message& m : chunk) {
      if (IsSys(m.topic())) continue;
      sync_seen_.insert(m.topic());
      apply.push_back(std::move(m));
    }
    if (last) {
      // Topics retained here that the peer does not have were cleared while this node was
      // away (a cleared topic is an empty retained message).
      for (std::string& topic : retained_.Topics()) {
        if (IsSys(topic) || sync_seen_.contains(topic)) continue;
        records::Message clear;
        clear.set_topic(std::move(topic));
        apply.push_back(std::move(clear));
      }
      sync_answered_ = true;
    }
    sync_pending_ += static_cast<int64_t>(apply.size()) + 1;  // + this call
  }
  for (records::Message& m : apply) {
    WorkerCore* core = cores_[Hash64(m.topic()) % cores_.size()].get();
    core->worker().Post([this, core, m = std::move(m)] {
      ApplySyncedRetained(*core, m);
      SyncTaskDone();
    });
  }
  SyncTaskDone();
}

void BrokerCore::ApplySyncedRetained(WorkerCore& core, const records::Message& message) {
  std::lock_guard lock(sync_mu_);
  if (!retained_syncing_ || sync_touched_.contains(message.topic())) return;
  if (message.payload().empty()) {
    retained_.Set(message).IgnoreError();
    core.batch().DeleteRetained(message.topic());
    ++sync_cleared_;
    return;
  }
  if (!retained_.Set(message).ok()) {
    core.stats().Add(core.stats().retained_rejected_count);
    return;
  }
  core.batch().PutRetained(message);
  ++sync_set_;
}

void BrokerCore::SyncTaskDone() {
  std::lock_guard lock(sync_mu_);
  if (--sync_pending_ > 0 || !sync_answered_ || !retained_syncing_) return;
  retained_syncing_ = false;
  SHARDMQ_LOG(INFO) << "retained messages caught up from node " << sync_from_ << ": "
                    << sync_set_ << " set, " << sync_cleared_ << " cleared";
}

void BrokerCore::OnRelayCongestion(const std::string& origin, int64_t origin_lease,
                                   uint64_t conn, bool congested) {
  std::string key = RelayKey(origin, origin_lease, conn);
  WorkerCore* core = RelayCore(key);
  core->worker().Post([core, key = std::move(key), congested] {
    core->RelayedCongestion(key, congested);
  });
}

void BrokerCore::OnNodeGone(const std::string& node) {
  for (auto& c : cores_) {
    WorkerCore* core = c.get();
    core->worker().Post([core, node] { core->RelayNodeGone(node); });
  }
}

BrokerCore::ClaimResult BrokerCore::Claim(const std::string& client_id, int by, int* from) {
  std::lock_guard lock(dir_mu_);
  auto [it, inserted] = directory_.try_emplace(client_id, DirEntry{by, true});
  if (inserted) return ClaimResult::kNew;
  if (it->second.busy) return ClaimResult::kBusy;
  *from = it->second.worker;
  it->second.worker = by;
  it->second.busy = true;
  return ClaimResult::kExisting;
}

void BrokerCore::Settle(const std::string& client_id, int worker) {
  std::lock_guard lock(dir_mu_);
  auto it = directory_.find(client_id);
  if (it != directory_.end() && it->second.worker == worker) it->second.busy = false;
}

void BrokerCore::Release(const std::string& client_id, int worker) {
  std::lock_guard lock(dir_mu_);
  auto it = directory_.find(client_id);
  // A busy entry belongs to a connect in progress, which settles or releases it itself.
  if (it != directory_.end() && it->second.worker == worker && !it->second.busy) {
    directory_.erase(it);
  }
}

void BrokerCore::ReleaseClaim(const std::string& client_id, int worker) {
  std::lock_guard lock(dir_mu_);
  auto it = directory_.find(client_id);
  if (it != directory_.end() && it->second.worker == worker) directory_.erase(it);
}

BrokerCore::Totals BrokerCore::GetTotals() {
  Totals t;
  for (auto& c : cores_) {
    WorkerStats& s = c->stats();
    auto r = [](auto& a) { return a.load(std::memory_order_relaxed); };
    t.clients_connected += r(s.clients_connected);
    t.connections_open += r(s.connections_open);
    t.messages_received += r(s.messages_received);
    t.messages_sent += r(s.messages_sent);
    t.bytes_received += r(s.bytes_received);
    t.bytes_sent += r(s.bytes_sent);
    t.sessions += r(s.sessions);
    t.subscriptions += r(s.subscriptions);
    t.dropped += r(s.dropped_queue_full) + r(s.dropped_qos0_offline) +
                 r(s.dropped_qos0_backpressure) + r(s.dropped_expired) + r(s.dropped_too_large);
  }
  return t;
}

}  // namespace shardmq::broker::session
