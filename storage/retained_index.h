// The in-memory index of retained messages: what SUBSCRIBE reads (wildcard look-ups need a topic
// tree; RocksDB keys are ordered by partition, not by topic). Durable copies are written through
// storage::Batch::PutRetained/DeleteRetained and loaded back at start-up.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/topic_tree.h"
#include "proto/records.pb.h"

namespace shardmq::storage {

// Thread-safe (one mutex; touched only by retained publishes and SUBSCRIBE, never per message).
class RetainedIndex {
 public:
  struct Limits {
    uint32_t max_messages = 0;       // 0 = unlimited
    uint32_t max_payload_bytes = 0;  // largest retained payload; 0 = unlimited
  };
  explicit RetainedIndex(Limits limits) : limits_(limits) {}

  // Sets the retained message of `message.topic()`; an empty payload clears it (MQTT s3.3.1.3).
  // ResourceExhaustedError when a new topic would exceed max_messages or the payload exceeds
  // max_payload_bytes (nothing changes then).
  absl::Status Set(const records::Message& message);
  // Retained messages whose topic matches `filter` (a valid non-shared filter) and that have not
  // expired at `now_ms`. Expired ones are removed and their topics appended to `*expired` (so the
  // caller can delete them from storage), when given.
  std::vector<records::Message> Match(std::string_view filter, int64_t now_ms,
                                      std::vector<std::string>* expired = nullptr);
  // Every retained message (including '$' topics) not expired at `now_ms`.
  std::vector<records::Message> All(int64_t now_ms);
  // The topics that have a retained message.
  std::vector<std::string> Topics();
  size_t Count();

 private:
  const Limits limits_;
  std::mutex mu_;
  topic::TopicTree<records::Message> tree_;
};

}  // namespace shardmq::storage
