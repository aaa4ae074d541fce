// Internals of the RocksDB storage (rocks_storage.cc) that tests need: the group-commit bounds
// and test hooks. Production code uses storage::OpenRocksStorage (storage/storage.h) only.
// No RocksDB types here: like every header outside rocks_storage.cc, this one must not make its
// includers depend on <rocksdb/...>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/storage.h"

namespace shardmq::storage::rocks {

// One group commit takes at most this many batches ...
inline constexpr size_t kMaxGroupBatches = 1024;
// ... and stops adding batches once its WriteBatch holds this many bytes (a single larger batch
// is still written whole: batches are atomic).
inline constexpr size_t kMaxGroupBytes = size_t{4} << 20;

// ---- Test hooks. `storage` must come from OpenRocksStorage. ----

struct WriteStats {
  uint64_t writes = 0;   // rocksdb::DB::Write calls by the writer thread (one per group)
  uint64_t batches = 0;  // batches those writes carried
};
WriteStats GetWriteStatsForTesting(Storage& storage);

// The keys of column family `family` (a name from column_families.h), in key order.
absl::StatusOr<std::vector<std::string>> ListKeysForTesting(Storage& storage,
                                                            std::string_view family);

// Flushes every memtable to SST files (so tests can find and damage them).
absl::Status FlushForTesting(Storage& storage);

// Open the database in `data_dir` (not open elsewhere) directly with RocksDB, change it, and
// close it: for building databases that OpenRocksStorage must refuse.
absl::Status PutRawForTesting(const std::string& data_dir, std::string_view family,
                              const std::string& key, const std::string& value);
absl::Status DeleteRawForTesting(const std::string& data_dir, std::string_view family,
                                 const std::string& key);
absl::Status DropColumnFamilyForTesting(const std::string& data_dir, std::string_view family);

}  // namespace shardmq::storage::rocks
