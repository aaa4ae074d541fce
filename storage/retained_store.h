// Retained messages, one per topic.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "proto/records.pb.h"

namespace shardmq::storage {

// Thread-safe.
class RetainedStore {
 public:
  virtual ~RetainedStore() = default;
  // Sets the retained message of `message.topic()`; an empty payload clears it (MQTT s3.3.1.3).
  // ResourceExhaustedError when a new topic would exceed the configured count limit.
  virtual absl::Status Set(const records::Message& message) = 0;
  // Retained messages whose topic matches `filter` (a valid non-shared filter) and that have not
  // expired at `now_ms` (expired ones are removed).
  virtual absl::StatusOr<std::vector<records::Message>> Match(std::string_view filter,
                                                              int64_t now_ms) = 0;
  virtual size_t Count() = 0;
};

}  // namespace shardmq::storage
