#include "cluster/membership.h"

#include <chrono>

#include "absl/strings/numbers.h"
#include "cluster/records_json.h"
#include "cluster/ring.h"
#include "common/log.h"

namespace shardmq::cluster {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<Role> ParseRole(std::string_view role) {
  if (role == "all") return Role::kAll;
  if (role == "frontend") return Role::kFrontend;
  if (role == "store") return Role::kStore;
  return absl::InvalidArgumentError("role \"" + std::string(role) +
                                    "\": must be all, frontend or store");
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAll:
      return "all";
    case Role::kFrontend:
      return "frontend";
    case Role::kStore:
      return "store";
  }
  return "all";
}

uint32_t PartitionMap::CountLedBy(const std::string& node) const {
  uint32_t n = 0;
  for (const v1::PartitionAssignment& a : record.assignments()) n += a.leader() == node ? 1 : 0;
  return n;
}

bool PlanPartitionMap(const v1::PartitionMapRecord& current,
                      const std::map<std::string, v1::StoreRecord>& stores,
                      const std::map<std::string, v1::MemberRecord>& alive, uint32_t partitions,
                      uint32_t vnodes, v1::PartitionMapRecord* next,
                      const std::map<uint32_t, v1::HandoffRecord>& ready) {
  std::vector<std::string> active;
  for (const auto& [id, rec] : stores) {
    if (rec.state() == v1::StoreRecord::ACTIVE) active.push_back(id);
  }
  const std::vector<std::string> desired = Ring(active, vnodes).Place(partitions);
  *next = current;
  bool changed = false;
  if (static_cast<uint32_t>(next->assignments_size()) != partitions) {
    next->clear_assignments();
    for (uint32_t p = 0; p < partitions; ++p) next->add_assignments();
    changed = true;
  }
  if (next->partitions() != partitions || next->vnodes() != vnodes) changed = true;
  next->set_partitions(partitions);
  next->set_vnodes(vnodes);
  next->clear_moves();
  for (uint32_t p = 0; p < partitions; ++p) {
    v1::PartitionAssignment* a = next->mutable_assignments(static_cast<int>(p));
    const std::string& want = desired[p];
    if (want.empty() || a->leader() == want) continue;
    // Only a live node can take a partition.
    if (!alive.contains(want)) continue;
    // A registered leader that is not alive keeps its partitions: without replicas their data
    // is on its disk, so they wait for it to come back. A leader that left the ring (its store
    // record removed) has nothing to wait for.
    if (!a->leader().empty() && stores.contains(a->leader()) && !alive.contains(a->leader())) {
      continue;
    }
    // A live leader hands the partition's sessions over first (copy-then-flip): the move is
    // listed until `want` says it holds them (handoffs/<p>), then the leader flips.
    if (!a->leader().empty() && stores.contains(a->leader())) {
      auto r = ready.find(p);
      auto from = alive.find(a->leader());
      const bool copied = r != ready.end() && r->second.from() == a->leader() &&
                          r->second.to() == want && r->second.epoch() == a->epoch() &&
                          from != alive.end() && r->second.from_lease() == from->second.lease();
      if (!copied) {
        v1::PartitionMove* m = next->add_moves();
        m->set_partition(p);
        m->set_from(a->leader());
        m->set_to(want);
        continue;
      }
    }
    a->set_leader(want);
    a->set_epoch(a->epoch() + 1);
    changed = true;
  }
  // A change of the planned moves is a change of the map too.
  if (next->moves_size() != current.moves_size()) {
    changed = true;
  } else {
    for (int i = 0; i < next->moves_size(); ++i) {
      const v1::PartitionMove& x = next->moves(i);
      const v1::PartitionMove& y = current.moves(i);
      if (x.partition() != y.partition() || x.from() != y.from() || x.to() != y.to()) {
        changed = true;
        break;
      }
    }
  }
  return changed;
}

Membership::Membership(EtcdClient& etcd, MembershipOptions options,
                       MembershipCallbacks& callbacks)
    : etcd_(etcd), options_(std::move(options)), callbacks_(callbacks) {}

Membership::~Membership() { Stop(); }

absl::Status Membership::CheckMeta() {
  v1::ClusterMeta meta;
  meta.set_partitions(options_.partitions);
  meta.set_created_by(options_.node_id);
  meta.set_created_at_ms(NowMs());
  EtcdKeyValue current;
  auto created = etcd_.CompareAndPut(Key("meta"), RecordToJson(meta), 0, 0, &current);
  if (!created.ok()) return created.status();
  if (*created) {
    SHARDMQ_LOG(INFO) << "cluster created under " << options_.prefix << " with "
                      << options_.partitions << " partitions";
    return absl::OkStatus();
  }
  v1::ClusterMeta existing;
  if (!RecordFromJson(current.value, &existing)) {
    return absl::FailedPreconditionError("etcd key " + Key("meta") + " is not a cluster record");
  }
  if (existing.partitions() != options_.partitions) {
    return absl::FailedPreconditionError(
        "the cluster under " + options_.prefix + " has " + std::to_string(existing.partitions()) +
        " partitions; this node is configured with storage.partitions = " +
        std::to_string(options_.partitions));
  }
  return absl::OkStatus();
}

absl::Status Membership::PutMember() {
  v1::MemberRecord rec;
  rec.set_node_id(options_.node_id);
  rec.set_role(RoleName(options_.role));
  rec.set_cluster_addr(options_.cluster_addr);
  rec.set_mqtt_addr(options_.mqtt_addr);
  rec.set_version(SHARDMQ_VERSION);
  rec.set_started_at_ms(NowMs());
  rec.set_lease(lease_.load());
  const std::string key = Key("members/" + options_.node_id);
  // A previous incarnation of this node (killed) may still hold the key until its lease
  // expires: wait for that, but not for a live node using the same id.
  const auto give_up = Clock::now() + std::chrono::seconds(options_.lease_ttl_s + 2);
  while (true) {
    EtcdKeyValue current;
    auto put = etcd_.CompareAndPut(key, RecordToJson(rec), 0, lease_.load(), &current);
    if (!put.ok()) return put.status();
    if (*put) return absl::OkStatus();
    if (Clock::now() >= give_up) {
      return absl::FailedPreconditionError("node id \"" + options_.node_id +
                                           "\" is in use by a live member (etcd key " + key +
                                           "); give each node its own --node-id");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

absl::Status Membership::Register() {
  if (HoldsPartitions(options_.role)) {
    v1::StoreRecord store;
    store.set_node_id(options_.node_id);
    store.set_state(v1::StoreRecord::ACTIVE);
    store.set_joined_at_ms(NowMs());
    auto put = etcd_.Put(Key("stores/" + options_.node_id), RecordToJson(store));
    if (!put.ok()) return put.status();
  }
  const auto asked_at = Clock::now();
  auto lease = etcd_.GrantLease(options_.lease_ttl_s);
  if (!lease.ok()) return lease.status();
  lease_ = *lease;
  absl::Status st = PutMember();
  if (st.ok()) MarkValid(asked_at);
  return st;
}

void Membership::Reload() {
  // What changed while this node was away (the map above all) is read before the node acts on
  // its view again: the watch may still be catching up.
  LoadAll();
  DeliverMembers();
  DeliverMap();
}

void Membership::MarkValid(Clock::time_point asked_at) {
  valid_until_ = (asked_at + std::chrono::seconds(options_.lease_ttl_s)).time_since_epoch().count();
}

void Membership::ApplySnapshot(const EtcdRange& all) {
  {
    std::lock_guard lock(mu_);
    members_.clear();
    stores_.clear();
    handoffs_.clear();
    controller_id_.clear();
    for (const EtcdKeyValue& kv : all.kvs) {
      EtcdEvent ev;
      ev.kv = kv;
      Apply(ev);
    }
    ++members_version_;  // the clear above changed members_ too
    dirty_ = true;
  }
  cv_.notify_all();
}

void Membership::LoadAll() {
  auto all = etcd_.GetPrefix(options_.prefix);
  if (all.ok()) ApplySnapshot(*all);
}

absl::Status Membership::Start() {
  if (started_) return absl::OkStatus();
  absl::Status st = CheckMeta();
  if (st.ok()) st = Register();
  if (!st.ok()) return st;
  auto all = etcd_.GetPrefix(options_.prefix);
  if (!all.ok()) return all.status();
  ApplySnapshot(*all);
  started_ = true;
  watch_ = etcd_.WatchPrefix(options_.prefix, all->revision + 1,
                             [this](const std::vector<EtcdEvent>& events, int64_t,
                                    bool compacted) { OnEvents(events, compacted); });
  callbacks_.OnLease(lease_.load());
  thread_ = std::thread([this] { Loop(); });
  DeliverMembers();  // the members and the map that were already there
  DeliverMap();
  SHARDMQ_LOG(INFO) << "joined the cluster as " << options_.node_id << " (role "
                    << RoleName(options_.role) << ", lease " << lease_.load() << ", ttl "
                    << options_.lease_ttl_s << " s)";
  return absl::OkStatus();
}

void Membership::Stop() {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  watch_.reset();
  // Revoking the lease removes the member key (and the controller key, if held) at once, so the
  // rest of the cluster does not wait for the TTL.
  absl::Status st = etcd_.RevokeLease(lease_.load());
  if (!st.ok()) SHARDMQ_LOG(WARNING) << "leaving the cluster: " << st.message();
  controller_ = false;
}

absl::Status Membership::MarkHandoffReady(uint32_t partition, const std::string& from,
                                          int64_t from_lease, uint64_t epoch) {
  v1::HandoffRecord rec;
  rec.set_partition(partition);
  rec.set_from(from);
  rec.set_from_lease(from_lease);
  rec.set_to(options_.node_id);
  rec.set_epoch(epoch);
  auto put = etcd_.Put(Key("handoffs/" + std::to_string(partition)), RecordToJson(rec), lease_.load());
  return put.ok() ? absl::OkStatus() : put.status();
}

void Membership::ClearHandoff(uint32_t partition) {
  const std::string key = Key("handoffs/" + std::to_string(partition));
  {
    std::lock_guard lock(mu_);
    auto it = handoffs_.find(partition);
    if (it == handoffs_.end() || it->second.to() != options_.node_id) return;
  }
  etcd_.Delete(key).IgnoreError();
}

absl::Status Membership::Drain(std::chrono::milliseconds timeout) {
  if (!started_ || !HoldsPartitions(options_.role)) return absl::OkStatus();
  // Under mu_: whether another live, active store node could take the partitions.
  auto other_store = [this] {
    for (const auto& [id, rec] : stores_) {
      if (id != options_.node_id && rec.state() == v1::StoreRecord::ACTIVE &&
          members_.contains(id)) {
        return true;
      }
    }
    return false;
  };
  const absl::Status nowhere =
      absl::FailedPreconditionError("no other live store node to take this node's partitions");
  {
    std::lock_guard lock(mu_);
    if (map_.revision != 0 && map_.CountLedBy(options_.node_id) == 0) return absl::OkStatus();
    if (!other_store()) return nowhere;
  }
  v1::StoreRecord store;
  store.set_node_id(options_.node_id);
  store.set_state(v1::StoreRecord::DRAINING);
  store.set_joined_at_ms(NowMs());
  auto put = etcd_.Put(Key("stores/" + options_.node_id), RecordToJson(store));
  if (!put.ok()) return put.status();
  SHARDMQ_LOG(INFO) << "draining: waiting for the controller to move this node's partitions";
  std::unique_lock lock(mu_);
  // Also stop waiting when the others leave or drain too (a whole cluster stopping at once).
  const bool done = cv_.wait_for(lock, timeout, [&] {
    return (map_.revision != 0 && map_.CountLedBy(options_.node_id) == 0) || !other_store();
  });
  if (done && map_.CountLedBy(options_.node_id) != 0) return nowhere;
  if (!done) {
    return absl::DeadlineExceededError("drain: still leading " +
                                       std::to_string(map_.CountLedBy(options_.node_id)) +
                                       " partitions after " + std::to_string(timeout.count()) +
                                       " ms");
  }
  return absl::OkStatus();
}

void Membership::Apply(const EtcdEvent& event) {
  const std::string& key = event.kv.key;
  if (key.compare(0, options_.prefix.size(), options_.prefix) != 0) return;
  const std::string_view name = std::string_view(key).substr(options_.prefix.size());
  const bool put = event.type == EtcdEvent::Type::kPut;
  auto suffix_after = [&](std::string_view dir) -> std::string {
    return std::string(name.substr(dir.size()));
  };
  if (name.starts_with("members/")) {
    const std::string id = suffix_after("members/");
    v1::MemberRecord rec;
    if (put && RecordFromJson(event.kv.value, &rec)) {
      rec.set_joined_revision(event.kv.create_revision);
      members_[id] = rec;
    } else {
      members_.erase(id);
    }
    ++members_version_;
    dirty_ = true;
  } else if (name.starts_with("stores/")) {
    const std::string id = suffix_after("stores/");
    v1::StoreRecord rec;
    if (put && RecordFromJson(event.kv.value, &rec)) {
      stores_[id] = rec;
    } else {
      stores_.erase(id);
    }
    dirty_ = true;
  } else if (name.starts_with("handoffs/")) {
    uint32_t partition = 0;
    v1::HandoffRecord rec;
    if (!absl::SimpleAtoi(suffix_after("handoffs/"), &partition)) return;
    if (put && RecordFromJson(event.kv.value, &rec)) {
      handoffs_[partition] = rec;
    } else {
      handoffs_.erase(partition);
    }
    dirty_ = true;
  } else if (name == "controller") {
    v1::ControllerRecord rec;
    if (put && RecordFromJson(event.kv.value, &rec)) {
      controller_id_ = rec.node_id();
    } else {
      controller_id_.clear();
    }
    if (controller_ && controller_id_ != options_.node_id) {
      controller_ = false;
      SHARDMQ_LOG(WARNING) << "no longer the cluster controller";
    }
  } else if (name == "partition_map") {
    v1::PartitionMapRecord rec;
    if (put && event.kv.mod_revision > map_.revision && RecordFromJson(event.kv.value, &rec)) {
      map_.revision = event.kv.mod_revision;
      map_.record = std::move(rec);
      dirty_ = true;
    }
  }
}

void Membership::OnEvents(const std::vector<EtcdEvent>& events, bool compacted) {
  if (compacted) {
    LoadAll();
  } else {
    {
      std::lock_guard lock(mu_);
      for (const EtcdEvent& e : events) Apply(e);
    }
    cv_.notify_all();
  }
  DeliverMembers();
  DeliverMap();
}

void Membership::DeliverMembers() {
  std::lock_guard deliver_lock(deliver_mu_);
  std::map<std::string, v1::MemberRecord> members;
  {
    std::lock_guard lock(mu_);
    if (members_version_ == delivered_members_) return;
    delivered_members_ = members_version_;
    members = members_;
  }
  callbacks_.OnMembers(members);
}

void Membership::DeliverMap() {
  // Hand a newer map to the node (callers: Start, and the watch thread).
  std::lock_guard deliver_lock(deliver_mu_);
  PartitionMap deliver;
  {
    std::lock_guard lock(mu_);
    if (map_.revision <= delivered_revision_) return;
    deliver = map_;
  }
  delivered_revision_ = deliver.revision;
  callbacks_.OnPartitionMap(deliver);
}

PartitionMap Membership::map() const {
  std::lock_guard lock(mu_);
  return map_;
}

std::map<std::string, v1::MemberRecord> Membership::members() const {
  std::lock_guard lock(mu_);
  return members_;
}

void Membership::Campaign() {
  v1::ControllerRecord rec;
  rec.set_node_id(options_.node_id);
  rec.set_elected_at_ms(NowMs());
  auto won = etcd_.CompareAndPut(Key("controller"), RecordToJson(rec), 0, lease_.load());
  if (!won.ok() || !*won) return;
  {
    std::lock_guard lock(mu_);
    controller_id_ = options_.node_id;
    dirty_ = true;
  }
  controller_ = true;
  SHARDMQ_LOG(INFO) << "elected cluster controller";
}

void Membership::Reconcile() {
  std::map<std::string, v1::StoreRecord> stores;
  std::map<std::string, v1::MemberRecord> members;
  std::map<uint32_t, v1::HandoffRecord> ready;
  PartitionMap current;
  {
    std::lock_guard lock(mu_);
    dirty_ = false;
    stores = stores_;
    members = members_;
    ready = handoffs_;
    current = map_;
  }
  v1::PartitionMapRecord next;
  if (!PlanPartitionMap(current.record, stores, members, options_.partitions, options_.vnodes,
                        &next, ready)) {
    return;
  }
  next.set_controller(options_.node_id);
  next.set_written_at_ms(NowMs());
  // Written only if nobody wrote a newer map since we read it, and we still hold the
  // controller key (a controller whose lease expired must not write).
  auto controller = etcd_.Get(Key("controller"));
  if (!controller.ok() || controller->kvs.empty() ||
      controller->kvs[0].lease != lease_.load()) {
    controller_ = false;
    return;
  }
  auto written =
      etcd_.PutIfAll({{Key("partition_map"), current.revision},
                      {Key("controller"), controller->kvs[0].mod_revision}},
                     Key("partition_map"), RecordToJson(next));
  if (!written.ok() || !*written) {
    // Someone wrote in between, or etcd is unreachable: look again once the watch catches up.
    std::lock_guard lock(mu_);
    dirty_ = true;
    backoff_ = true;
    return;
  }
  uint32_t led = 0;
  for (const v1::PartitionAssignment& a : next.assignments()) led += a.leader().empty() ? 0 : 1;
  SHARDMQ_LOG(INFO) << "partition map written: " << led << " of " << options_.partitions
                    << " partitions placed on " << stores.size() << " store node(s), "
                    << next.moves_size() << " move(s) in progress";
}

void Membership::Loop() {
  const auto period = std::chrono::milliseconds(std::max<int64_t>(options_.lease_ttl_s * 1000 / 3, 300));
  auto next_keepalive = Clock::now() + period;
  auto renewed_at = Clock::now();
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, std::min(next_keepalive, Clock::now() + std::chrono::milliseconds(500)),
                     [this] { return stopping_ || (dirty_ && controller_); });
      if (stopping_) return;
    }
    if (Clock::now() >= next_keepalive) {
      const auto asked_at = Clock::now();
      auto ttl = etcd_.KeepAlive(lease_.load());
      const bool expired = (ttl.ok() && *ttl <= 0) ||
                           (!ttl.ok() && Clock::now() - renewed_at >
                                             std::chrono::seconds(options_.lease_ttl_s));
      if (ttl.ok() && *ttl > 0) {
        renewed_at = Clock::now();
        next_keepalive = renewed_at + period;
        if (valid_until_.load() == 0) Reload();  // the rejoin below could not finish its read
        MarkValid(asked_at);
      } else if (expired) {
        SHARDMQ_LOG(WARNING) << "membership lease " << lease_.load()
                             << " expired; rejoining with a new lease";
        valid_until_ = 0;
        controller_ = false;
        callbacks_.OnLeaseLost();
        const auto granted_asked_at = Clock::now();
        auto lease = etcd_.GrantLease(options_.lease_ttl_s);
        if (lease.ok()) {
          lease_ = *lease;
          callbacks_.OnLease(*lease);
          absl::Status st = PutMember();
          if (st.ok()) {
            renewed_at = Clock::now();
            Reload();
            MarkValid(granted_asked_at);
          } else {
            SHARDMQ_LOG(WARNING) << "rejoining: " << st.message();
          }
        }
        next_keepalive = Clock::now() + period;
      } else {
        // etcd did not answer: try again soon, the lease is not gone yet.
        next_keepalive = Clock::now() + std::chrono::milliseconds(300);
      }
    }
    bool campaign = false;
    bool reconcile = false;
    {
      std::lock_guard lock(mu_);
      campaign = HoldsPartitions(options_.role) && !controller_ && controller_id_.empty();
      reconcile = controller_ && dirty_;
    }
    if (campaign) Campaign();
    if (controller_ && (reconcile || campaign)) Reconcile();
    std::unique_lock lock(mu_);
    if (backoff_) {
      backoff_ = false;
      cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping_; });
    }
  }
}

}  // namespace shardmq::cluster
