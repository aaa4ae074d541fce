// Durable MQTT session state (session record with subscriptions and will), keyed by client id.
#pragma once

#include <string_view>
#include <vector>

#include "common/status.h"
#include "proto/records.pb.h"

namespace shardmq::storage {

// Thread-safe. Implementations may block on disk: the in-memory one does not; the RocksDB one
// (issue 3) runs on storage threads.
class SessionStore {
 public:
  virtual ~SessionStore() = default;
  // Creates or replaces the session record of `record.client_id()`.
  virtual absl::Status Save(const records::Session& record) = 0;
  // Deletes the session and everything stored for it (queue, in-flight state). Deleting a
  // session that does not exist is OK.
  virtual absl::Status Delete(std::string_view client_id) = 0;
  // Returns the session, or NotFoundError.
  virtual absl::StatusOr<records::Session> Load(std::string_view client_id) = 0;
  // Every stored session (start-up recovery).
  virtual absl::StatusOr<std::vector<records::Session>> LoadAll() = 0;
};

}  // namespace shardmq::storage
