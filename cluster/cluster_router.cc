#include "cluster/cluster_router.h"

#include "common/hash.h"
#include "common/log.h"
#include "common/topic.h"

namespace shardmq::cluster {
namespace {

bool HasWildcard(const std::string& filter) {
  return filter.find_first_of("+#") != std::string::npos;
}

v1::PeerItem RouteItemOf(const std::pair<std::string, std::string>& key, bool add) {
  v1::PeerItem item;
  item.mutable_route()->set_filter(key.first);
  item.mutable_route()->set_group(key.second);
  item.mutable_route()->set_add(add);
  return item;
}

}  // namespace

ClusterRouter::ClusterRouter(std::string self_id, LocalDelivery& local)
    : self_(std::move(self_id)), local_(local) {
  // Hand-off attempts are numbered from the start time, so a restarted node's attempts never
  // repeat the numbers of its previous incarnation's.
  handoff_attempts_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count())
                      << 12;
  retry_thread_ = std::thread([this] { RetryLoop(); });
}

ClusterRouter::~ClusterRouter() { Stop(); }

void ClusterRouter::Stop() {
  std::map<std::string, std::shared_ptr<PeerLink>> links;
  std::map<uint32_t, Held> held;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    links.swap(links_);
    held.swap(held_);
  }
  retry_cv_.notify_all();
  gate_cv_.notify_all();
  for (auto& [p, h] : held) {
    for (HeldPublish& item : h.items) {
      if (item.done) item.done(absl::UnavailableError("the node is stopping"));
    }
  }
  if (retry_thread_.joinable() && retry_thread_.get_id() != std::this_thread::get_id()) {
    retry_thread_.join();
  }
  links.clear();  // joins the links' threads; their pending items fail
}

void ClusterRouter::Later(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  LaterLocked(std::move(fn));
}

void ClusterRouter::LaterLocked(std::function<void()> fn, std::chrono::milliseconds delay) {
  if (stopped_) return;
  const auto at = std::chrono::steady_clock::now() + delay;
  // In time order (most calls use the same delay, so this is usually the end).
  auto pos = later_.end();
  while (pos != later_.begin() && std::prev(pos)->first > at) --pos;
  later_.emplace(pos, at, std::move(fn));
  retry_cv_.notify_all();
}

void ClusterRouter::RetryLoop() {
  std::unique_lock lock(mu_);
  while (!stopped_) {
    if (later_.empty()) {
      retry_cv_.wait(lock);
      continue;
    }
    if (std::chrono::steady_clock::now() < later_.front().first) {
      retry_cv_.wait_until(lock, later_.front().first);
      continue;
    }
    std::function<void()> fn = std::move(later_.front().second);
    later_.pop_front();
    lock.unlock();
    fn();
    lock.lock();
  }
  later_.clear();
}

std::vector<ClusterRouter::Owner> ClusterRouter::OwnersOfLocked(const std::string& filter) const {
  std::vector<Owner> out;
  if (HasWildcard(filter)) {
    for (const auto& [id, m] : members_) {
      if (m.role() != "frontend") out.push_back(Owner{id, m.lease()});
    }
    return out;
  }
  if (map_.revision == 0 || map_.record.partitions() == 0) return out;
  const uint32_t p = PartitionOf(filter, map_.record.partitions());
  const std::string& leader = map_.LeaderOf(p);
  if (leader.empty()) return out;
  auto m = members_.find(leader);
  out.push_back(Owner{leader, m == members_.end() ? 0 : m->second.lease()});  // 0: down
  return out;
}

void ClusterRouter::RegisterLocked(const RouteKey& key, LocalFilter& lf,
                                   std::vector<Outgoing>* out) {
  const std::string& filter = key.first;
  const std::vector<Owner> owners = OwnersOfLocked(filter);
  // Failures matter only to AddRoute calls waiting; a resync just tries again next time.
  const bool waiting = !lf.waiters.empty();
  if (owners.empty() && waiting && lf.failure.ok()) {
    lf.failure = absl::UnavailableError(
        HasWildcard(filter) ? std::string("no live store node to hold the route")
                            : "no store node holds the partition of \"" + filter + "\" yet");
  }
  for (const Owner& o : owners) {
    if (lf.registered.contains(o) || lf.pending.contains(o)) continue;
    if (o.lease == 0) {
      if (waiting && lf.failure.ok()) {
        lf.failure = absl::UnavailableError("the owner of \"" + filter + "\", node " + o.node +
                                            ", is down");
      }
      continue;
    }
    if (o.node == self_) {  // in process
      owner_routes_.Add(self_, lease_, filter, key.second);
      std::vector<std::string> holders = GrantHoldersLocked(filter, key.second, self_);
      if (holders.empty()) {
        lf.registered.insert(o);
        continue;
      }
      // Nodes that do not forward the topics the route matches must stop skipping them first.
      lf.pending.insert(o);
      LaterLocked(
          [this, key, o, holders = std::move(holders)] {
            RevokeGrants(holders, [this, key, o](const absl::Status& st) {
              OnRouteAck(key, o,
                         st.ok() ? st : absl::FailedPreconditionError(std::string(st.message())));
            });
          },
          std::chrono::milliseconds(0));
      continue;
    }
    lf.pending.insert(o);
    v1::PeerItem item = RouteItemOf(key, true);
    if (!HasWildcard(filter)) {
      item.mutable_route()->set_map_revision(map_.revision);
      item.mutable_route()->set_epoch(map_.EpochOf(PartitionOf(filter, map_.record.partitions())));
    }
    out->push_back(Outgoing{o.node, std::move(item),
                            [this, key, o](const absl::Status& st) { OnRouteAck(key, o, st); }});
  }
}

void ClusterRouter::RouteAckLocked(const RouteKey& key, const Owner& owner,
                                   const absl::Status& st,
                                   std::vector<std::pair<Done, absl::Status>>* ready) {
  auto it = local_filters_.find(key);
  if (it == local_filters_.end()) return;  // removed meanwhile
  LocalFilter& lf = it->second;
  if (lf.pending.erase(owner) == 0) return;
  if (st.code() == absl::StatusCode::kFailedPrecondition &&
      ++lf.refusals <= kMaxRefusedRetries) {
    // Refused by fencing (or by an owner ending quiet-topic grants first): register again, at
    // the leader of this node's map by then. The AddRoute calls keep waiting, also for the
    // other owners of a wildcard route that answer meanwhile.
    ++lf.retrying;
    LaterLocked([this, key] {
      std::vector<Outgoing> out;
      std::vector<std::pair<Done, absl::Status>> ready;
      {
        std::lock_guard lock(mu_);
        auto again = local_filters_.find(key);
        if (again == local_filters_.end()) return;
        LocalFilter& lf = again->second;
        --lf.retrying;
        RegisterLocked(key, lf, &out);
        CompleteIfSettledLocked(lf, &ready);  // no owner left to ask
      }
      Send(std::move(out));
      for (auto& [done, status] : ready) {
        if (done) done(status);
      }
    });
    return;
  }
  if (st.ok()) {
    lf.registered.insert(owner);
    lf.refusals = 0;
  } else if (lf.failure.ok()) {
    lf.failure = st;
  }
  CompleteIfSettledLocked(lf, ready);
}

void ClusterRouter::CompleteIfSettledLocked(LocalFilter& lf,
                                            std::vector<std::pair<Done, absl::Status>>* ready) {
  if (!lf.pending.empty() || lf.retrying > 0) return;
  for (Done& d : lf.waiters) ready->emplace_back(std::move(d), lf.failure);
  lf.waiters.clear();
  lf.failure = absl::OkStatus();
}

void ClusterRouter::OnRouteAck(const RouteKey& key, const Owner& owner,
                               const absl::Status& st) {
  std::vector<std::pair<Done, absl::Status>> ready;
  {
    std::lock_guard lock(mu_);
    RouteAckLocked(key, owner, st, &ready);
  }
  for (auto& [done, status] : ready) {
    if (done) done(status);
  }
}

void ClusterRouter::AddRoute(const std::string& filter, const std::string& group, Done done) {
  std::vector<Outgoing> out;
  std::vector<std::pair<Done, absl::Status>> ready;
  const RouteKey key{filter, group};
  {
    std::lock_guard lock(mu_);
    LocalFilter& lf = local_filters_[key];
    ++lf.count;
    const bool settled = lf.pending.empty() && lf.retrying == 0 && !lf.registered.empty();
    if (settled && lf.count > 1) {
      ready.emplace_back(std::move(done), absl::OkStatus());
    } else {
      if (done) lf.waiters.push_back(std::move(done));
      RegisterLocked(key, lf, &out);
      CompleteIfSettledLocked(lf, &ready);  // nothing to wait for: in process, or a failure
    }
  }
  Send(std::move(out));
  for (auto& [d, status] : ready) {
    if (d) d(status);
  }
}

void ClusterRouter::RemoveRoute(const std::string& filter, const std::string& group) {
  std::vector<Outgoing> out;
  const RouteKey key{filter, group};
  {
    std::lock_guard lock(mu_);
    auto it = local_filters_.find(key);
    if (it == local_filters_.end()) return;
    if (--it->second.count > 0) return;
    // Owners still pending get the add first and the remove after it, on the same stream. An
    // owner that refused the add while ending quiet-topic grants holds the route already, so
    // every current owner is told too (a remove of a route an owner does not hold is a no-op).
    std::set<std::string> owners;
    for (const Owner& o : it->second.registered) owners.insert(o.node);
    for (const Owner& o : it->second.pending) owners.insert(o.node);
    for (const Owner& o : OwnersOfLocked(filter)) {
      if (o.lease != 0) owners.insert(o.node);
    }
    for (const std::string& node : owners) {
      if (node == self_) {
        owner_routes_.Remove(self_, lease_, filter, group);
      } else {
        out.push_back(Outgoing{node, RouteItemOf(key, false), nullptr});
      }
    }
    std::vector<Done> waiters = std::move(it->second.waiters);
    local_filters_.erase(it);
    for (Done& d : waiters) {
      if (d) out.push_back(Outgoing{"", {}, std::move(d)});  // completed below, outside the lock
    }
  }
  Send(std::move(out));
}

void ClusterRouter::RoutePublishLocked(const std::string& origin, const records::Message& message,
                                       std::vector<Outgoing>* out, LocalDelivery::Scope* here) {
  const OwnerRoutes::Matches matches = owner_routes_.MatchAll(message.topic());
  std::map<std::string, LocalDelivery::Scope> per_node;
  auto scope = [&](const std::string& node) -> LocalDelivery::Scope& {
    auto [it, inserted] = per_node.try_emplace(node);
    if (inserted) it->second.plain = false;
    return it->second;
  };
  // Plain subscribers: every node with a matching route (a retained message: every node, for
  // its retained index), except the origin, which delivered to its own.
  if (message.retain()) {
    for (const auto& [id, m] : members_) {
      if (id != origin) scope(id).plain = true;
    }
    for (const std::string& node : matches.plain) {  // a down store node's subscribers
      if (down_stores_.contains(node)) scope(node).plain = true;
    }
  } else {
    for (const std::string& node : matches.plain) {
      if (node != origin) scope(node).plain = true;
    }
  }
  // Shared subscriptions: one node per subscription, round-robin over the nodes with members
  // (the origin included: it leaves shared subscriptions to the owner).
  for (const auto& [key, nodes] : matches.shared) {
    uint64_t& rr = shared_rr_[key];
    // Members on a node that is down get a message only if no other node has members.
    std::vector<std::string> up;
    for (const std::string& n : nodes) {
      if (n == self_ || AliveLocked(n)) up.push_back(n);
    }
    const std::vector<std::string>& from = up.empty() ? nodes : up;
    const std::string& pick = from[rr++ % from.size()];
    scope(pick).shared.push_back(key);
  }
  if (origin != self_) MaybeGrantLocked(origin, message, matches, out);
  for (auto& [node, sc] : per_node) {
    if (!sc.plain && sc.shared.empty()) continue;
    if (node == self_) {
      *here = std::move(sc);
      continue;
    }
    v1::PeerItem item;
    v1::DeliverItem* d = item.mutable_deliver();
    *d->mutable_message() = message;
    d->set_plain(sc.plain);
    for (const auto& [group, filter] : sc.shared) {
      v1::SharedPick* pick = d->add_shared();
      pick->set_group(group);
      pick->set_filter(filter);
    }
    if (auto down = down_stores_.find(node); down != down_stores_.end()) {
      // A store node that is down, whose sessions wait for it with their subscriptions: it
      // gets the message when it is back (QoS 0 is not kept for an offline session anyway).
      if (message.qos() == 0) continue;
      DownStore& ds = down->second;
      ds.bytes += message.payload().size();
      ds.held.push_back(std::move(item));
      while (ds.held.size() > 1 &&
             (ds.held.size() > kMaxHeldForDown || ds.bytes > kMaxHeldBytesForDown)) {
        ds.bytes -= ds.held.front().deliver().message().payload().size();
        ds.held.pop_front();
        if (ds.dropped++ % 10000 == 0) {
          SHARDMQ_LOG(WARNING) << "more than " << kMaxHeldForDown << " messages or "
                               << (kMaxHeldBytesForDown >> 20) << " MiB held for node " << node
                               << ", which is down: dropping the oldest";
        }
        ++stats_.held_for_down_dropped;
      }
      continue;
    }
    out->push_back(Outgoing{node, std::move(item), nullptr, message.qos() == 0});
    ++stats_.routed_out;
  }
}

void ClusterRouter::Forward(const records::Message& message, Done done) {
  ForwardAttempt(message, std::move(done), 0);
}

void ClusterRouter::ForwardAttempt(const records::Message& message, Done done, int attempt) {
  std::vector<Outgoing> out;
  absl::Status error;
  LocalDelivery::Scope here;
  here.plain = false;
  int ticket = -1;
  {
    std::lock_guard lock(mu_);
    if (map_.revision == 0 || map_.record.partitions() == 0) {
      error = absl::UnavailableError("no partition map yet");
    } else {
      const uint32_t p = PartitionOf(message.topic(), map_.record.partitions());
      const std::string& leader = map_.LeaderOf(p);
      if (leader.empty()) {
        error = absl::UnavailableError("partition " + std::to_string(p) + " has no store node");
      } else if (leader == self_ && !LeadsLocked(p, map_.EpochOf(p))) {
        // Fencing: this node's lease may have expired (it was paused, or cut off from etcd),
        // so another node may lead the partition now; it acts again once it has rejoined.
        ++stats_.fenced;
        error = absl::UnavailableError("partition " + std::to_string(p) +
                                       ": this node's lease may have expired; not acting as its "
                                       "leader until it has rejoined");
      } else if (leader == self_ &&
                 (!RoutesMissingLocked(p).empty() || held_.contains(p))) {
        // A partition this node just gained: a route may still be on its way. The publish
        // waits here, in order with the others of its partition, until every member's routes
        // are in (at most kGateWait; FlushHeldLocked).
        ++stats_.route_waits;
        auto [it, first] = held_.try_emplace(p);
        if (first) {
          const auto since = std::chrono::steady_clock::now();
          it->second.since = since;
          ScheduleGateCheckLocked();
        }
        it->second.items.push_back(HeldPublish{message, std::move(done)});
        return;
      } else if (leader == self_) {
        RoutePublishLocked(self_, message, &out, &here);
        ticket = TicketLocked();
      } else if (!AliveLocked(leader)) {
        error = absl::UnavailableError("partition " + std::to_string(p) + " is unavailable: its " +
                                       "owner " + leader + " is down");
      } else if (message.qos() == 0 && !message.retain() &&
                 QuietLocked(message.topic(), p, leader)) {
        // The owner said no other node subscribes to the topic (and will say so before any
        // does): the broker delivered it to this node's subscribers, and that is all.
        ++stats_.forwards_skipped;
      } else {
        v1::PeerItem item;
        *item.mutable_publish()->mutable_message() = message;
        item.mutable_publish()->set_map_revision(map_.revision);
        item.mutable_publish()->set_epoch(map_.EpochOf(p));
        if (attempt == 0) ++stats_.forwarded;
        Done wrapped;
        if (done) {
          // Someone waits (QoS 1/2): a refusal (fencing) sends it again, to the leader of a
          // newer map. QoS 0 is not kept for that.
          wrapped = [this, copy = std::make_shared<const records::Message>(message),
                     done = std::move(done), attempt](const absl::Status& st) {
            if (st.code() == absl::StatusCode::kFailedPrecondition &&
                attempt < kMaxRefusedRetries) {
              Later([this, copy, done, attempt] { ForwardAttempt(*copy, done, attempt + 1); });
              return;
            }
            done(st);
          };
        }
        out.push_back(Outgoing{leader, std::move(item), std::move(wrapped), message.qos() == 0});
        done = nullptr;
      }
    }
    if (!error.ok()) ++stats_.forward_errors;
  }
  // This node owns the topic and picked itself for shared subscriptions.
  if (!here.shared.empty()) local_.DeliverLocal(message, std::move(here));
  Send(std::move(out));
  if (ticket >= 0) ReturnTicket(ticket);
  if (done) done(error);
}

uint32_t ClusterRouter::PartitionLocked(std::string_view key) const {
  const uint32_t parts = map_.record.partitions();
  return parts == 0 ? 0 : PartitionOf(key, parts);  // 0 without a map: LeadsLocked says no
}

bool ClusterRouter::LeadsLocked(uint32_t partition, uint64_t epoch) const {
  if (map_.revision == 0 || partition >= map_.record.partitions()) return false;
  if (map_.LeaderOf(partition) != self_ || map_.EpochOf(partition) != epoch) return false;
  return !lease_check_ || lease_check_();
}

void ClusterRouter::FlushHeldLocked(bool force, std::vector<Outgoing>* out,
                                    std::vector<std::pair<Done, absl::Status>>* ready,
                                    std::vector<std::pair<records::Message, LocalDelivery::Scope>>* here) {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = held_.begin(); it != held_.end();) {
    const uint32_t p = it->first;
    const bool open = RoutesMissingLocked(p).empty();
    const bool expired = now - it->second.since >= kGateWait;
    if (!open && !expired && !force) {
      ++it;
      continue;
    }
    if (!open) {
      SHARDMQ_LOG(WARNING) << "partition " << p << ": routing held publishes without the routes of "
                           << RoutesMissingLocked(p) << " after waiting " << kGateWait.count()
                           << " ms";
    }
    for (HeldPublish& h : it->second.items) {
      const bool still_mine = map_.revision != 0 && p < map_.record.partitions() &&
                              map_.LeaderOf(p) == self_;
      if (!still_mine) {
        // The partition moved on meanwhile: the publish goes to its new leader (after the
        // lock, in order).
        Done done = std::move(h.done);
        auto copy = std::make_shared<const records::Message>(std::move(h.message));
        ready->emplace_back(
            [this, copy, done](const absl::Status&) { ForwardAttempt(*copy, done, 1); },
            absl::OkStatus());
        continue;
      }
      LocalDelivery::Scope scope;
      scope.plain = false;
      RoutePublishLocked(self_, h.message, out, &scope);
      if (!scope.shared.empty()) here->emplace_back(h.message, std::move(scope));
      if (h.done) ready->emplace_back(std::move(h.done), absl::OkStatus());
    }
    it = held_.erase(it);
  }
}

void ClusterRouter::FinishFlush(std::vector<Outgoing> out,
                                std::vector<std::pair<Done, absl::Status>> ready,
                                std::vector<std::pair<records::Message, LocalDelivery::Scope>> here,
                                int ticket) {
  for (auto& [message, scope] : here) local_.DeliverLocal(message, std::move(scope));
  Send(std::move(out));
  ReturnTicket(ticket);
  for (auto& [done, status] : ready) {
    if (done) done(status);
  }
}

void ClusterRouter::ScheduleGateCheckLocked() {
  if (gate_check_pending_) return;
  gate_check_pending_ = true;
  LaterLocked([this] {
    std::vector<Outgoing> out;
    std::vector<std::pair<Done, absl::Status>> ready;
    std::vector<std::pair<records::Message, LocalDelivery::Scope>> here;
    int ticket;
    {
      std::lock_guard lock(mu_);
      gate_check_pending_ = false;
      FlushHeldLocked(false, &out, &ready, &here);
      ticket = TicketLocked();
      if (!held_.empty()) ScheduleGateCheckLocked();
    }
    FinishFlush(std::move(out), std::move(ready), std::move(here), ticket);
  });
}

std::string ClusterRouter::RoutesMissingLocked(uint32_t partition) const {
  const int64_t gained = partition < gained_at_.size() ? gained_at_[partition] : 0;
  if (gained == 0) return "";
  for (const auto& [id, m] : members_) {
    if (id == self_) continue;
    auto it = synced_.find({id, m.lease()});
    if (it == synced_.end() || it->second < gained) return id;
  }
  return "";
}

void ClusterRouter::MarkSyncedLocked(std::vector<Outgoing>* out) {
  if (map_.revision == 0 || lease_ == 0) return;
  const int64_t revision = map_.revision;
  for (const auto& [id, m] : members_) {
    if (id == self_) continue;
    v1::PeerItem item;
    item.mutable_routes_synced()->set_map_revision(revision);
    // A marker lost with a broken stream would hold the partitions back: send it again.
    const std::string node = id;
    out->push_back(Outgoing{id, std::move(item), [this, node, revision](const absl::Status& st) {
                              if (st.ok()) return;
                              Later([this, node, revision] {
                                std::vector<Outgoing> again;
                                {
                                  std::lock_guard lock(mu_);
                                  if (!members_.contains(node) || map_.revision != revision) {
                                    return;  // a newer pass sends its own
                                  }
                                  MarkSyncedLocked(&again);
                                }
                                Send(std::move(again));
                              });
                            }});
  }
}

absl::StatusOr<Router::Placement> ClusterRouter::PlaceSession(const std::string& client_id) {
  std::lock_guard lock(mu_);
  if (map_.revision == 0 || map_.record.partitions() == 0) {
    return absl::UnavailableError("no partition map yet");
  }
  const uint32_t p = PartitionOf(client_id, map_.record.partitions());
  const std::string& leader = map_.LeaderOf(p);
  Placement out;
  out.revision = map_.revision;
  out.epoch = map_.EpochOf(p);
  if (leader.empty()) {
    return absl::UnavailableError("partition " + std::to_string(p) + " has no store node");
  }
  if (lease_check_ && !lease_check_()) {
    // Not as leader (fencing), and not as a front-end either: this node's links belong to an
    // incarnation the others may already have dropped.
    if (leader == self_) ++stats_.fenced;
    return absl::UnavailableError("this node's lease may have expired: it serves no session "
                                  "until it has rejoined");
  }
  if (leader == self_) {
    if (!LeadsLocked(p, out.epoch)) {
      ++stats_.fenced;
      return absl::UnavailableError("this node does not lead partition " + std::to_string(p));
    }
    if (FrozenLocked(p)) {
      auto h = handoffs_.find(p);
      return absl::AbortedError(
          "the sessions of partition " + std::to_string(p) + " are moving to node " +
          (h == handoffs_.end() ? std::string("?") : h->second.peer) + "; connect again shortly");
    }
    out.local = true;
    return out;
  }
  if (!AliveLocked(leader)) {
    return absl::UnavailableError("partition " + std::to_string(p) + " is unavailable: its " +
                                  "owner " + leader + " is down");
  }
  out.node = leader;
  return out;
}

void ClusterRouter::RelayOpen(const Placement& placement, RelayOpenArgs args, Done done) {
  v1::PeerItem item;
  v1::RelayOpen* o = item.mutable_relay_open();
  o->set_conn(args.conn);
  o->set_client_id(std::move(args.client_id));
  o->set_assigned(args.assigned);
  o->set_data(std::move(args.data));
  o->set_peer(std::move(args.peer));
  o->set_map_revision(placement.revision);
  o->set_epoch(placement.epoch);
  {
    std::lock_guard lock(mu_);
    ++stats_.relays_out;
  }
  std::vector<Outgoing> out;
  out.push_back(Outgoing{placement.node, std::move(item), std::move(done)});
  Send(std::move(out));
}

void ClusterRouter::RelaySend(const std::string& node, uint64_t conn, bool upstream,
                              std::string data, bool close, Done done, int64_t consumed) {
  v1::PeerItem item;
  v1::RelayData* r = item.mutable_relay();
  r->set_conn(conn);
  r->set_upstream(upstream);
  r->set_data(std::move(data));
  r->set_close(close);
  if (consumed >= 0) r->set_consumed(static_cast<uint64_t>(consumed));
  std::vector<Outgoing> out;
  out.push_back(Outgoing{node, std::move(item), std::move(done)});
  Send(std::move(out));
}

void ClusterRouter::RelayCongestion(const std::string& node, uint64_t conn, bool congested) {
  v1::PeerItem item;
  v1::RelayData* r = item.mutable_relay();
  r->set_conn(conn);
  r->set_upstream(true);
  r->set_congested(congested);
  std::vector<Outgoing> out;
  out.push_back(Outgoing{node, std::move(item), nullptr});
  Send(std::move(out));
}

absl::Status ClusterRouter::Handle(const std::string& sender, int64_t sender_lease,
                                   const v1::PeerItem& item) {
  // Fencing of partition data: a publish (partition of its topic) and an added route for a
  // filter without wildcards (partition of the filter) are refused unless this node leads the
  // partition at the epoch the sender knows.
  auto refuse = [this](uint32_t p, uint64_t epoch) -> absl::Status {
    if (LeadsLocked(p, epoch)) return absl::OkStatus();
    ++stats_.fenced;
    return absl::FailedPreconditionError(
        "node " + self_ + " does not lead partition " + std::to_string(p) + " at epoch " +
        std::to_string(epoch) + " (its map revision: " + std::to_string(map_.revision) + ")");
  };
  switch (item.kind_case()) {
    case v1::PeerItem::kRelayOpen: {
      const v1::RelayOpen& o = item.relay_open();
      std::vector<Outgoing> out;
      {
        std::lock_guard lock(mu_);
        const uint32_t p = PartitionLocked(o.client_id());
        // A partition whose sessions are being handed off is refused the same way: the
        // front-end asks again until the new leader has them.
        if (!LeadsLocked(p, o.epoch()) || FrozenLocked(p)) {
          // Fencing: the sender's map and this node's disagree about who leads the session's
          // partition (or this node's lease may have expired). Refuse; the sender waits for a
          // newer map and opens again.
          ++stats_.fenced;
          v1::PeerItem refusal;
          v1::RelayData* r = refusal.mutable_relay();
          r->set_conn(o.conn());
          r->set_upstream(false);
          r->set_close(true);
          r->set_not_leader(true);
          r->set_map_revision(map_.revision);
          out.push_back(Outgoing{sender, std::move(refusal), nullptr});
        } else {
          ++stats_.relays_in;
        }
      }
      if (!out.empty()) {
        SHARDMQ_LOG(INFO) << "refused a connection of client " << o.client_id() << " from "
                          << sender << " (map revision " << o.map_revision() << ", epoch "
                          << o.epoch() << "): not its session's leader at that epoch";
        Send(std::move(out));
        return absl::OkStatus();
      }
      Router::RelayOpenArgs args;
      args.conn = o.conn();
      args.client_id = o.client_id();
      args.assigned = o.assigned();
      args.data = o.data();
      args.peer = o.peer();
      local_.OnRelayOpen(sender, sender_lease, std::move(args));
      return absl::OkStatus();
    }
    case v1::PeerItem::kRelay: {
      const v1::RelayData& r = item.relay();
      if (r.has_congested()) {
        local_.OnRelayCongestion(sender, sender_lease, r.conn(), r.congested());
        return absl::OkStatus();
      }
      local_.OnRelayData(sender, sender_lease, r.conn(), r.upstream(), r.data(), r.close(),
                         r.not_leader(),
                         r.has_consumed() ? static_cast<int64_t>(r.consumed()) : -1);
      return absl::OkStatus();
    }
    case v1::PeerItem::kRoute: {
      std::unique_lock lock(mu_);
      const v1::RouteItem& r = item.route();
      if (r.add()) {
        if (!HasWildcard(r.filter())) {
          absl::Status st = refuse(PartitionLocked(r.filter()), r.epoch());
          if (!st.ok()) return st;
        }
        owner_routes_.Add(sender, sender_lease, r.filter(), r.group());
        std::vector<std::string> holders = GrantHoldersLocked(r.filter(), r.group(), sender);
        if (!holders.empty()) {
          // Nodes that skip the topics the route matches stop first. The route is in from now
          // on. This stream waits for their answers (a unary call each, never behind a stream,
          // so this cannot wait for itself) up to kRevokeWait; past that, the refusal makes the
          // sender send the route again (kRefusedRetryDelay), and it is acknowledged once no
          // grant it matches is left.
          lock.unlock();
          struct Wait {
            std::mutex mu;
            std::condition_variable cv;
            std::optional<absl::Status> result;
          };
          auto wait = std::make_shared<Wait>();
          RevokeGrants(holders, [wait](const absl::Status& st) {
            std::lock_guard l(wait->mu);
            wait->result = st;
            wait->cv.notify_all();
          });
          std::unique_lock l(wait->mu);
          if (wait->cv.wait_for(l, kRevokeWait, [&] { return wait->result.has_value(); }) &&
              wait->result->ok()) {
            return absl::OkStatus();
          }
          return absl::FailedPreconditionError(
              "node " + self_ + " is ending quiet-topic grants that route " + r.filter() +
              " matches; send it again");
        }
      } else {
        owner_routes_.Remove(sender, sender_lease, r.filter(), r.group());
      }
      return absl::OkStatus();
    }
    case v1::PeerItem::kPublish: {
      std::vector<Outgoing> out;
      LocalDelivery::Scope here;
      here.plain = false;
      int ticket;
      {
        std::unique_lock lock(mu_);
        const uint32_t p = PartitionLocked(item.publish().message().topic());
        if (ResentOnBreak(item) &&
            SeenBeforeLocked(sender, sender_lease, false, item.publish().message())) {
          // Sent again after a broken stream, and routed here already, when this node led the
          // partition: acknowledged even if it has moved since (a refusal would send it to
          // the new leader, which would route it a second time).
          ++stats_.duplicates_dropped;
          return absl::OkStatus();
        }
        absl::Status st = refuse(p, item.publish().epoch());
        if (!st.ok()) return st;
        if (!RoutesMissingLocked(p).empty()) {
          // A partition this node just gained: wait (holding this stream, so the order of its
          // items is kept) until every member's routes are in, at most kGateWait.
          ++stats_.route_waits;
          gate_cv_.wait_for(lock, kGateWait, [&] {
            return stopped_ || RoutesMissingLocked(p).empty();
          });
          if (const std::string missing = RoutesMissingLocked(p); !missing.empty()) {
            SHARDMQ_LOG(WARNING) << "partition " << p << ": routing without the routes of "
                                 << missing << " after waiting " << kGateWait.count() << " ms";
          }
        }
        if (ResentOnBreak(item) && SeenLocked(sender, sender_lease, false,
                                             item.publish().message())) {
          return absl::OkStatus();  // sent again after a broken stream, and routed already
        }
        RoutePublishLocked(sender, item.publish().message(), &out, &here);
        if (here.plain || !here.shared.empty()) ++stats_.delivered_in;
        ticket = TicketLocked();
      }
      if (here.plain || !here.shared.empty()) {
        local_.DeliverLocal(item.publish().message(), std::move(here));
      }
      Send(std::move(out));
      ReturnTicket(ticket);
      return absl::OkStatus();
    }
    case v1::PeerItem::kDeliver: {
      {
        std::lock_guard lock(mu_);
        if (ResentOnBreak(item) &&
            SeenLocked(sender, sender_lease, true, item.deliver().message())) {
          return absl::OkStatus();  // sent again after a broken stream, and delivered already
        }
        ++stats_.delivered_in;
      }
      const v1::DeliverItem& d = item.deliver();
      LocalDelivery::Scope scope;
      scope.plain = d.plain();
      for (const v1::SharedPick& p : d.shared()) scope.shared.emplace_back(p.group(), p.filter());
      local_.DeliverLocal(d.message(), std::move(scope));
      return absl::OkStatus();
    }
    case v1::PeerItem::kRoutesSynced: {
      std::vector<Outgoing> out;
      std::vector<std::pair<Done, absl::Status>> ready;
      std::vector<std::pair<records::Message, LocalDelivery::Scope>> here;
      int ticket;
      {
        std::lock_guard lock(mu_);
        int64_t& at = synced_[{sender, sender_lease}];
        at = std::max(at, item.routes_synced().map_revision());
        FlushHeldLocked(false, &out, &ready, &here);
        ticket = TicketLocked();
      }
      gate_cv_.notify_all();
      FinishFlush(std::move(out), std::move(ready), std::move(here), ticket);
      return absl::OkStatus();
    }
    case v1::PeerItem::kRetainedSyncRequest:
      SendRetainedSync(sender, item.retained_sync_request().token(), 0);
      return absl::OkStatus();
    case v1::PeerItem::kRetainedSyncChunk: {
      const v1::RetainedSyncChunk& c = item.retained_sync_chunk();
      {
        std::lock_guard lock(mu_);
        if (sync_state_ != SyncState::kAwaiting || c.token() != sync_token_ ||
            sender != sync_peer_) {
          return absl::OkStatus();  // an answer nobody waits for any more
        }
        ++sync_progress_;
        if (c.last()) {
          sync_state_ = SyncState::kNone;
          ++stats_.retained_syncs;
        }
      }
      local_.OnRetainedSync({c.messages().begin(), c.messages().end()}, c.last(), sender);
      return absl::OkStatus();
    }
    case v1::PeerItem::kHandoffOffer:
    case v1::PeerItem::kHandoffStep:
    case v1::PeerItem::kHandoffData:
      return HandleHandoff(sender, sender_lease, item);
    case v1::PeerItem::kQuietGrant: {
      const v1::QuietGrant& g = item.quiet_grant();
      std::lock_guard lock(mu_);
      auto r = revoked_upto_.find({sender, sender_lease});
      if (r != revoked_upto_.end() && g.id() <= r->second) return absl::OkStatus();
      auto m = members_.find(sender);
      if (m == members_.end() || m->second.lease() != sender_lease) return absl::OkStatus();
      if (quiet_.size() >= kMaxQuietTopics && !quiet_.contains(g.topic())) {
        return absl::OkStatus();
      }
      quiet_[g.topic()] = QuietTopic{sender, sender_lease, g.epoch(), g.id()};
      return absl::OkStatus();
    }
    case v1::PeerItem::KIND_NOT_SET:
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

namespace {
// QoS 0 messages dropped at a full link by this thread (Router::Qos0DropsOnThisThread), and
// the link of the latest drop.
struct ThreadDrops {
  uint64_t count = 0;
  std::weak_ptr<PeerLink> link;
};
thread_local ThreadDrops t_drops;
}  // namespace

uint64_t ClusterRouter::Qos0DropsOnThisThread() const { return t_drops.count; }

void ClusterRouter::WhenRoomAfterDrop(std::function<void()> resume) {
  std::shared_ptr<PeerLink> link = t_drops.link.lock();
  if (link == nullptr) {
    resume();
    return;
  }
  // Room: half the backlog at which QoS 0 is dropped, so a publisher let go has some to use.
  link->WhenQueuedBelow(kQos0LinkBacklog / 2, std::move(resume));
}

ClusterRouter::Outgoing ClusterRouter::Resending(const std::string& to, v1::PeerItem item,
                                                    int tries) {
  // An answer lost because the link was not there yet (this node has just joined and does not
  // know the asker yet) or broke is sent again, so the asker does not wait for its timeout;
  // a held message, so a link that breaks just as its node is back does not lose it.
  auto copy = std::make_shared<v1::PeerItem>(item);
  return Outgoing{to, std::move(item), [this, to, copy, tries](const absl::Status& st) {
                    if (st.ok() || tries >= kMaxRefusedRetries) return;
                    Later([this, to, copy, tries] {
                      Send({Resending(to, *copy, tries + 1)});
                    });
                  }};
}

void ClusterRouter::Send(std::vector<Outgoing> out) {
  for (Outgoing& o : out) {
    if (o.node.empty()) {  // a waiter of a route removed before it was registered
      if (o.done) o.done(absl::CancelledError("subscription ended"));
      continue;
    }
    std::shared_ptr<PeerLink> link;
    {
      std::lock_guard lock(mu_);
      auto it = links_.find(o.node);
      if (it != links_.end()) link = it->second;
    }
    if (link == nullptr) {
      if (o.done) o.done(absl::UnavailableError("node " + o.node + " is not reachable"));
      continue;
    }
    if (o.droppable && link->queued() >= kQos0LinkBacklog) {
      {
        std::lock_guard lock(mu_);
        ++stats_.qos0_dropped;
      }
      if (hold_qos0_publishers_) {
        ++t_drops.count;
        t_drops.link = link;
      }
      if (o.done) o.done(absl::OkStatus());  // QoS 0: nobody waits for it
      continue;
    }
    const bool resend = ResentOnBreak(o.item);
    link->Send(std::move(o.item), std::move(o.done), resend);
  }
}

bool ClusterRouter::ResentOnBreak(const v1::PeerItem& item) {
  // A QoS 2 publish for its owner, a QoS 1/2 message for a subscriber's node: if the stream
  // breaks before the acknowledgement, the peer may have it or not, so it is sent again and
  // the peer drops it if it has it (SeenLocked). QoS 1 publishes are not: their publisher
  // gets an error and may send them again itself (QoS 1 allows a duplicate).
  if (item.has_publish()) {
    return item.publish().message().qos() == 2 && item.publish().message().origin() != 0;
  }
  if (item.has_deliver()) {
    return item.deliver().message().qos() >= 1 && item.deliver().message().origin() != 0;
  }
  return false;
}

bool ClusterRouter::SeenBeforeLocked(const std::string& sender, int64_t sender_lease,
                                     bool deliver, const records::Message& message) const {
  auto it = recent_.find({sender, sender_lease});
  return it != recent_.end() && it->second.seen.contains(KeyOf(message, deliver));
}

bool ClusterRouter::SeenLocked(const std::string& sender, int64_t sender_lease, bool deliver,
                               const records::Message& message) {
  Recent& r = recent_[{sender, sender_lease}];
  const RecentKey key = KeyOf(message, deliver);
  if (!r.seen.insert(key).second) {
    ++stats_.duplicates_dropped;
    return true;
  }
  r.order.push_back(key);
  if (r.order.size() > kMaxRecent) {
    r.seen.erase(r.order.front());
    r.order.pop_front();
  }
  return false;
}

void ClusterRouter::SetLease(int64_t lease) {
  std::map<std::string, std::shared_ptr<PeerLink>> old;
  std::vector<std::string> gone;
  std::vector<Outgoing> out;
  {
    std::lock_guard lock(mu_);
    if (lease == lease_ || stopped_) return;
    const int64_t previous = lease_;
    lease_ = lease;
    // A new incarnation: grants either way were the old one's.
    quiet_.clear();
    granted_.clear();
    revoked_upto_.clear();
    sync_state_ = SyncState::kNeeded;
    sync_asked_ = false;
    if (previous != 0) {
      for (const auto& [id, m] : members_) {
        if (id != self_) gone.push_back(id);
      }
    }
    // Links carry the lease in every batch: new ones for the new incarnation. Owners drop the
    // routes of the previous one when they see it, so register everything again.
    for (const auto& [id, link] : links_) {
      closed_batches_ += link->batches_sent();
      closed_items_ += link->items_sent();
      closed_resent_ += link->items_resent();
    }
    old.swap(links_);
    for (const auto& [id, m] : members_) {
      if (id != self_) links_[id] = PeerLink::Create(self_, lease_, id, m.cluster_addr());
    }
    for (auto& [key, lf] : local_filters_) {
      lf.registered.clear();
      lf.pending.clear();
      if (previous != 0) owner_routes_.Remove(self_, previous, key.first, key.second);
      RegisterLocked(key, lf, &out);
    }
    MarkSyncedLocked(&out);
  }
  old.clear();
  // A new incarnation of this node: the other nodes drop what was relayed with the old one.
  for (const std::string& id : gone) local_.OnNodeGone(id);
  Send(std::move(out));
  MaybeStartSync();
}

void ClusterRouter::SendRetainedSync(const std::string& to, uint64_t token, int tries) {
  // This node's retained messages, in chunks, on the stream to the asker. An answer that does
  // not get through (the asker has just joined and this node has no link to it yet, or the link
  // broke) is sent again, whole, a little later; the asker also asks again if it hears nothing.
  bool linked;
  {
    std::lock_guard lock(mu_);
    linked = links_.contains(to);
  }
  if (!linked) {  // not yet: no snapshot to throw away
    if (tries < kMaxRefusedRetries) {
      Later([this, to, token, tries] { SendRetainedSync(to, token, tries + 1); });
    }
    return;
  }
  std::vector<records::Message> all = local_.RetainedSnapshot();
  constexpr size_t kChunk = 500;
  std::vector<Outgoing> out;
  size_t i = 0;
  do {
    v1::PeerItem chunk;
    v1::RetainedSyncChunk* c = chunk.mutable_retained_sync_chunk();
    c->set_token(token);
    for (size_t n = 0; n < kChunk && i < all.size(); ++n, ++i) {
      *c->add_messages() = std::move(all[i]);
    }
    c->set_last(i >= all.size());
    out.push_back(Outgoing{to, std::move(chunk), nullptr});
  } while (i < all.size());
  out.back().done = [this, to, token, tries](const absl::Status& st) {
    if (st.ok() || tries >= kMaxRefusedRetries) return;
    Later([this, to, token, tries] { SendRetainedSync(to, token, tries + 1); });
  };
  Send(std::move(out));
}

void ClusterRouter::MaybeStartSync() {
  std::vector<Outgoing> out;
  bool again;
  {
    std::lock_guard lock(mu_);
    if (stopped_ || sync_state_ != SyncState::kNeeded) return;
    auto me = members_.find(self_);
    if (me == members_.end() || me->second.lease() != lease_) return;  // not seen yet
    const int64_t mine = me->second.joined_revision();
    std::string peer;
    int64_t oldest = 0;
    for (const auto& [id, m] : members_) {
      if (id == self_ || m.joined_revision() <= 0 || m.joined_revision() >= mine) continue;
      if (peer.empty() || m.joined_revision() < oldest) {
        peer = id;
        oldest = m.joined_revision();
      }
    }
    if (peer.empty()) {  // this node was here first: nobody knows more
      sync_state_ = SyncState::kNone;
      return;
    }
    again = sync_asked_;
    sync_asked_ = true;
    sync_state_ = SyncState::kAwaiting;
    sync_peer_ = peer;
    const uint64_t token = ++sync_token_;
    v1::PeerItem item;
    item.mutable_retained_sync_request()->set_token(token);
    out.push_back(Outgoing{peer, std::move(item), [this, token](const absl::Status& st) {
                             if (st.ok()) return;
                             {
                               std::lock_guard lock(mu_);
                               if (sync_token_ != token ||
                                   sync_state_ != SyncState::kAwaiting) {
                                 return;
                               }
                               sync_state_ = SyncState::kNeeded;  // ask again (another peer)
                             }
                             Later([this] { MaybeStartSync(); });
                           }});
    WatchSyncLocked(token, sync_progress_);
  }
  local_.OnRetainedSyncStarted(again);
  Send(std::move(out));
}

void ClusterRouter::WatchSyncLocked(uint64_t token, uint64_t progress) {
  // Asks again when the answer stalls: no chunk for kSyncSilence.
  LaterLocked(
      [this, token, progress] {
        {
          std::lock_guard lock(mu_);
          if (sync_token_ != token || sync_state_ != SyncState::kAwaiting) return;
          if (sync_progress_ != progress) {
            WatchSyncLocked(token, sync_progress_);
            return;
          }
          SHARDMQ_LOG(WARNING) << "no answer from node " << sync_peer_
                               << " to the retained catch-up; asking again";
          sync_state_ = SyncState::kNeeded;
        }
        MaybeStartSync();
      },
      kSyncSilence);
}

void ClusterRouter::OnMap(const PartitionMap& map) {
  std::vector<Outgoing> out;
  std::vector<std::pair<Done, absl::Status>> flushed;
  std::vector<std::pair<records::Message, LocalDelivery::Scope>> flushed_here;
  std::vector<uint32_t> lost;
  std::vector<std::function<void()>> after;
  int ticket;
  {
    std::lock_guard lock(mu_);
    if (map.revision <= map_.revision) return;
    const bool same_shape =
        map_.revision != 0 && map_.record.partitions() == map.record.partitions();
    if (same_shape) {
      for (uint32_t p = 0; p < map.record.partitions(); ++p) {
        if (map_.LeaderOf(p) == self_ && map.LeaderOf(p) != self_) lost.push_back(p);
      }
    }
    gained_at_.resize(map.record.partitions(), 0);
    for (uint32_t p = 0; p < map.record.partitions(); ++p) {
      if (map.LeaderOf(p) != self_) {
        gained_at_[p] = 0;
      } else if (!same_shape || map_.LeaderOf(p) != self_ || map_.EpochOf(p) != map.EpochOf(p)) {
        gained_at_[p] = map.revision;  // new here: wait for every member's routes
      }
    }
    map_ = map;
    // Quiet-topic grants of an owner that no longer leads the topic at that epoch are over;
    // so are those given as owner for partitions led elsewhere now.
    std::erase_if(quiet_, [&](const auto& q) {
      const uint32_t p = PartitionLocked(q.first);
      return map_.LeaderOf(p) != q.second.owner || map_.EpochOf(p) != q.second.epoch;
    });
    for (auto it = granted_.begin(); it != granted_.end();) {
      const uint32_t p = PartitionLocked(it->first);
      if (map_.LeaderOf(p) == self_) {
        std::erase_if(it->second, [&](const auto& g) { return g.second.epoch != map_.EpochOf(p); });
      }
      it = (map_.LeaderOf(p) != self_ || it->second.empty()) ? granted_.erase(it) : std::next(it);
    }
    // A down store node whose partitions no longer wait for it (`ctl remove`): its sessions
    // are not served any more, so nothing is held for them.
    for (auto it = down_stores_.begin(); it != down_stores_.end();) {
      if (WaitedForLocked(it->first)) {
        ++it;
        continue;
      }
      stats_.held_for_down_dropped += it->second.held.size();
      owner_routes_.DropNode(it->first);
      it = down_stores_.erase(it);
    }
    for (auto& [key, lf] : local_filters_) RegisterLocked(key, lf, &out);
    MarkSyncedLocked(&out);
    FlushHeldLocked(false, &out, &flushed, &flushed_here);
    ticket = TicketLocked();
    HandoffsOnMapLocked(&after);
  }
  gate_cv_.notify_all();
  if (!lost.empty()) local_.OnPartitionsLost(lost, map.record.partitions());
  Send(std::move(out));
  FinishFlush({}, std::move(flushed), std::move(flushed_here), ticket);
  for (auto& fn : after) fn();
}

void ClusterRouter::OnMembers(const std::map<std::string, v1::MemberRecord>& members) {
  std::vector<std::pair<Done, absl::Status>> flushed;
  std::vector<std::pair<records::Message, LocalDelivery::Scope>> flushed_here;
  std::vector<std::shared_ptr<PeerLink>> dropped;
  std::vector<std::string> gone;
  std::vector<Outgoing> out;
  std::vector<std::function<void()>> after;
  int ticket;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    // Nodes that left, or came back as a new incarnation: their links and routes go.
    for (const auto& [id, old] : members_) {
      auto now = members.find(id);
      if (now != members.end() && now->second.lease() == old.lease()) continue;
      if (id == self_) continue;
      gone.push_back(id);
      if (now == members.end() && WaitedForLocked(id)) {
        // Down, and its partitions wait for it: its routes stay, and what they match is held
        // for it (RoutePublishLocked) until it is back.
        down_stores_.try_emplace(id);
        SHARDMQ_LOG(WARNING) << "store node " << id << " is down: holding QoS 1/2 messages "
                             << "for its sessions until it is back";
      } else {
        owner_routes_.DropNode(id);
      }
      if (auto l = links_.find(id); l != links_.end()) {
        closed_batches_ += l->second->batches_sent();
        closed_items_ += l->second->items_sent();
        closed_resent_ += l->second->items_resent();
        dropped.push_back(std::move(l->second));
        links_.erase(l);
      }
    }
    members_ = members;
    // Quiet-topic grants end with either side's incarnation; so does what was seen from it.
    std::erase_if(recent_, [&](const auto& r) {
      auto m = members.find(r.first.first);
      return m == members.end() || m->second.lease() != r.first.second;
    });
    for (const std::string& id : gone) {
      std::erase_if(quiet_, [&](const auto& q) { return q.second.owner == id; });
      ForgetGrantsLocked(id, UINT64_MAX);
    }
    std::erase_if(revoked_upto_, [&](const auto& r) {
      auto m = members_.find(r.first.first);
      return m == members_.end() || m->second.lease() != r.first.second;
    });
    for (const auto& [id, m] : members_) {
      if (id == self_ || links_.contains(id) || lease_ == 0) continue;
      links_[id] = PeerLink::Create(self_, lease_, id, m.cluster_addr());
    }
    // Down store nodes that are back: what was held for them goes first on their new link.
    // Their previous incarnation's routes keep matching until they register theirs again
    // (OwnerRoutes drops the old ones at the first route of the new incarnation).
    for (auto it = down_stores_.begin(); it != down_stores_.end();) {
      if (!members_.contains(it->first)) {
        ++it;
        continue;
      }
      const std::string& id = it->first;
      if (!it->second.held.empty()) {
        SHARDMQ_LOG(INFO) << "node " << id << " is back: sending it the "
                          << it->second.held.size() << " message(s) held for it";
      }
      for (v1::PeerItem& item : it->second.held) out.push_back(Resending(id, std::move(item)));
      it = down_stores_.erase(it);
    }
    // Forget registrations at owners that are gone (or restarted), then register where missing.
    for (auto& [key, lf] : local_filters_) {
      for (auto it = lf.registered.begin(); it != lf.registered.end();) {
        auto m = members_.find(it->node);
        it = (m == members_.end() || m->second.lease() != it->lease) ? lf.registered.erase(it)
                                                                     : std::next(it);
      }
      RegisterLocked(key, lf, &out);
    }
    for (auto it = synced_.begin(); it != synced_.end();) {
      auto m = members_.find(it->first.first);
      it = (m == members_.end() || m->second.lease() != it->first.second) ? synced_.erase(it)
                                                                          : std::next(it);
    }
    MarkSyncedLocked(&out);
    FlushHeldLocked(false, &out, &flushed, &flushed_here);  // a member that left opens gates
    ticket = TicketLocked();
    HandoffsOnMembersLocked(&after);
  }
  gate_cv_.notify_all();
  dropped.clear();  // joins their threads outside the lock; their pending items fail
  for (const std::string& id : gone) local_.OnNodeGone(id);
  Send(std::move(out));
  FinishFlush({}, std::move(flushed), std::move(flushed_here), ticket);
  for (auto& fn : after) fn();
  MaybeStartSync();
}

// ---- Quiet topics (proto QuietGrant).

void ClusterRouter::MaybeGrantLocked(const std::string& origin, const records::Message& message,
                                     const OwnerRoutes::Matches& matches,
                                     std::vector<Outgoing>* out) {
  if (message.qos() != 0 || message.retain() || !matches.shared.empty()) return;
  for (const std::string& node : matches.plain) {
    if (node != origin) return;
  }
  if (!members_.contains(origin)) return;
  auto topic = granted_.find(message.topic());
  if (topic == granted_.end()) {
    if (granted_.size() >= kMaxQuietTopics) return;
    topic = granted_.try_emplace(message.topic()).first;
  }
  const auto now = std::chrono::steady_clock::now();
  auto [g, fresh] = topic->second.try_emplace(origin);
  // A node that still forwards after a grant: in flight when the grant went out, or it dropped
  // the grant (its map or members changed, the stream broke).
  const uint64_t epoch = map_.EpochOf(PartitionLocked(message.topic()));
  if (!fresh && g->second.epoch == epoch && now - g->second.sent < kQuietResend) return;
  g->second.id = ++grant_seq_;
  g->second.epoch = epoch;
  g->second.sent = now;
  v1::PeerItem item;
  v1::QuietGrant* q = item.mutable_quiet_grant();
  q->set_topic(message.topic());
  q->set_epoch(epoch);
  q->set_id(g->second.id);
  out->push_back(Outgoing{origin, std::move(item), nullptr});
  ++stats_.quiet_grants;
}

std::vector<std::string> ClusterRouter::GrantHoldersLocked(const std::string& filter,
                                                           const std::string& group,
                                                           const std::string& node) const {
  std::set<std::string> holders;
  auto add = [&](const std::map<std::string, Granted>& nodes) {
    for (const auto& [n, g] : nodes) {
      // A node's own plain route does not end its grants: it delivers to its own subscribers.
      // A shared one does: shared subscriptions are the owner's to pick.
      if (n != node || !group.empty()) holders.insert(n);
    }
  };
  if (granted_.empty()) return {};
  if (!HasWildcard(filter)) {
    if (auto it = granted_.find(filter); it != granted_.end()) add(it->second);
  } else {
    for (const auto& [topic, nodes] : granted_) {
      if (topic::Matches(filter, topic)) add(nodes);
    }
  }
  return {holders.begin(), holders.end()};
}

void ClusterRouter::RevokeGrants(const std::vector<std::string>& holders, Done done) {
  struct Pending {
    std::mutex mu;
    size_t left = 0;
    absl::Status first;
    Done done;
  };
  auto pending = std::make_shared<Pending>();
  pending->left = holders.size();
  pending->done = std::move(done);
  auto finish = [pending](const absl::Status& st) {
    Done d;
    absl::Status result;
    {
      std::lock_guard lock(pending->mu);
      if (!st.ok() && pending->first.ok()) pending->first = st;
      if (--pending->left > 0) return;
      d = std::move(pending->done);
      result = pending->first;
    }
    if (d) d(result);
  };
  for (const std::string& node : holders) {
    std::shared_ptr<PeerLink> link;
    uint64_t upto = 0;
    {
      std::lock_guard lock(mu_);
      upto = grant_seq_;
      if (auto it = links_.find(node); it != links_.end()) link = it->second;
      if (link == nullptr) {
        // Not a member (any more): it holds no grant of this incarnation's members view.
        ForgetGrantsLocked(node, UINT64_MAX);
      } else {
        ++stats_.quiet_revokes;
      }
    }
    if (link == nullptr) {
      finish(absl::OkStatus());
      continue;
    }
    link->Revoke(upto, [this, node, upto, finish](const absl::Status& st) {
      if (st.ok()) {
        std::lock_guard lock(mu_);
        ForgetGrantsLocked(node, upto);
      } else {
        SHARDMQ_LOG(WARNING) << "could not end the quiet-topic grants of node " << node << ": "
                             << st.message();
      }
      finish(st);
    });
  }
}

void ClusterRouter::ForgetGrantsLocked(const std::string& node, uint64_t upto) {
  for (auto it = granted_.begin(); it != granted_.end();) {
    auto g = it->second.find(node);
    if (g != it->second.end() && g->second.id <= upto) it->second.erase(g);
    it = it->second.empty() ? granted_.erase(it) : std::next(it);
  }
}

bool ClusterRouter::QuietLocked(const std::string& topic, uint32_t p,
                                const std::string& leader) const {
  if (quiet_.empty()) return false;
  auto it = quiet_.find(topic);
  if (it == quiet_.end()) return false;
  const QuietTopic& q = it->second;
  // A node whose own lease may have expired may have missed a revocation (the owner counted
  // it out): it forwards everything until it has rejoined.
  return q.owner == leader && q.epoch == map_.EpochOf(p) && (!lease_check_ || lease_check_());
}

void ClusterRouter::StreamEnded(const std::string& sender, int64_t sender_lease) {
  std::lock_guard lock(mu_);
  std::erase_if(quiet_, [&](const auto& q) { return q.second.owner == sender; });
}

void ClusterRouter::HandleRevoke(const v1::RevokeRequest& request) {
  std::lock_guard lock(mu_);
  uint64_t& upto = revoked_upto_[{request.sender(), request.sender_lease()}];
  upto = std::max(upto, request.upto());
  std::erase_if(quiet_, [&](const auto& q) {
    return q.second.owner == request.sender() && q.second.owner_lease == request.sender_lease() &&
           q.second.id <= request.upto();
  });
}

ClusterRouter::Stats ClusterRouter::stats() const {
  std::lock_guard lock(mu_);
  Stats out = stats_;
  out.owner_routes = owner_routes_.route_count();
  out.local_filters = local_filters_.size();
  out.handoffs_active = handoffs_.size();
  out.quiet_topics = quiet_.size();
  for (const auto& [id, d] : down_stores_) out.held_for_down += d.held.size();
  out.batches_out = closed_batches_;  // counters: links that closed still count
  out.items_out = closed_items_;
  out.items_resent = closed_resent_;
  for (const auto& [id, link] : links_) {
    out.batches_out += link->batches_sent();
    out.items_out += link->items_sent();
    out.items_resent += link->items_resent();
  }
  return out;
}

}  // namespace shardmq::cluster
