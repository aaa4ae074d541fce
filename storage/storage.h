// Durable storage of a node: sessions, subscriptions, queued and in-flight messages, incoming
// QoS 2 packet ids, wills and retained messages.
//
// Writes are Batches committed asynchronously: a storage thread group-commits the batches of all
// callers (one WriteBatch, one WAL write, and one fsync with Durability::kFsync), in the order
// Commit was called, then runs each batch's `done`. Network workers never block on disk.
// Reads happen once, at start-up (Load), before the broker serves clients.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "common/status.h"
#include "proto/records.pb.h"
#include "storage/batch.h"

namespace shardmq::storage {

enum class Durability {
  kWal,    // in the write-ahead log before acknowledging: survives a process crash
  kFsync,  // WAL fsynced before acknowledging: survives power loss
};

struct StorageOptions {
  std::string data_dir;
  Durability durability = Durability::kWal;
  uint32_t partitions = 256;  // P, fixed when the data directory is created
};

// Everything stored for one session, as loaded at start-up.
struct StoredSession {
  records::Session session;
  std::vector<records::Subscription> subscriptions;
  std::optional<records::Will> will;
  // Queued and in-flight entries, ascending by message id (the order they were queued).
  std::vector<std::pair<uint64_t, records::QueueEntry>> entries;
  std::vector<uint16_t> incoming_qos2;
};

struct Snapshot {
  std::vector<StoredSession> sessions;
  // Bodies referenced by the entries above, by message id.
  absl::flat_hash_map<uint64_t, records::Message> messages;
  std::vector<records::Message> retained;
  // Highest message id ever stored (ids of new messages must be larger).
  uint64_t max_message_id = 0;
};

// Thread-safe.
class Storage {
 public:
  virtual ~Storage() = default;

  // Applies `batch` durably (per Durability) on a storage thread, group-committed with other
  // callers' batches and in Commit order. `done` runs on the storage thread afterwards with the
  // result; it must only hand the result to its owner (e.g. post to a worker).
  virtual void Commit(Batch batch, absl::AnyInvocable<void(absl::Status)> done) = 0;
  // Commit and wait (start-up, shutdown, tests).
  virtual absl::Status CommitSync(Batch batch) = 0;

  // Reads everything back (start-up). Also drops what nothing refers to any more: records of
  // missing sessions (their listed deliveries get done marks), in-flight records of finished
  // deliveries, and message bodies no entry refers to (with their recipients and done marks).
  virtual absl::StatusOr<Snapshot> Load() = 0;

  // Waits for every batch committed so far, then stops the storage thread. Later commits fail.
  virtual void Close() = 0;
};

// Memory-only storage (unit tests; nothing survives the process).
std::unique_ptr<Storage> CreateInMemoryStorage();

// Opens (or creates) the RocksDB storage in options.data_dir. Refuses, without changing anything
// on disk:
//   FailedPreconditionError  a directory that holds files but no shardmq database, a database of
//                            another format version, or one created with another partition count;
//   DataLossError            a corrupt database (the message names what RocksDB found).
absl::StatusOr<std::unique_ptr<Storage>> OpenRocksStorage(const StorageOptions& options);

}  // namespace shardmq::storage
