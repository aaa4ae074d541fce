// In-memory Storage: the unit-test fake of storage::Storage (storage/storage.h).
//
// It keeps the same records as the RocksDB storage, in ordered maps under one mutex, and gives
// Load the same semantics (tests/storage/storage_test.cc runs one behavioural suite against
// both), including the garbage collection of records nothing refers to.
//
// Threads: none of its own. Commit validates and applies the batch on the calling thread, then
// calls `done` on that thread before returning (outside the mutex, so `done` may commit again).
// Batches are applied in the order their Commit calls take the mutex; done of concurrent
// callers may run in another order. Nothing survives the object.
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/log.h"
#include "storage/storage.h"

namespace shardmq::storage {
namespace {

class MemoryStorage final : public Storage {
 public:
  // storage::Storage
  void Commit(Batch batch, absl::AnyInvocable<void(absl::Status)> done) override {
    absl::Status status = Apply(batch);
    done(std::move(status));
  }

  absl::Status CommitSync(Batch batch) override { return Apply(batch); }

  absl::StatusOr<Snapshot> Load() override;

  void Close() override {
    std::lock_guard lock(mu_);
    closed_ = true;
  }

 private:
  // Everything stored under one client id. The session record is optional: the other records
  // may exist without it (they are orphans then, dropped by Load), as in RocksDB.
  struct Client {
    std::optional<records::Session> session;
    std::optional<records::Will> will;
    std::map<std::string, records::Subscription> subscriptions;  // by filter
    std::map<uint64_t, records::QueueEntry> inflight;
    std::set<uint16_t> incoming_qos2;
  };

  absl::Status Apply(const Batch& batch) {
    std::lock_guard lock(mu_);
    if (closed_) return absl::FailedPreconditionError("storage is closed");
    // All or nothing, like one WriteBatch.
    if (absl::Status status = ValidateBatch(batch); !status.ok()) return status;
    for (const Batch::Op& op : batch.ops()) std::visit([this](const auto& o) { ApplyOp(o); }, op);
    return absl::OkStatus();
  }

  void ApplyOp(const Batch::PutSessionOp& op) {
    clients_[op.session.client_id()].session = op.session;
  }
  void ApplyOp(const Batch::DeleteSessionOp& op) { clients_.erase(op.client_id); }
  void ApplyOp(const Batch::PutSubscriptionOp& op) {
    clients_[op.client_id].subscriptions[op.sub.filter()] = op.sub;
  }
  void ApplyOp(const Batch::DeleteSubscriptionOp& op) {
    if (Client* c = Find(op.client_id)) c->subscriptions.erase(op.filter);
  }
  void ApplyOp(const Batch::PutWillOp& op) { clients_[op.client_id].will = op.will; }
  void ApplyOp(const Batch::DeleteWillOp& op) {
    if (Client* c = Find(op.client_id)) c->will.reset();
  }
  void ApplyOp(const Batch::PutMessageOp& op) {
    Stored& m = messages_[{op.message.topic(), op.id}];
    m.message = op.message;
    m.recipients = op.recipients.encoded();  // stored encoded, like RocksDB
  }
  void ApplyOp(const Batch::DeleteMessageOp& op) {
    messages_.erase({op.topic, op.id});
    done_.erase({op.topic, op.id});
  }
  void ApplyOp(const Batch::PutInflightOp& op) {
    clients_[op.client_id].inflight[op.message_id] = op.entry;
  }
  void ApplyOp(const Batch::DeleteEntryOp& op) {
    if (Client* c = Find(op.client_id)) c->inflight.erase(op.message_id);
    done_[{op.topic, op.message_id}].insert(op.client_id);
  }
  void ApplyOp(const Batch::PutIncomingQos2Op& op) {
    clients_[op.client_id].incoming_qos2.insert(op.packet_id);
  }
  void ApplyOp(const Batch::DeleteIncomingQos2Op& op) {
    if (Client* c = Find(op.client_id)) c->incoming_qos2.erase(op.packet_id);
  }
  void ApplyOp(const Batch::PutRetainedOp& op) { retained_[op.message.topic()] = op.message; }
  void ApplyOp(const Batch::DeleteRetainedOp& op) { retained_.erase(op.topic); }

  Client* Find(const std::string& client_id) {
    auto it = clients_.find(client_id);
    return it == clients_.end() ? nullptr : &it->second;
  }

  std::mutex mu_;
  bool closed_ = false;
  std::map<std::string, Client> clients_;
  struct Stored {
    records::Message message;
    std::string recipients;  // records::Recipients wire format
  };
  std::map<std::pair<std::string, uint64_t>, Stored> messages_;  // (topic, id)
  // Done marks by (topic, id) of their message, like RocksDB's done family (kept when the body
  // is missing, until Load).
  std::map<std::pair<std::string, uint64_t>, std::set<std::string>> done_;
  std::map<std::string, records::Message> retained_;
};

absl::StatusOr<Snapshot> MemoryStorage::Load() {
  std::lock_guard lock(mu_);
  if (closed_) return absl::FailedPreconditionError("storage is closed");
  Snapshot snapshot;
  uint64_t orphans = 0;
  uint64_t dangling = 0;
  uint64_t unreferenced = 0;

  // Which bodies exist, by id (a body is found by its id; the topic only places the key).
  absl::flat_hash_set<uint64_t> bodies;
  for (const auto& [key, m] : messages_) {
    bodies.insert(key.second);
    snapshot.max_message_id = std::max(snapshot.max_message_id, key.second);
  }
  for (auto it = done_.begin(); it != done_.end();) {
    snapshot.max_message_id = std::max(snapshot.max_message_id, it->first.second);
    if (messages_.contains(it->first)) {
      ++it;
    } else {
      dangling += it->second.size();
      it = done_.erase(it);
    }
  }
  auto is_done = [&](const std::pair<std::string, uint64_t>& key, const std::string& cid) {
    auto it = done_.find(key);
    return it != done_.end() && it->second.contains(cid);
  };

  // Every recipient not done is a QUEUED entry of its session; a missing session's is finished.
  std::map<std::string, std::map<uint64_t, records::QueueEntry>> queued;  // by client, by id
  for (const auto& [key, m] : messages_) {
    records::Recipients recipients;
    if (!recipients.ParseFromString(m.recipients)) {
      return absl::DataLossError("message " + std::to_string(key.second) +
                                 ": bad Recipients record");
    }
    for (const records::Recipient& r : recipients.recipients()) {
      if (r.client_id().empty() || is_done(key, r.client_id())) continue;
      Client* c = Find(r.client_id());
      if (c == nullptr || !c->session.has_value()) {
        done_[key].insert(r.client_id());
        ++orphans;
        continue;
      }
      records::QueueEntry entry;
      entry.set_message_id(key.second);
      entry.set_qos(r.qos());
      entry.set_retain(r.retain());
      entry.mutable_subscription_ids()->Assign(r.subscription_ids().begin(),
                                               r.subscription_ids().end());
      queued[r.client_id()][key.second] = std::move(entry);
    }
  }
  // Done marks by message id only (in-flight records are keyed by client and id).
  absl::flat_hash_set<std::pair<uint64_t, std::string>> done_by_id;
  for (const auto& [key, cids] : done_) {
    for (const std::string& cid : cids) done_by_id.emplace(key.second, cid);
  }

  absl::flat_hash_set<uint64_t> referenced;
  for (auto it = clients_.begin(); it != clients_.end();) {
    Client& c = it->second;
    for (const auto& [id, entry] : c.inflight) {
      snapshot.max_message_id = std::max(snapshot.max_message_id, id);
    }
    if (!c.session.has_value()) {
      orphans += c.subscriptions.size() + c.inflight.size() + c.incoming_qos2.size() +
                 (c.will.has_value() ? 1 : 0);
      it = clients_.erase(it);
      continue;
    }
    // In-flight records of a finished delivery or of a missing body are left-overs.
    for (auto e = c.inflight.begin(); e != c.inflight.end();) {
      if (!bodies.contains(e->first) || done_by_id.contains({e->first, it->first})) {
        ++dangling;
        e = c.inflight.erase(e);
      } else {
        ++e;
      }
    }
    StoredSession stored;
    stored.session = *c.session;
    for (const auto& [filter, sub] : c.subscriptions) stored.subscriptions.push_back(sub);
    stored.will = c.will;
    // QUEUED entries and in-flight records, ascending by id; the in-flight one overrides.
    std::map<uint64_t, records::QueueEntry> entries;
    if (auto q = queued.find(it->first); q != queued.end()) entries = std::move(q->second);
    for (const auto& [id, entry] : c.inflight) entries[id] = entry;
    for (auto& [id, entry] : entries) {
      entry.set_message_id(id);  // the key is authoritative
      stored.entries.emplace_back(id, std::move(entry));
      referenced.insert(id);
    }
    stored.incoming_qos2.assign(c.incoming_qos2.begin(), c.incoming_qos2.end());
    snapshot.sessions.push_back(std::move(stored));
    ++it;
  }

  for (auto it = messages_.begin(); it != messages_.end();) {
    if (referenced.contains(it->first.second)) {
      snapshot.messages[it->first.second] = it->second.message;
      ++it;
    } else {
      ++unreferenced;
      done_.erase(it->first);
      it = messages_.erase(it);
    }
  }
  for (const auto& [topic, message] : retained_) snapshot.retained.push_back(message);

  SHARDMQ_LOG(INFO) << "storage (memory): loaded " << snapshot.sessions.size() << " sessions, "
                    << snapshot.messages.size() << " messages, " << snapshot.retained.size()
                    << " retained; removed " << orphans << " orphan records, " << dangling
                    << " records about a missing message body or a finished delivery, " << unreferenced
                    << " unreferenced message bodies";
  return snapshot;
}

}  // namespace

std::unique_ptr<Storage> CreateInMemoryStorage() { return std::make_unique<MemoryStorage>(); }

}  // namespace shardmq::storage
