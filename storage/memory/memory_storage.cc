// In-memory Storage: maps behind mutexes. Used by the broker until RocksDB lands (issue 3) and
// as the unit-test fake afterwards.
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/topic_tree.h"
#include "storage/storage.h"

namespace shardmq::storage {
namespace {

class MemorySessionStore final : public SessionStore {
 public:
  explicit MemorySessionStore(MessageQueue& queues) : queues_(queues) {}
  absl::Status Save(const records::Session& record) override {
    std::lock_guard lock(mu_);
    sessions_[record.client_id()] = record;
    return absl::OkStatus();
  }
  absl::Status Delete(std::string_view client_id) override {
    {
      std::lock_guard lock(mu_);
      sessions_.erase(std::string(client_id));
    }
    return queues_.Clear(client_id);  // the contract: everything stored for the session
  }
  absl::StatusOr<records::Session> Load(std::string_view client_id) override {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(std::string(client_id));
    if (it == sessions_.end()) return absl::NotFoundError("no session");
    return it->second;
  }
  absl::StatusOr<std::vector<records::Session>> LoadAll() override {
    std::lock_guard lock(mu_);
    std::vector<records::Session> out;
    out.reserve(sessions_.size());
    for (const auto& [id, s] : sessions_) out.push_back(s);
    return out;
  }

 private:
  MessageQueue& queues_;
  std::mutex mu_;
  std::unordered_map<std::string, records::Session> sessions_;
};

class MemoryMessageQueue final : public MessageQueue {
 public:
  absl::Status Put(std::string_view client_id, uint64_t seq,
                   const records::QueueEntry& entry) override {
    std::lock_guard lock(mu_);
    queues_[std::string(client_id)].entries[seq] = entry;
    return absl::OkStatus();
  }
  absl::Status Remove(std::string_view client_id, uint64_t seq) override {
    std::lock_guard lock(mu_);
    auto it = queues_.find(std::string(client_id));
    if (it != queues_.end()) it->second.entries.erase(seq);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::pair<uint64_t, records::QueueEntry>>> Load(
      std::string_view client_id) override {
    std::lock_guard lock(mu_);
    std::vector<std::pair<uint64_t, records::QueueEntry>> out;
    auto it = queues_.find(std::string(client_id));
    if (it != queues_.end()) {
      for (const auto& e : it->second.entries) out.push_back(e);
    }
    return out;
  }
  absl::Status SetIncomingQos2(std::string_view client_id, uint16_t packet_id,
                               bool present) override {
    std::lock_guard lock(mu_);
    auto& q = queues_[std::string(client_id)];
    if (present) {
      q.incoming_qos2.insert(packet_id);
    } else {
      q.incoming_qos2.erase(packet_id);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<uint16_t>> LoadIncomingQos2(std::string_view client_id) override {
    std::lock_guard lock(mu_);
    auto it = queues_.find(std::string(client_id));
    if (it == queues_.end()) return std::vector<uint16_t>{};
    return std::vector<uint16_t>(it->second.incoming_qos2.begin(), it->second.incoming_qos2.end());
  }
  absl::Status Clear(std::string_view client_id) override {
    std::lock_guard lock(mu_);
    queues_.erase(std::string(client_id));
    return absl::OkStatus();
  }

 private:
  struct Queue {
    std::map<uint64_t, records::QueueEntry> entries;
    std::unordered_set<uint16_t> incoming_qos2;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Queue> queues_;
};

class MemoryRetainedStore final : public RetainedStore {
 public:
  explicit MemoryRetainedStore(uint32_t max_count) : max_count_(max_count) {}

  absl::Status Set(const records::Message& message) override {
    std::lock_guard lock(mu_);
    if (message.payload().empty()) {
      tree_.Erase(message.topic());
      return absl::OkStatus();
    }
    if (max_count_ != 0 && tree_.size() >= max_count_ && tree_.Get(message.topic()) == nullptr) {
      return absl::ResourceExhaustedError("retained message limit reached");
    }
    tree_.Set(message.topic(), message);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<records::Message>> Match(std::string_view filter,
                                                      int64_t now_ms) override {
    std::lock_guard lock(mu_);
    std::vector<records::Message> out;
    std::vector<std::string> expired;
    tree_.ForEachMatching(filter, [&](std::string_view topic, const records::Message& m) {
      if (m.expiry_at_ms() != 0 && static_cast<int64_t>(m.expiry_at_ms()) <= now_ms) {
        expired.emplace_back(topic);
      } else {
        out.push_back(m);
      }
    });
    for (const auto& t : expired) tree_.Erase(t);
    return out;
  }

  size_t Count() override {
    std::lock_guard lock(mu_);
    return tree_.size();
  }

 private:
  const uint32_t max_count_;
  std::mutex mu_;
  topic::TopicTree<records::Message> tree_;
};

class MemoryStorage final : public Storage {
 public:
  explicit MemoryStorage(const StorageLimits& limits)
      : sessions_(queues_), retained_(limits.max_retained_messages) {}
  SessionStore& sessions() override { return sessions_; }
  MessageQueue& queues() override { return queues_; }
  RetainedStore& retained() override { return retained_; }

 private:
  MemoryMessageQueue queues_;  // before sessions_, which refers to it
  MemorySessionStore sessions_;
  MemoryRetainedStore retained_;
};

}  // namespace

std::unique_ptr<Storage> CreateInMemoryStorage(const StorageLimits& limits) {
  return std::make_unique<MemoryStorage>(limits);
}

}  // namespace shardmq::storage
