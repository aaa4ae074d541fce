// The storage registry: one object owning every record kind's store.
#pragma once

#include <cstdint>
#include <memory>

#include "storage/message_queue.h"
#include "storage/retained_store.h"
#include "storage/session_store.h"

namespace shardmq::storage {

struct StorageLimits {
  uint32_t max_retained_messages = 0;  // 0 = unlimited
};

class Storage {
 public:
  virtual ~Storage() = default;
  virtual SessionStore& sessions() = 0;
  virtual MessageQueue& queues() = 0;
  virtual RetainedStore& retained() = 0;
};

// Memory-only storage: nothing survives a restart. The broker's default until the RocksDB
// implementation lands (TODO(#3)); afterwards it is the unit-test fake.
std::unique_ptr<Storage> CreateInMemoryStorage(const StorageLimits& limits);

}  // namespace shardmq::storage
