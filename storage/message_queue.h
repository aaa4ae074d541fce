// Per-session message queues: queued and in-flight outgoing messages, and the packet ids of
// incoming QoS 2 publishes awaiting PUBREL.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "proto/records.pb.h"

namespace shardmq::storage {

// Thread-safe.
class MessageQueue {
 public:
  virtual ~MessageQueue() = default;
  // Stores `entry` at position `seq` of the queue of `client_id` (seq increases per session).
  virtual absl::Status Put(std::string_view client_id, uint64_t seq,
                           const records::QueueEntry& entry) = 0;
  // Removes one entry. Removing a missing entry is OK.
  virtual absl::Status Remove(std::string_view client_id, uint64_t seq) = 0;
  // All entries of a session, ordered by seq.
  virtual absl::StatusOr<std::vector<std::pair<uint64_t, records::QueueEntry>>> Load(
      std::string_view client_id) = 0;
  // Records (present=true) or forgets an incoming QoS 2 packet id awaiting PUBREL.
  virtual absl::Status SetIncomingQos2(std::string_view client_id, uint16_t packet_id,
                                       bool present) = 0;
  virtual absl::StatusOr<std::vector<uint16_t>> LoadIncomingQos2(std::string_view client_id) = 0;
  // Drops the queue and incoming QoS 2 state of a session.
  virtual absl::Status Clear(std::string_view client_id) = 0;
};

}  // namespace shardmq::storage
