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
    std::map<uint64_t, records::QueueEntry> queue;
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
    messages_[{op.message.topic(), op.id}] = op.message;
  }
  void ApplyOp(const Batch::DeleteMessageOp& op) { messages_.erase({op.topic, op.id}); }
  void ApplyOp(const Batch::PutQueuedOp& op) {
    clients_[op.client_id].queue[op.message_id] = op.entry;
  }
  void ApplyOp(const Batch::PutInflightOp& op) {
    Client& c = clients_[op.client_id];
    c.queue.erase(op.message_id);
    c.inflight[op.message_id] = op.entry;
  }
  void ApplyOp(const Batch::DeleteEntryOp& op) {
    if (Client* c = Find(op.client_id)) {
      c->queue.erase(op.message_id);
      c->inflight.erase(op.message_id);
    }
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
  std::map<std::pair<std::string, uint64_t>, records::Message> messages_;  // (topic, id)
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
  for (const auto& [key, message] : messages_) {
    bodies.insert(key.second);
    snapshot.max_message_id = std::max(snapshot.max_message_id, key.second);
  }

  absl::flat_hash_set<uint64_t> referenced;
  for (auto it = clients_.begin(); it != clients_.end();) {
    Client& c = it->second;
    for (const auto& [id, entry] : c.queue) {
      snapshot.max_message_id = std::max(snapshot.max_message_id, id);
    }
    for (const auto& [id, entry] : c.inflight) {
      snapshot.max_message_id = std::max(snapshot.max_message_id, id);
    }
    if (!c.session.has_value()) {
      orphans += c.subscriptions.size() + c.queue.size() + c.inflight.size() +
                 c.incoming_qos2.size() + (c.will.has_value() ? 1 : 0);
      it = clients_.erase(it);
      continue;
    }
    // An id in both queue and inflight: the in-flight state (packet id, RELEASED) is the more
    // advanced one and wins (see rocks_storage.cc Load).
    for (const auto& [id, entry] : c.inflight) {
      if (c.queue.erase(id) != 0) ++orphans;
    }
    // Entries whose body is gone cannot be delivered.
    for (auto* entries : {&c.queue, &c.inflight}) {
      for (auto e = entries->begin(); e != entries->end();) {
        if (!bodies.contains(e->first)) {
          ++dangling;
          e = entries->erase(e);
        } else {
          ++e;
        }
      }
    }
    StoredSession stored;
    stored.session = *c.session;
    for (const auto& [filter, sub] : c.subscriptions) stored.subscriptions.push_back(sub);
    stored.will = c.will;
    // Merge queue and inflight, ascending by message id.
    auto q = c.queue.begin();
    auto f = c.inflight.begin();
    while (q != c.queue.end() || f != c.inflight.end()) {
      auto& next = (f == c.inflight.end() || (q != c.queue.end() && q->first < f->first)) ? q : f;
      records::QueueEntry entry = next->second;
      entry.set_message_id(next->first);  // the key is authoritative
      stored.entries.emplace_back(next->first, std::move(entry));
      referenced.insert(next->first);
      ++next;
    }
    stored.incoming_qos2.assign(c.incoming_qos2.begin(), c.incoming_qos2.end());
    snapshot.sessions.push_back(std::move(stored));
    ++it;
  }

  for (auto it = messages_.begin(); it != messages_.end();) {
    if (referenced.contains(it->first.second)) {
      snapshot.messages[it->first.second] = it->second;
      ++it;
    } else {
      ++unreferenced;
      it = messages_.erase(it);
    }
  }
  for (const auto& [topic, message] : retained_) snapshot.retained.push_back(message);

  SHARDMQ_LOG(INFO) << "storage (memory): loaded " << snapshot.sessions.size() << " sessions, "
                    << snapshot.messages.size() << " messages, " << snapshot.retained.size()
                    << " retained; removed " << orphans << " orphan records, " << dangling
                    << " entries without a message body, " << unreferenced
                    << " unreferenced message bodies";
  return snapshot;
}

}  // namespace

std::unique_ptr<Storage> CreateInMemoryStorage() { return std::make_unique<MemoryStorage>(); }

}  // namespace shardmq::storage
