// Partition hand-off, the broker's part (cluster::LocalDelivery::Handoff*; the steps are in
// proto/cluster.proto, HandoffOffer). Sessions live on the worker of hash(client id) when they
// are created here, as at recovery; each step runs on every worker and gathers the results.
#include <algorithm>
#include <memory>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "broker/session/broker_core.h"
#include "broker/session/connection_handler.h"
#include "broker/session/session.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/topic.h"

namespace shardmq::broker::session {
namespace {

using Sessions = cluster::LocalDelivery::Sessions;

// Completes `done` with the first failure once `count` parts have finished.
class Countdown {
 public:
  Countdown(size_t count, std::function<void(const absl::Status&)> done)
      : left_(count), done_(std::move(done)) {
    if (left_ == 0) done_(absl::OkStatus());
  }
  void Finish(const absl::Status& st) {
    std::function<void(const absl::Status&)> done;
    absl::Status result;
    {
      std::lock_guard lock(mu_);
      if (!st.ok() && status_.ok()) status_ = st;
      if (--left_ != 0) return;
      done = std::move(done_);
      result = status_;
    }
    done(result);
  }

 private:
  std::mutex mu_;
  size_t left_;
  absl::Status status_;
  std::function<void(const absl::Status&)> done_;
};

// Gathers the sessions every worker contributes; `done` with all of them after the last.
class Gather {
 public:
  Gather(int parts, std::function<void(Sessions)> done) : left_(parts), done_(std::move(done)) {}
  void Add(Sessions part) {
    std::function<void(Sessions)> done;
    Sessions all;
    {
      std::lock_guard lock(mu_);
      for (auto& s : part) sessions_.push_back(std::move(s));
      if (--left_ != 0) return;
      done = std::move(done_);
      all = std::move(sessions_);
    }
    done(std::move(all));
  }

 private:
  std::mutex mu_;
  int left_;
  Sessions sessions_;
  std::function<void(Sessions)> done_;
};

}  // namespace

// ---------------------------------------------------------------- WorkerCore

std::vector<Session*> WorkerCore::SessionsOfPartition(uint32_t p, uint32_t parts) {
  std::vector<Session*> out;
  for (const auto& [cid, s] : sessions_) {
    if (PartitionOf(cid, parts) == p) out.push_back(s.get());
  }
  return out;
}

void WorkerCore::DiscardSession(Session& session) {
  if (ConnectionHandler* c = session.connection(); c != nullptr) {
    // A connect that got in before the partition froze (or a stale copy's client): it goes
    // first, and the session with it if it was not persistent.
    const std::string cid = session.client_id();
    const uint64_t gen = session.gen();
    c->shared_from_this()->Kick(codec::ReasonCode::kUseAnotherServer);
    Session* again = FindSession(cid);
    if (again == nullptr || again->gen() != gen) return;
  }
  Session& s = session;
  // No will: the session lives on at another node (or this was a copy).
  s.will.reset();
  for (Delivery& d : s.import_held) {
    if (d.durable) ReleaseStored(d.client_id, *d.message);
  }
  s.import_held.clear();
  EndSession(s);
}

void WorkerCore::HandoffFreeze(uint32_t p, uint32_t parts, Sessions* headers, bool late) {
  std::vector<Session*> sessions = SessionsOfPartition(p, parts);
  if (late) std::erase_if(sessions, [](Session* s) { return s->frozen(); });
  const absl::flat_hash_set<const Session*> ours(sessions.begin(), sessions.end());
  // Disconnect the clients first (a session with expiry 0 ends with its connection).
  std::vector<std::shared_ptr<ConnectionHandler>> kick;
  for (Session* s : sessions) {
    if (s->connection() != nullptr) kick.push_back(s->connection()->shared_from_this());
  }
  if (!kick.empty()) {
    SHARDMQ_LOG(INFO) << "partition " << p << ": disconnecting " << kick.size()
                      << " client(s) of worker " << index() << ": their sessions move to "
                      << "another node";
  }
  for (Session* s : sessions) s->Freeze();
  for (auto& c : kick) c->Kick(codec::ReasonCode::kUseAnotherServer);
  for (Session* s : SessionsOfPartition(p, parts)) {  // a kicked session may have ended
    if (!ours.contains(s)) continue;                 // not frozen by this round
    if (s->importing || s->imported) continue;  // a copy from an earlier hand-off, not ours
    records::SessionTransfer t;
    s->ExportHeader(&t);
    headers->push_back(std::move(t));
  }
}

void WorkerCore::HandoffPrepare(const records::SessionTransfer& offered,
                                std::function<void(const absl::Status&)> routed) {
  const std::string& cid = offered.session().client_id();
  if (Session* old = FindSession(cid); old != nullptr) {
    // Left from an earlier time this node held the partition (or an earlier attempt): the
    // old leader's copy is the current one.
    DiscardSession(*old);
  }
  Session& s = CreateSession(cid);
  s.importing = true;
  s.version = static_cast<codec::ProtocolVersion>(offered.session().protocol_version());
  s.expiry_s = std::max<uint32_t>(offered.session().expiry_interval_s(), 1);
  broker_.Adopt(cid, index());
  std::vector<RouteEntry> entries;
  for (const records::Subscription& sub : offered.subscriptions()) {
    const SubscriptionOptions o = OptionsOf(sub);
    s.subscriptions[sub.filter()] = o;
    RouteEntry e;
    e.client_id = cid;
    e.session_gen = s.gen();
    std::tie(e.filter, e.group) = RouteOf(sub.filter());
    e.qos = o.qos;
    e.no_local = o.no_local;
    e.retain_as_published = o.retain_as_published;
    e.subscription_id = o.subscription_id;
    entries.push_back(std::move(e));
  }
  stats_.subscriptions.fetch_add(static_cast<int64_t>(s.subscriptions.size()),
                                 std::memory_order_relaxed);
  // Offline and persistent: QoS 1/2 deliveries to it are stored before publishers' acks, as
  // for any persistent session (and every delivery of its queue is then sent the same way:
  // after its commit). They are held (Session::import_held) and stored again at the import,
  // after the old leader's entries.
  const SessionLocation loc{index(), false, true, s.gen(), s.NextLocationVersion()};
  std::vector<std::pair<std::string, std::string>> filters;
  for (const RouteEntry& e : entries) filters.emplace_back(e.filter, e.group);
  Broadcast(
      [cid, loc, entries = std::move(entries)](WorkerCore& w) {
        w.routes().SetLocation(cid, loc);
        for (const RouteEntry& e : entries) w.routes().Add(e);
      },
      [this, filters = std::move(filters), routed = std::move(routed)]() mutable {
        // Every replica has the routes: now the cluster's owners.
        cluster::Router* router = broker_.router();
        if (router == nullptr || filters.empty()) {
          routed(absl::OkStatus());
          return;
        }
        auto count = std::make_shared<Countdown>(filters.size(), std::move(routed));
        for (const auto& [filter, group] : filters) {
          router->AddRoute(filter, group, [count](const absl::Status& st) { count->Finish(st); });
        }
      });
}

void WorkerCore::HandoffExport(uint32_t p, uint32_t parts, Sessions* out) {
  for (Session* s : SessionsOfPartition(p, parts)) {
    if (!s->frozen()) continue;
    records::SessionTransfer t;
    s->Export(&t);
    out->push_back(std::move(t));
  }
}

void WorkerCore::HandoffImport(const records::SessionTransfer& t,
                               std::function<void(const absl::Status&)> done) {
  const std::string& cid = t.session().client_id();
  Session* s = FindSession(cid);
  if (s == nullptr || !s->importing) {
    done(absl::InternalError("no copy of session " + cid + " to fill in"));
    return;
  }
  // Stored as recovery would load it: fresh message ids in queue order, so the old leader's
  // entries come first, then what was held here.
  storage::StoredSession stored;
  stored.session = t.session();
  stored.subscriptions.assign(t.subscriptions().begin(), t.subscriptions().end());
  if (t.has_will()) stored.will = t.will();
  for (uint32_t id : t.incoming_qos2()) stored.incoming_qos2.push_back(static_cast<uint16_t>(id));
  absl::flat_hash_map<uint64_t, std::shared_ptr<Message>> bodies;
  absl::flat_hash_set<std::pair<uint64_t, uint64_t>> have;  // origin ids already queued
  storage::Batch& b = batch();
  b.PutSession(stored.session);
  for (const records::Subscription& sub : stored.subscriptions) b.PutSubscription(cid, sub);
  if (stored.will) b.PutWill(cid, *stored.will);
  for (uint16_t id : stored.incoming_qos2) b.PutIncomingQos2(cid, id);
  for (const records::QueueEntry& e : t.entries()) {
    if (e.message_id() >= static_cast<uint64_t>(t.messages_size())) continue;
    const records::Message& rec = t.messages(static_cast<int>(e.message_id()));
    const uint64_t id = broker_.NextMessageId();
    auto body = std::make_shared<Message>(FromRecord(rec));
    body->id = id;
    if (body->origin != 0) have.insert({body->origin, body->origin_seq});
    storage::Recipients recipients;
    recipients.Add(cid, e.qos(), e.retain(),
                   absl::MakeConstSpan(e.subscription_ids().data(),
                                       static_cast<size_t>(e.subscription_ids().size())));
    b.PutMessage(id, rec, std::move(recipients));
    records::QueueEntry entry = e;
    entry.set_message_id(id);
    if (entry.state() != records::QueueEntry::QUEUED && entry.packet_id() != 0) {
      b.PutInflight(cid, id, entry);
    }
    stored.entries.emplace_back(id, std::move(entry));
    bodies[id] = std::move(body);
  }
  const uint64_t gen = s->gen();
  AfterCommit([this, cid, gen, stored = std::move(stored), bodies = std::move(bodies),
               have = std::move(have), done = std::move(done)](const absl::Status& st) mutable {
    Session* s = FindSession(cid);
    if (s == nullptr || s->gen() != gen || !s->importing) {
      done(absl::AbortedError("the copy of session " + cid + " went away"));
      return;
    }
    if (!st.ok()) {
      done(st);
      return;
    }
    s->Restore(stored, bodies, broker_.clock().NowMs());
    s->importing = false;
    s->imported = true;  // timers start at the flip (HandoffFinish)
    s->Freeze();
    // What reached this node meanwhile, unless the old leader's entries hold it already:
    // stored after them (fresh ids), so a restart keeps the order.
    std::vector<Delivery> held = std::move(s->import_held);
    s->import_held.clear();
    size_t dropped = 0;
    for (Delivery& d : held) {
      // Stored under its own (older) id: finished there, and stored again below.
      if (d.durable) ReleaseStored(cid, *d.message);
      d.durable = false;
      if (d.message->origin != 0 && have.contains({d.message->origin, d.message->origin_seq})) {
        ++dropped;
        continue;
      }
      if (d.qos != 0) {
        auto copy = std::make_shared<Message>(*d.message);
        copy->id = broker_.NextMessageId();
        copy->durable_refs.store(1, std::memory_order_relaxed);
        storage::Recipients recipients;
        recipients.Add(cid, d.qos, d.retain, d.subscription_ids);
        batch().PutMessage(copy->id, ToRecord(*copy), std::move(recipients));
        d.message = std::move(copy);
        d.durable = true;
      }
      s->Enqueue(std::move(d));
    }
    if (dropped > 0) {
      SHARDMQ_LOG(DEBUG) << "session " << cid << ": " << dropped << " message(s) received "
                         << "both here and at the old leader kept once";
    }
    // From now on deliveries to it are stored before acknowledgements, as for any persistent
    // session; `done` once the held ones are durable too.
    AnnounceLocation(*s);
    AfterCommit([done = std::move(done)](const absl::Status& st2) { done(st2); });
  });
}

void WorkerCore::HandoffFinish(uint32_t p, uint32_t parts, bool outgoing, bool moved) {
  for (Session* s : SessionsOfPartition(p, parts)) {
    if (outgoing) {
      if (!s->frozen() || s->importing || s->imported) continue;
      if (moved) {
        DiscardSession(*s);  // it lives on at the new leader
      } else {
        s->Thaw();  // served here again
      }
    } else {
      if (!s->importing && !s->imported) continue;
      if (moved && s->imported) {
        s->Thaw();  // this node serves it now: its will and expiry timers start
      } else {
        DiscardSession(*s);  // the old leader keeps serving it
      }
    }
  }
}

// ---------------------------------------------------------------- BrokerCore

WorkerCore& BrokerCore::HomeOf(const std::string& client_id) {
  {
    std::lock_guard lock(dir_mu_);
    auto it = directory_.find(client_id);
    if (it != directory_.end()) return *cores_[it->second.worker];
  }
  return *cores_[Hash64(client_id) % cores_.size()];
}

void BrokerCore::Adopt(const std::string& client_id, int worker) {
  std::lock_guard lock(dir_mu_);
  directory_[client_id] = DirEntry{worker, false};
}

void BrokerCore::HandoffFreeze(uint32_t partition, uint32_t partitions,
                               std::function<void(Sessions)> done) {
  // Two rounds. The first freezes the partition's sessions on every worker. A session can be
  // between two workers at that moment (a connect on another worker took it over), in neither
  // worker's table: once every worker has flushed what it posted to the others, it has landed,
  // and the second round freezes what the first missed. (The router refuses connects for the
  // partition from before the first round on, and a connect that gets a frozen session is
  // turned away: WorkerCore::FinishConnect.)
  auto gather = std::make_shared<Gather>(2 * worker_count(), std::move(done));
  auto late = [this, partition, partitions, gather] {
    for (auto& c : cores_) {
      WorkerCore* core = c.get();
      core->worker().Post([core, partition, partitions, gather] {
        Sessions headers;
        core->HandoffFreeze(partition, partitions, &headers, /*late=*/true);
        gather->Add(std::move(headers));
      });
    }
  };
  auto flushed = std::make_shared<Countdown>(cores_.size(),
                                             [late](const absl::Status&) { late(); });
  for (auto& c : cores_) {
    WorkerCore* core = c.get();
    core->worker().Post([core, partition, partitions, gather, flushed] {
      Sessions headers;
      core->HandoffFreeze(partition, partitions, &headers);
      gather->Add(std::move(headers));
      core->Broadcast([](WorkerCore&) {}, [flushed] { flushed->Finish(absl::OkStatus()); });
    });
  }
}

void BrokerCore::OnHomeWorkers(
    Sessions sessions,
    void (WorkerCore::*step)(const records::SessionTransfer&,
                             std::function<void(const absl::Status&)>),
    cluster::Router::Done done) {
  auto count = std::make_shared<Countdown>(sessions.size(), std::move(done));
  for (records::SessionTransfer& t : sessions) {
    WorkerCore* core = &HomeOf(t.session().client_id());
    core->worker().Post([core, step, t = std::move(t), count] {
      (core->*step)(t, [count](const absl::Status& st) { count->Finish(st); });
    });
  }
}

void BrokerCore::HandoffPrepare(uint32_t partition, uint32_t partitions, Sessions offered,
                                cluster::Router::Done done) {
  OnHomeWorkers(std::move(offered), &WorkerCore::HandoffPrepare, std::move(done));
}

void BrokerCore::HandoffExport(uint32_t partition, uint32_t partitions,
                               std::function<void(Sessions)> done) {
  // First every delivery already on its way between workers lands in its session: each worker
  // broadcasts (which flushes its outboxes first) and waits for every worker's answer.
  auto gather = std::make_shared<Gather>(worker_count(), std::move(done));
  auto export_all = [this, partition, partitions, gather] {
    for (auto& c : cores_) {
      WorkerCore* core = c.get();
      core->worker().Post([core, partition, partitions, gather] {
        Sessions sessions;
        core->HandoffExport(partition, partitions, &sessions);
        gather->Add(std::move(sessions));
      });
    }
  };
  auto flushed = std::make_shared<Countdown>(
      cores_.size(), [export_all](const absl::Status&) { export_all(); });
  for (auto& c : cores_) {
    WorkerCore* core = c.get();
    core->worker().Post([core, flushed] {
      core->Broadcast([](WorkerCore&) {}, [flushed] { flushed->Finish(absl::OkStatus()); });
    });
  }
}

void BrokerCore::HandoffImport(uint32_t partition, uint32_t partitions, Sessions sessions,
                               cluster::Router::Done done) {
  OnHomeWorkers(std::move(sessions), &WorkerCore::HandoffImport, std::move(done));
}

void BrokerCore::HandoffFinish(uint32_t partition, uint32_t partitions, bool outgoing,
                               bool moved) {
  for (auto& c : cores_) {
    WorkerCore* core = c.get();
    core->worker().Post([core, partition, partitions, outgoing, moved] {
      core->HandoffFinish(partition, partitions, outgoing, moved);
    });
  }
}

}  // namespace shardmq::broker::session
