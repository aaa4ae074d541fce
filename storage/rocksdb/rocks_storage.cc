// RocksDB storage: one database per node in StorageOptions::data_dir, one column family per record
// kind (column_families.h), keys from keys.h, values the records.proto messages.
//
// Threads:
//  - Commit (any thread) appends {batch, done} to queue_ under mu_ and returns.
//  - One writer thread drains the queue: it takes up to kMaxGroupBatches queued batches (fewer
//    once kMaxGroupBytes are encoded) into one rocksdb::WriteBatch, writes it (one WAL write, one
//    fsync with Durability::kFsync), then runs each batch's `done` in Commit order. This is group
//    commit: under load, many batches share one WAL write and one fsync.
//  - Load (start-up) runs on the caller's thread. db_mu_ serializes it with the writer's writes
//    and with Close, so its read and its garbage-collection write see no concurrent commit.
//  - Close stops the writer after it has drained the queue, then closes the database.
//
// Opening never deletes, repairs or resets anything: an existing database is first opened
// read-only (with a logger that writes no file) and checked, and only opened for writing if it
// passes; everything it refuses is left exactly as it was.
#include "storage/rocksdb/rocks_storage.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/hash.h"
#include "common/log.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/table_properties_collectors.h"
#include "rocksdb/write_batch.h"
#include "storage/rocksdb/column_families.h"
#include "storage/rocksdb/keys.h"
#include "storage/storage.h"

namespace shardmq::storage {
namespace rocks {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kDay = 24 * 60 * 60;

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

std::string_view View(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }
rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

// rocksdb::Status -> absl::Status, at the module edge (STYLE s4). `opening`: while opening an
// existing database, a file RocksDB cannot find is lost data, not a transient IO error.
absl::Status FromRocks(const rocksdb::Status& s, const std::string& context, bool opening = false) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = context + ": " + s.ToString();
  switch (s.code()) {
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(msg);
    case rocksdb::Status::kNotFound:
      return opening ? absl::DataLossError(msg) : absl::NotFoundError(msg);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(msg);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(msg);
    case rocksdb::Status::kIOError:
      if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
      if (opening && s.IsPathNotFound()) return absl::DataLossError(msg);
      return absl::UnavailableError(msg);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kTryAgain:
      return absl::UnavailableError(msg);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(msg);
    case rocksdb::Status::kShutdownInProgress:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// The info log of the read-only probe: it must not create or rotate LOG files in a directory
// that may yet be refused.
class NullLogger final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

// Lets one line through per interval and counts the rest (STYLE s4: rate-limit runtime
// failures). Used by the writer thread only.
class LogLimiter {
 public:
  // Returns true if a line may be logged now; `*suppressed` is how many were dropped since.
  bool Allow(uint64_t* suppressed) {
    const auto now = std::chrono::steady_clock::now();
    if (logged_once_ && now - last_ < std::chrono::seconds(10)) {
      ++suppressed_;
      return false;
    }
    logged_once_ = true;
    last_ = now;
    *suppressed = std::exchange(suppressed_, 0);
    return true;
  }

 private:
  bool logged_once_ = false;
  std::chrono::steady_clock::time_point last_;
  uint64_t suppressed_ = 0;
};

// ---- Options (the reasoning is in storage/README.md) ----

rocksdb::CompressionType Pick(const std::vector<rocksdb::CompressionType>& supported,
                              rocksdb::CompressionType wanted, rocksdb::CompressionType fallback) {
  return std::find(supported.begin(), supported.end(), wanted) != supported.end() ? wanted
                                                                                  : fallback;
}

rocksdb::DBOptions MakeDbOptions() {
  rocksdb::DBOptions o;
  o.paranoid_checks = true;
  o.create_if_missing = false;
  o.create_missing_column_families = false;
  o.max_open_files = -1;  // keep every table open: needed by periodic compaction
  o.max_background_jobs = 4;
  // One writer thread writes; the vector memtables (churn families) do not allow concurrent
  // memtable writes anyway.
  o.allow_concurrent_memtable_write = false;
  // All memtables together; past this the largest is flushed.
  o.db_write_buffer_size = 256 * kMiB;
  // A WAL file lives until every family with data in it has flushed. Capping the total makes
  // RocksDB flush the quiet families (sessions, meta) that would otherwise pin old WALs. The cap
  // also bounds crash recovery: the whole live WAL is replayed at start-up (about 3 s per 100 MB
  // here), so it is kept at twice the largest memtable.
  o.max_total_wal_size = 64 * kMiB;
  o.bytes_per_sync = 1 * kMiB;
  o.wal_bytes_per_sync = 1 * kMiB;
  // A power loss can leave an incomplete last WAL record: tolerated. Corruption anywhere else in
  // the WAL fails the open (kPointInTimeRecovery would silently drop everything after it,
  // including acknowledged messages), and the directory is refused, never reset.
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // Bound RocksDB's own info LOG and MANIFEST.
  o.keep_log_file_num = 5;
  o.max_log_file_size = 64 * kMiB;
  o.max_manifest_file_size = 64 * kMiB;
  return o;
}

rocksdb::ColumnFamilyOptions MakeFamilyOptions(FamilyKind kind,
                                               const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  const std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  o.compression = Pick(supported, rocksdb::kLZ4Compression, rocksdb::kNoCompression);
  o.bottommost_compression = Pick(supported, rocksdb::kZSTD, o.compression);
  o.compaction_style = rocksdb::kCompactionStyleLevel;
  // Sizes levels from the last one up, so ~90% of the data is in the last level and space
  // amplification stays near 1.1 whatever the data size.
  o.level_compaction_dynamic_level_bytes = true;

  rocksdb::BlockBasedTableOptions table;
  // Reads happen only at start-up (full scans, fill_cache = false), so no bloom filters and a
  // small shared cache for index blocks.
  table.block_cache = cache;
  table.block_size = 16 * 1024;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  switch (kind) {
    case FamilyKind::kChurn:
      // Most records die young: a larger memtable lets more put/delete pairs meet in memory
      // (the put then never reaches an SST).
      o.write_buffer_size = 32 * kMiB;
      // Nothing reads these families while the broker runs (only Load, at start-up), so the
      // memtable is an unsorted vector, sorted once when it is flushed or iterated. A skip list
      // spent most of the writer thread's time placing each per-delivery key (format version 1
      // wrote one per persistent subscriber per message, in random key order): fan-out to
      // 1,000 offline sessions queued about 2x faster with the vector.
      o.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
      // SSTs full of tombstones (delivered messages) are compacted soon, down to the last level
      // where the tombstones are dropped, instead of waiting for size triggers.
      o.table_properties_collector_factories.push_back(
          rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/32 * 1024,
                                                        /*deletion_trigger=*/16 * 1024,
                                                        /*deletion_ratio=*/0.5));
      o.periodic_compaction_seconds = 1 * kDay;
      break;
    case FamilyKind::kState:
      o.write_buffer_size = 16 * kMiB;
      o.periodic_compaction_seconds = 7 * kDay;
      break;
    case FamilyKind::kMeta:
      o.write_buffer_size = 4 * kMiB;
      o.periodic_compaction_seconds = 7 * kDay;
      break;
  }
  return o;
}

// Descriptors for `names` (column families of one database, "default" included).
std::vector<rocksdb::ColumnFamilyDescriptor> Descriptors(const std::vector<std::string>& names) {
  auto cache = rocksdb::NewLRUCache(8 * kMiB);
  std::vector<rocksdb::ColumnFamilyDescriptor> out;
  for (const std::string& name : names) {
    FamilyKind kind = FamilyKind::kMeta;  // "default" (unused) and anything unknown
    for (const FamilyInfo& info : kFamilies) {
      if (info.name == name) kind = info.kind;
    }
    out.emplace_back(name, MakeFamilyOptions(kind, cache));
  }
  return out;
}

std::vector<std::string> AllFamilyNames() {
  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName};
  for (const FamilyInfo& info : kFamilies) names.emplace_back(info.name);
  return names;
}

// An open database and its column family handles (by name order of `names`).
struct OpenDb {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::vector<std::string> names;

  OpenDb() = default;
  OpenDb(OpenDb&&) = default;
  OpenDb& operator=(OpenDb&&) = default;
  ~OpenDb() { Close().IgnoreError(); }  // errors were reported by an explicit Close, if any

  rocksdb::ColumnFamilyHandle* Handle(std::string_view name) const {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) return handles[i];
    }
    return nullptr;
  }

  absl::Status Close() {
    if (db == nullptr) return absl::OkStatus();
    for (rocksdb::ColumnFamilyHandle* h : handles) {
      db->DestroyColumnFamilyHandle(h).PermitUncheckedError();  // only fails for null handles
    }
    handles.clear();
    const rocksdb::Status s = db->Close();
    db.reset();
    return FromRocks(s, "closing RocksDB");
  }
};

absl::StatusOr<OpenDb> OpenWithFamilies(const std::string& dir, const rocksdb::DBOptions& options,
                                        const std::vector<std::string>& names, bool read_only) {
  OpenDb out;
  out.names = names;
  rocksdb::DB* db = nullptr;
  const std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = Descriptors(names);
  const rocksdb::Status s =
      read_only ? rocksdb::DB::OpenForReadOnly(options, dir, descriptors, &out.handles, &db)
                : rocksdb::DB::Open(options, dir, descriptors, &out.handles, &db);
  if (!s.ok()) return FromRocks(s, "opening RocksDB in " + dir, /*opening=*/true);
  out.db.reset(db);
  return out;
}

// Opens an existing database for writing, with all its column families, for the test hooks.
absl::StatusOr<OpenDb> OpenRaw(const std::string& dir) {
  std::vector<std::string> names;
  const rocksdb::Status s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names);
  if (!s.ok()) return FromRocks(s, "listing column families of " + dir, /*opening=*/true);
  return OpenWithFamilies(dir, MakeDbOptions(), names, /*read_only=*/false);
}

// ---- Storage ----

class RocksStorage final : public Storage {
 public:
  RocksStorage(OpenDb db, const StorageOptions& options)
      : db_(std::move(db)), partitions_(options.partitions) {
    for (const FamilyInfo& info : kFamilies) {
      cf_[static_cast<size_t>(info.family)] = db_.Handle(info.name);
    }
    write_options_.sync = options.durability == Durability::kFsync;
    writer_ = std::thread([this] { WriterLoop(); });
    writer_id_ = writer_.get_id();
  }

  ~RocksStorage() override { Close(); }

  // storage::Storage
  void Commit(Batch batch, absl::AnyInvocable<void(absl::Status)> done) override {
    {
      std::lock_guard lock(mu_);
      if (!closing_) {
        queue_.push_back(Pending{std::move(batch), std::move(done)});
        cv_.notify_one();
        return;
      }
    }
    // The writer is gone: `done` runs here, on the caller's thread.
    done(absl::FailedPreconditionError("storage is closed"));
  }

  absl::Status CommitSync(Batch batch) override {
    if (std::this_thread::get_id() == writer_id_) {
      // From a `done` callback: the writer would wait for itself.
      SHARDMQ_LOG(ERROR) << "storage: CommitSync called from a commit callback";
      return absl::FailedPreconditionError("CommitSync from a commit callback would deadlock");
    }
    std::promise<absl::Status> promise;
    std::future<absl::Status> result = promise.get_future();
    Commit(std::move(batch), [&promise](absl::Status s) { promise.set_value(std::move(s)); });
    return result.get();
  }

  absl::StatusOr<Snapshot> Load() override;

  void Close() override {
    if (std::this_thread::get_id() == writer_id_) {
      // From a `done` callback: waiting for the writer would wait for ourselves.
      SHARDMQ_LOG(ERROR) << "storage: Close called from a commit callback";
      std::abort();
    }
    std::lock_guard close_lock(close_mu_);
    if (closed_) return;
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_one();
    if (writer_.joinable()) writer_.join();
    std::lock_guard db_lock(db_mu_);
    // Flushing the memtables makes the next start-up skip the write-ahead log replay (a full
    // 64 MiB WAL takes about 3 s to replay). Nothing is lost if it fails: the WAL still has it.
    if (absl::Status s = FlushLocked(); !s.ok()) SHARDMQ_LOG(WARNING) << "storage: " << s;
    if (absl::Status s = db_.Close(); !s.ok()) SHARDMQ_LOG(ERROR) << "storage: " << s;
    closed_ = true;
  }

  // Test hooks (rocks_storage.h).
  WriteStats Stats() const {
    return WriteStats{writes_.load(std::memory_order_relaxed),
                      batches_.load(std::memory_order_relaxed)};
  }
  absl::StatusOr<std::vector<std::string>> ListKeys(std::string_view family);
  absl::Status Flush();

 private:
  absl::Status FlushLocked();  // db_mu_ held

  struct Pending {
    Batch batch;
    absl::AnyInvocable<void(absl::Status)> done;
  };

  rocksdb::ColumnFamilyHandle* Cf(Family family) const { return cf_[static_cast<size_t>(family)]; }
  uint32_t PartitionOfKey(std::string_view key) const { return PartitionOf(key, partitions_); }

  void WriterLoop();
  // Appends the ops of `batch` to `wb`; on error `wb` is left as it was.
  absl::Status Encode(const Batch& batch, rocksdb::WriteBatch& wb) const;
  void EncodeOp(const Batch::Op& op, rocksdb::WriteBatch& wb, std::string& value,
                bool& serialized) const;

  OpenDb db_;  // guarded by db_mu_ for Close; handles are immutable while open
  std::array<rocksdb::ColumnFamilyHandle*, kFamilyCount> cf_{};
  const uint32_t partitions_;
  rocksdb::WriteOptions write_options_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // guarded by mu_
  bool closing_ = false;       // guarded by mu_

  std::mutex db_mu_;  // one DB writer at a time (writer thread or Load); Close vs users of db_

  std::mutex close_mu_;
  bool closed_ = false;        // guarded by close_mu_
  std::thread writer_;         // joined by Close (under close_mu_)
  std::thread::id writer_id_;  // set once in the constructor

  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> batches_{0};
  LogLimiter write_errors_log_;  // writer thread only
  LogLimiter refused_log_;       // writer thread only
};

void RocksStorage::EncodeOp(const Batch::Op& any, rocksdb::WriteBatch& wb, std::string& value,
                            bool& serialized) const {
  // rocksdb::WriteBatch::Put/Delete only fail for a batch larger than its max_bytes (unset).
  auto put = [&](Family f, const std::string& key, const google::protobuf::Message& record) {
    value.clear();
    serialized = serialized && record.SerializeToString(&value);
    wb.Put(Cf(f), key, value).PermitUncheckedError();
  };
  auto del = [&](Family f, const std::string& key) {
    wb.Delete(Cf(f), key).PermitUncheckedError();
  };
  std::visit(
      [&](const auto& op) {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, Batch::PutSessionOp>) {
          const std::string& cid = op.session.client_id();
          put(Family::kSessions, keys::ClientKey(PartitionOfKey(cid), cid), op.session);
        } else if constexpr (std::is_same_v<T, Batch::DeleteSessionOp>) {
          const uint32_t p = PartitionOfKey(op.client_id);
          const std::string begin = keys::ClientPrefix(p, op.client_id);
          const std::string end = keys::ClientPrefixEnd(p, op.client_id);
          for (Family f : kPerClientRangeFamilies) {
            wb.DeleteRange(Cf(f), begin, end).PermitUncheckedError();
          }
          const std::string key = keys::ClientKey(p, op.client_id);
          del(Family::kSessions, key);
          del(Family::kWills, key);
        } else if constexpr (std::is_same_v<T, Batch::PutSubscriptionOp>) {
          put(Family::kSubscriptions,
              keys::SubscriptionKey(PartitionOfKey(op.client_id), op.client_id, op.sub.filter()),
              op.sub);
        } else if constexpr (std::is_same_v<T, Batch::DeleteSubscriptionOp>) {
          del(Family::kSubscriptions,
              keys::SubscriptionKey(PartitionOfKey(op.client_id), op.client_id, op.filter));
        } else if constexpr (std::is_same_v<T, Batch::PutWillOp>) {
          put(Family::kWills, keys::ClientKey(PartitionOfKey(op.client_id), op.client_id), op.will);
        } else if constexpr (std::is_same_v<T, Batch::DeleteWillOp>) {
          del(Family::kWills, keys::ClientKey(PartitionOfKey(op.client_id), op.client_id));
        } else if constexpr (std::is_same_v<T, Batch::PutMessageOp>) {
          const std::string key = keys::MessageKey(PartitionOfKey(op.message.topic()), op.id);
          put(Family::kMessages, key, op.message);
          if (!op.recipients.empty()) {
            wb.Put(Cf(Family::kRecipients), key, op.recipients.encoded()).PermitUncheckedError();
          }
        } else if constexpr (std::is_same_v<T, Batch::DeleteMessageOp>) {
          const uint32_t p = PartitionOfKey(op.topic);
          const std::string key = keys::MessageKey(p, op.id);
          del(Family::kMessages, key);
          del(Family::kRecipients, key);
          wb.DeleteRange(Cf(Family::kDone), key, keys::DoneEnd(p, op.id)).PermitUncheckedError();
        } else if constexpr (std::is_same_v<T, Batch::PutInflightOp>) {
          put(Family::kInflight,
              keys::EntryKey(PartitionOfKey(op.client_id), op.client_id, op.message_id), op.entry);
        } else if constexpr (std::is_same_v<T, Batch::DeleteEntryOp>) {
          del(Family::kInflight,
              keys::EntryKey(PartitionOfKey(op.client_id), op.client_id, op.message_id));
          wb.Put(Cf(Family::kDone), keys::DoneKey(PartitionOfKey(op.topic), op.message_id, op.client_id),
                 rocksdb::Slice())
              .PermitUncheckedError();
        } else if constexpr (std::is_same_v<T, Batch::PutIncomingQos2Op>) {
          wb.Put(Cf(Family::kIncomingQos2),
                 keys::IncomingQos2Key(PartitionOfKey(op.client_id), op.client_id, op.packet_id),
                 rocksdb::Slice())
              .PermitUncheckedError();
        } else if constexpr (std::is_same_v<T, Batch::DeleteIncomingQos2Op>) {
          del(Family::kIncomingQos2,
              keys::IncomingQos2Key(PartitionOfKey(op.client_id), op.client_id, op.packet_id));
        } else if constexpr (std::is_same_v<T, Batch::PutRetainedOp>) {
          const std::string& topic = op.message.topic();
          put(Family::kRetained, keys::RetainedKey(PartitionOfKey(topic), topic), op.message);
        } else if constexpr (std::is_same_v<T, Batch::DeleteRetainedOp>) {
          del(Family::kRetained, keys::RetainedKey(PartitionOfKey(op.topic), op.topic));
        } else {
          static_assert(sizeof(T) == 0, "unhandled Batch op");
        }
      },
      any);
}

absl::Status RocksStorage::Encode(const Batch& batch, rocksdb::WriteBatch& wb) const {
  SHARDMQ_RETURN_IF_ERROR(ValidateBatch(batch));
  wb.SetSavePoint();
  std::string value;
  bool serialized = true;
  for (const Batch::Op& op : batch.ops()) EncodeOp(op, wb, value, serialized);
  if (!serialized) {                                  // only a record over protobuf's 2 GiB limit
    wb.RollbackToSavePoint().PermitUncheckedError();  // the save point was set above
    return absl::InvalidArgumentError("a record of the batch cannot be serialized");
  }
  wb.PopSavePoint().PermitUncheckedError();
  return absl::OkStatus();
}

void RocksStorage::WriterLoop() {
  std::vector<Pending> group;
  std::vector<absl::Status> results;
  for (;;) {
    group.clear();
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;  // closing, and everything committed has been written
      const size_t n = std::min(queue_.size(), kMaxGroupBatches);
      for (size_t i = 0; i < n; ++i) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }

    rocksdb::WriteBatch wb;
    results.assign(group.size(), absl::OkStatus());
    size_t taken = 0;
    size_t valid = 0;
    while (taken < group.size()) {
      results[taken] = Encode(group[taken].batch, wb);
      if (results[taken].ok()) ++valid;
      ++taken;
      if (wb.GetDataSize() >= kMaxGroupBytes) break;
    }
    if (taken < group.size()) {
      // Over the byte bound: the rest goes back to the front of the queue, in order.
      std::lock_guard lock(mu_);
      for (size_t i = group.size(); i-- > taken;) queue_.push_front(std::move(group[i]));
      group.resize(taken);
      results.resize(taken);
    }

    if (valid > 0) {
      absl::Status written;
      {
        std::lock_guard db_lock(db_mu_);
        written = FromRocks(db_.db->Write(write_options_, &wb), "writing to RocksDB");
      }
      writes_.fetch_add(1, std::memory_order_relaxed);
      batches_.fetch_add(valid, std::memory_order_relaxed);
      if (!written.ok()) {
        if (uint64_t suppressed = 0; write_errors_log_.Allow(&suppressed)) {
          SHARDMQ_LOG(ERROR) << "storage: group commit of " << valid
                             << " batches failed: " << written << " (" << suppressed
                             << " similar lines suppressed)";
        }
        for (absl::Status& r : results) {
          if (r.ok()) r = written;
        }
      }
    }
    for (size_t i = 0; i < group.size(); ++i) {
      if (absl::IsInvalidArgument(results[i])) {
        if (uint64_t suppressed = 0; refused_log_.Allow(&suppressed)) {
          SHARDMQ_LOG(WARNING) << "storage: batch refused: " << results[i] << " (" << suppressed
                               << " similar lines suppressed)";
        }
      }
      group[i].done(std::move(results[i]));
    }
  }
}

// Everything Load gathers for one session before it builds the StoredSession.
struct LoadedSession {
  uint32_t partition = 0;
  StoredSession stored;
  std::vector<std::pair<uint64_t, records::QueueEntry>> queued;    // from recipients; sorted later
  std::vector<std::pair<uint64_t, records::QueueEntry>> inflight;  // ascending (key order)
};

absl::StatusOr<Snapshot> RocksStorage::Load() {
  std::lock_guard db_lock(db_mu_);
  if (db_.db == nullptr) return absl::FailedPreconditionError("storage is closed");

  rocksdb::ReadOptions read;
  read.fill_cache = false;  // one full scan at start-up: do not churn the cache
  read.verify_checksums = true;
  read.readahead_size = 2 * kMiB;

  // Calls fn(key, value) for every record of `family` in key order.
  auto scan = [&](Family family, auto&& fn) -> absl::Status {
    std::unique_ptr<rocksdb::Iterator> it(db_.db->NewIterator(read, Cf(family)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      SHARDMQ_RETURN_IF_ERROR(fn(View(it->key()), View(it->value())));
    }
    return FromRocks(it->status(), "reading column family " + std::string(InfoOf(family).name));
  };
  auto malformed = [](Family family, std::string_view key, std::string_view what) {
    return absl::DataLossError("column family " + std::string(InfoOf(family).name) + ", key " +
                               Hex(key) + ": " + std::string(what));
  };

  std::vector<LoadedSession> sessions;
  absl::flat_hash_map<std::string, size_t> by_client;  // client id -> index in `sessions`
  std::string lookup;                                  // reused lookup key
  auto find = [&](std::string_view cid) -> LoadedSession* {
    lookup.assign(cid.data(), cid.size());
    auto it = by_client.find(lookup);
    return it == by_client.end() ? nullptr : &sessions[it->second];
  };
  rocksdb::WriteBatch gc;
  uint64_t orphans = 0;
  uint64_t max_id = 0;

  SHARDMQ_RETURN_IF_ERROR(scan(Family::kSessions, [&](std::string_view key, std::string_view v) {
    keys::ClientKeyParts k;
    if (!keys::DecodeClientKey(key, &k)) return malformed(Family::kSessions, key, "bad key");
    if (k.partition != PartitionOfKey(k.client_id)) {
      return malformed(Family::kSessions, key, "client id is not in this partition");
    }
    LoadedSession s;
    s.partition = k.partition;
    if (!s.stored.session.ParseFromArray(v.data(), static_cast<int>(v.size())) ||
        s.stored.session.client_id() != k.client_id) {
      return malformed(Family::kSessions, key, "bad Session record");
    }
    by_client.emplace(std::string(k.client_id), sessions.size());
    sessions.push_back(std::move(s));
    return absl::OkStatus();
  }));

  // Checks a per-client key's partition and finds its session; nullptr: an orphan, deleted.
  auto owner = [&](Family family, std::string_view key, std::string_view cid, uint32_t partition,
                   LoadedSession** out) -> absl::Status {
    if (partition != PartitionOfKey(cid)) {
      return malformed(family, key, "client id is not in this partition");
    }
    *out = find(cid);
    if (*out == nullptr) {
      gc.Delete(Cf(family), ToSlice(key)).PermitUncheckedError();
      ++orphans;
    }
    return absl::OkStatus();
  };

  SHARDMQ_RETURN_IF_ERROR(scan(Family::kWills, [&](std::string_view key, std::string_view v) {
    keys::ClientKeyParts k;
    if (!keys::DecodeClientKey(key, &k)) return malformed(Family::kWills, key, "bad key");
    LoadedSession* s = nullptr;
    SHARDMQ_RETURN_IF_ERROR(owner(Family::kWills, key, k.client_id, k.partition, &s));
    if (s == nullptr) return absl::OkStatus();
    records::Will will;
    if (!will.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      return malformed(Family::kWills, key, "bad Will record");
    }
    s->stored.will = std::move(will);
    return absl::OkStatus();
  }));

  SHARDMQ_RETURN_IF_ERROR(
      scan(Family::kSubscriptions, [&](std::string_view key, std::string_view v) {
        keys::PerClientKeyParts k;
        if (!keys::DecodeSubscriptionKey(key, &k)) {
          return malformed(Family::kSubscriptions, key, "bad key");
        }
        LoadedSession* s = nullptr;
        SHARDMQ_RETURN_IF_ERROR(owner(Family::kSubscriptions, key, k.client_id, k.partition, &s));
        if (s == nullptr) return absl::OkStatus();
        records::Subscription sub;
        if (!sub.ParseFromArray(v.data(), static_cast<int>(v.size())) || sub.filter() != k.suffix) {
          return malformed(Family::kSubscriptions, key, "bad Subscription record");
        }
        s->stored.subscriptions.push_back(std::move(sub));
        return absl::OkStatus();
      }));

  SHARDMQ_RETURN_IF_ERROR(
      scan(Family::kIncomingQos2, [&](std::string_view key, std::string_view /*v*/) {
        keys::PerClientKeyParts k;
        uint16_t packet_id = 0;
        if (!keys::DecodeIncomingQos2Key(key, &k, &packet_id)) {
          return malformed(Family::kIncomingQos2, key, "bad key");
        }
        LoadedSession* s = nullptr;
        SHARDMQ_RETURN_IF_ERROR(owner(Family::kIncomingQos2, key, k.client_id, k.partition, &s));
        if (s != nullptr) s->stored.incoming_qos2.push_back(packet_id);
        return absl::OkStatus();
      }));

  // Bodies first: recipients, done marks and in-flight records refer to them.
  Snapshot snapshot;
  absl::flat_hash_map<uint64_t, uint32_t> body_partition;  // message id -> partition of its key
  SHARDMQ_RETURN_IF_ERROR(scan(Family::kMessages, [&](std::string_view key, std::string_view v) {
    uint32_t partition = 0;
    uint64_t id = 0;
    if (!keys::DecodeMessageKey(key, &partition, &id)) {
      return malformed(Family::kMessages, key, "bad key");
    }
    max_id = std::max(max_id, id);
    records::Message message;
    if (!message.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      return malformed(Family::kMessages, key, "bad Message record");
    }
    if (PartitionOfKey(message.topic()) != partition) {
      return malformed(Family::kMessages, key, "topic is not in this partition");
    }
    body_partition.emplace(id, partition);
    snapshot.messages.insert_or_assign(id, std::move(message));
    return absl::OkStatus();
  }));

  // Done marks, as be64(id) cid (the key without its partition).
  absl::flat_hash_set<std::string> done;
  uint64_t dangling = 0;  // records about a message whose body is gone
  // A done mark or recipient list keyed (partition, id) whose body is missing: deleted.
  auto drop_if_bodiless = [&](Family family, std::string_view key, uint32_t partition,
                              uint64_t id) {
    auto body = body_partition.find(id);
    if (body != body_partition.end() && body->second == partition) return false;
    gc.Delete(Cf(family), ToSlice(key)).PermitUncheckedError();
    ++dangling;
    return true;
  };
  SHARDMQ_RETURN_IF_ERROR(scan(Family::kDone, [&](std::string_view key, std::string_view) {
    uint32_t partition = 0;
    uint64_t id = 0;
    std::string_view cid;
    if (!keys::DecodeDoneKey(key, &partition, &id, &cid)) {
      return malformed(Family::kDone, key, "bad key");
    }
    max_id = std::max(max_id, id);
    if (drop_if_bodiless(Family::kDone, key, partition, id)) return absl::OkStatus();
    done.emplace(key.substr(keys::kPartitionBytes));
    return absl::OkStatus();
  }));
  auto is_done = [&](uint64_t id, std::string_view cid) {
    lookup.clear();
    keys::AppendBe64(lookup, id);
    lookup.append(cid);
    return done.contains(lookup);
  };

  // Every recipient not done is a QUEUED entry of its session.
  SHARDMQ_RETURN_IF_ERROR(scan(Family::kRecipients, [&](std::string_view key, std::string_view v) {
    uint32_t partition = 0;
    uint64_t id = 0;
    if (!keys::DecodeMessageKey(key, &partition, &id)) {
      return malformed(Family::kRecipients, key, "bad key");
    }
    max_id = std::max(max_id, id);
    if (drop_if_bodiless(Family::kRecipients, key, partition, id)) return absl::OkStatus();
    records::Recipients recipients;
    if (!recipients.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      return malformed(Family::kRecipients, key, "bad Recipients record");
    }
    for (const records::Recipient& r : recipients.recipients()) {
      if (r.client_id().empty() || is_done(id, r.client_id())) continue;
      LoadedSession* s = find(r.client_id());
      if (s == nullptr) {  // the session is gone: finish the delivery
        gc.Put(Cf(Family::kDone), keys::DoneKey(partition, id, r.client_id()), rocksdb::Slice())
            .PermitUncheckedError();
        ++orphans;
        continue;
      }
      records::QueueEntry entry;
      entry.set_message_id(id);
      entry.set_qos(r.qos());
      entry.set_retain(r.retain());
      entry.mutable_subscription_ids()->Assign(r.subscription_ids().begin(),
                                               r.subscription_ids().end());
      s->queued.emplace_back(id, std::move(entry));
    }
    return absl::OkStatus();
  }));

  SHARDMQ_RETURN_IF_ERROR(scan(Family::kInflight, [&](std::string_view key, std::string_view v) {
    keys::PerClientKeyParts k;
    uint64_t id = 0;
    if (!keys::DecodeEntryKey(key, &k, &id)) return malformed(Family::kInflight, key, "bad key");
    max_id = std::max(max_id, id);  // orphans included: their ids were handed out
    LoadedSession* s = nullptr;
    SHARDMQ_RETURN_IF_ERROR(owner(Family::kInflight, key, k.client_id, k.partition, &s));
    if (s == nullptr) return absl::OkStatus();
    records::QueueEntry entry;
    if (!entry.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      return malformed(Family::kInflight, key, "bad QueueEntry record");
    }
    // DeleteEntry deletes the record with the done mark; an in-flight record of a finished or
    // bodiless delivery is left over (should not happen): drop it.
    if (!snapshot.messages.contains(id) || is_done(id, k.client_id)) {
      gc.Delete(Cf(Family::kInflight), ToSlice(key)).PermitUncheckedError();
      ++dangling;
      return absl::OkStatus();
    }
    entry.set_message_id(id);  // the key is authoritative
    s->inflight.emplace_back(id, std::move(entry));
    return absl::OkStatus();
  }));

  // Merge per session, ascending by id; the in-flight record (packet id, RELEASED) overrides
  // the QUEUED entry of the same delivery.
  absl::flat_hash_set<uint64_t> referenced;
  for (LoadedSession& s : sessions) {
    std::sort(s.queued.begin(), s.queued.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    // A message can list a client twice (a shared and a non-shared subscription both matched):
    // one entry per (session, message), as every other key of the format holds.
    s.queued.erase(std::unique(s.queued.begin(), s.queued.end(),
                               [](const auto& a, const auto& b) { return a.first == b.first; }),
                   s.queued.end());
    auto& out = s.stored.entries;
    out.reserve(s.queued.size() + s.inflight.size());
    size_t q = 0;
    size_t f = 0;
    while (q < s.queued.size() || f < s.inflight.size()) {
      if (f == s.inflight.size() ||
          (q < s.queued.size() && s.queued[q].first < s.inflight[f].first)) {
        out.push_back(std::move(s.queued[q++]));
      } else {
        if (q < s.queued.size() && s.queued[q].first == s.inflight[f].first) ++q;
        out.push_back(std::move(s.inflight[f++]));
      }
      referenced.insert(out.back().first);
    }
    s.queued.clear();
    s.inflight.clear();
  }

  // Bodies no entry needs any more go, with their recipients and done marks.
  uint64_t unreferenced = 0;
  for (auto it = snapshot.messages.begin(); it != snapshot.messages.end();) {
    if (referenced.contains(it->first)) {
      ++it;
      continue;
    }
    const uint32_t p = body_partition[it->first];
    const std::string key = keys::MessageKey(p, it->first);
    gc.Delete(Cf(Family::kMessages), key).PermitUncheckedError();
    gc.Delete(Cf(Family::kRecipients), key).PermitUncheckedError();
    gc.DeleteRange(Cf(Family::kDone), key, keys::DoneEnd(p, it->first)).PermitUncheckedError();
    ++unreferenced;
    snapshot.messages.erase(it++);
  }

  SHARDMQ_RETURN_IF_ERROR(scan(Family::kRetained, [&](std::string_view key, std::string_view v) {
    keys::RetainedKeyParts k;
    if (!keys::DecodeRetainedKey(key, &k)) return malformed(Family::kRetained, key, "bad key");
    records::Message message;
    if (!message.ParseFromArray(v.data(), static_cast<int>(v.size())) ||
        message.topic() != k.topic || PartitionOfKey(k.topic) != k.partition) {
      return malformed(Family::kRetained, key, "bad retained Message record");
    }
    snapshot.retained.push_back(std::move(message));
    return absl::OkStatus();
  }));

  if (gc.Count() > 0) {
    SHARDMQ_RETURN_IF_ERROR(
        FromRocks(db_.db->Write(write_options_, &gc), "deleting unreferenced records"));
  }

  snapshot.max_message_id = max_id;
  snapshot.sessions.reserve(sessions.size());
  for (LoadedSession& s : sessions) snapshot.sessions.push_back(std::move(s.stored));
  SHARDMQ_LOG(INFO) << "storage: loaded " << snapshot.sessions.size() << " sessions, "
                    << snapshot.messages.size() << " messages, " << snapshot.retained.size()
                    << " retained (max message id " << max_id << "); removed " << orphans
                    << " orphan records, " << dangling
                    << " records about a missing message body or a finished delivery, "
                    << unreferenced << " unreferenced message bodies";
  return snapshot;
}

absl::StatusOr<std::vector<std::string>> RocksStorage::ListKeys(std::string_view family) {
  std::lock_guard db_lock(db_mu_);
  if (db_.db == nullptr) return absl::FailedPreconditionError("storage is closed");
  rocksdb::ColumnFamilyHandle* cf = db_.Handle(family);
  if (cf == nullptr) return absl::NotFoundError("no column family " + std::string(family));
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db_.db->NewIterator(rocksdb::ReadOptions(), cf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) out.emplace_back(View(it->key()));
  SHARDMQ_RETURN_IF_ERROR(FromRocks(it->status(), "listing keys"));
  return out;
}

absl::Status RocksStorage::Flush() {
  std::lock_guard db_lock(db_mu_);
  return FlushLocked();
}

absl::Status RocksStorage::FlushLocked() {
  if (db_.db == nullptr) return absl::FailedPreconditionError("storage is closed");
  std::vector<rocksdb::ColumnFamilyHandle*> all(db_.handles.begin(), db_.handles.end());
  return FromRocks(db_.db->Flush(rocksdb::FlushOptions(), all), "flushing");
}

// ---- Opening ----

bool IsEmptyDataDir(const fs::path& dir, std::error_code& ec, std::string* first_entry) {
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    // A fresh ext4 file system mounted as the data directory holds just lost+found.
    if (it->path().filename() == "lost+found") continue;
    *first_entry = it->path().filename().string();
    return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<Storage>> CreateNew(const StorageOptions& options) {
  rocksdb::DBOptions db_options = MakeDbOptions();
  db_options.create_if_missing = true;
  db_options.error_if_exists = true;
  db_options.create_missing_column_families = true;
  SHARDMQ_ASSIGN_OR_RETURN(OpenDb db,
                           OpenWithFamilies(options.data_dir, db_options, AllFamilyNames(), false));
  records::Format format;
  format.set_version(kFormatVersion);
  format.set_partitions(options.partitions);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  SHARDMQ_RETURN_IF_ERROR(FromRocks(db.db->Put(sync, db.Handle(InfoOf(Family::kMeta).name),
                                               std::string(kFormatKey), format.SerializeAsString()),
                                    "writing the format record"));
  SHARDMQ_LOG(INFO) << "storage: created a new database in " << options.data_dir << " (format "
                    << kFormatVersion << ", " << options.partitions << " partitions)";
  return std::unique_ptr<Storage>(new RocksStorage(std::move(db), options));
}

// Checks an existing database without writing to its directory. OK means it can be opened for
// writing.
absl::Status Probe(const StorageOptions& options, const std::vector<std::string>& names) {
  const std::string& dir = options.data_dir;
  const std::string meta(InfoOf(Family::kMeta).name);
  if (std::find(names.begin(), names.end(), meta) == names.end()) {
    return absl::FailedPreconditionError(
        dir + " is not a shardmq data directory (a RocksDB database without a '" + meta +
        "' column family)");
  }
  rocksdb::DBOptions db_options = MakeDbOptions();
  db_options.info_log = std::make_shared<NullLogger>();
  // All families, so that every table file is opened and checked.
  SHARDMQ_ASSIGN_OR_RETURN(OpenDb db, OpenWithFamilies(dir, db_options, names, true));

  std::string value;
  const rocksdb::Status s =
      db.db->Get(rocksdb::ReadOptions(), db.Handle(meta), std::string(kFormatKey), &value);
  if (s.IsNotFound()) {
    return absl::DataLossError(dir + ": no format record in column family '" + meta +
                               "' (was creating the database interrupted?)");
  }
  SHARDMQ_RETURN_IF_ERROR(FromRocks(s, "reading the format record in " + dir, true));
  records::Format format;
  if (!format.ParseFromString(value)) {
    return absl::DataLossError(dir + ": unparsable format record (" + Hex(value) + ")");
  }
  if (format.version() != kFormatVersion) {
    return absl::FailedPreconditionError(
        dir + " holds storage format version " + std::to_string(format.version()) +
        "; this shardmq reads format version " + std::to_string(kFormatVersion));
  }
  if (format.partitions() != options.partitions) {
    return absl::FailedPreconditionError(
        dir + " was created with " + std::to_string(format.partitions()) +
        " partitions; configured partitions: " + std::to_string(options.partitions));
  }
  for (const FamilyInfo& info : kFamilies) {
    if (std::find(names.begin(), names.end(), info.name) == names.end()) {
      return absl::DataLossError(dir + ": column family '" + std::string(info.name) +
                                 "' is missing");
    }
  }
  for (const std::string& name : names) {
    const bool known = name == rocksdb::kDefaultColumnFamilyName ||
                       std::any_of(kFamilies.begin(), kFamilies.end(),
                                   [&](const FamilyInfo& i) { return i.name == name; });
    if (!known) {
      return absl::FailedPreconditionError(dir + ": unknown column family '" + name +
                                           "' (written by another shardmq version?)");
    }
  }
  return db.Close();
}

absl::StatusOr<std::unique_ptr<Storage>> OpenExisting(const StorageOptions& options) {
  const std::string& dir = options.data_dir;
  std::vector<std::string> names;
  SHARDMQ_RETURN_IF_ERROR(
      FromRocks(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names),
                "reading the RocksDB manifest in " + dir, /*opening=*/true));
  SHARDMQ_RETURN_IF_ERROR(Probe(options, names));
  SHARDMQ_ASSIGN_OR_RETURN(OpenDb db, OpenWithFamilies(dir, MakeDbOptions(), names, false));
  SHARDMQ_LOG(INFO) << "storage: opened " << dir << " (format " << kFormatVersion << ", "
                    << options.partitions << " partitions)";
  return std::unique_ptr<Storage>(new RocksStorage(std::move(db), options));
}

RocksStorage& AsRocks(Storage& storage) {
  // Test hooks only; a wrong argument is a test bug.
  return dynamic_cast<RocksStorage&>(storage);
}

}  // namespace

WriteStats GetWriteStatsForTesting(Storage& storage) { return AsRocks(storage).Stats(); }

absl::StatusOr<std::vector<std::string>> ListKeysForTesting(Storage& storage,
                                                            std::string_view family) {
  return AsRocks(storage).ListKeys(family);
}

absl::Status FlushForTesting(Storage& storage) { return AsRocks(storage).Flush(); }

absl::Status PutRawForTesting(const std::string& data_dir, std::string_view family,
                              const std::string& key, const std::string& value) {
  SHARDMQ_ASSIGN_OR_RETURN(OpenDb db, OpenRaw(data_dir));
  rocksdb::ColumnFamilyHandle* cf = db.Handle(family);
  if (cf == nullptr) return absl::NotFoundError("no column family " + std::string(family));
  rocksdb::WriteOptions sync;
  sync.sync = true;
  SHARDMQ_RETURN_IF_ERROR(FromRocks(db.db->Put(sync, cf, key, value), "put"));
  return db.Close();
}

absl::Status DeleteRawForTesting(const std::string& data_dir, std::string_view family,
                                 const std::string& key) {
  SHARDMQ_ASSIGN_OR_RETURN(OpenDb db, OpenRaw(data_dir));
  rocksdb::ColumnFamilyHandle* cf = db.Handle(family);
  if (cf == nullptr) return absl::NotFoundError("no column family " + std::string(family));
  rocksdb::WriteOptions sync;
  sync.sync = true;
  SHARDMQ_RETURN_IF_ERROR(FromRocks(db.db->Delete(sync, cf, key), "delete"));
  return db.Close();
}

absl::Status DropColumnFamilyForTesting(const std::string& data_dir, std::string_view family) {
  SHARDMQ_ASSIGN_OR_RETURN(OpenDb db, OpenRaw(data_dir));
  rocksdb::ColumnFamilyHandle* cf = db.Handle(family);
  if (cf == nullptr) return absl::NotFoundError("no column family " + std::string(family));
  SHARDMQ_RETURN_IF_ERROR(FromRocks(db.db->DropColumnFamily(cf), "drop column family"));
  return db.Close();
}

}  // namespace rocks

absl::StatusOr<std::unique_ptr<Storage>> OpenRocksStorage(const StorageOptions& options) {
  namespace fs = std::filesystem;
  if (options.data_dir.empty()) return absl::InvalidArgumentError("storage: empty data_dir");
  if (options.partitions == 0) return absl::InvalidArgumentError("storage: partitions must be > 0");
  const fs::path dir(options.data_dir);
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return absl::UnavailableError("storage: cannot stat " + options.data_dir + ": " + ec.message());
  }
  if (!fs::exists(st)) {
    fs::create_directories(dir, ec);
    if (ec) {
      return absl::UnavailableError("storage: cannot create " + options.data_dir + ": " +
                                    ec.message());
    }
    return rocks::CreateNew(options);
  }
  if (!fs::is_directory(st)) {
    return absl::FailedPreconditionError(options.data_dir + " is not a directory");
  }
  std::string first_entry;
  const bool empty = rocks::IsEmptyDataDir(dir, ec, &first_entry);
  if (ec) {
    return absl::UnavailableError("storage: cannot list " + options.data_dir + ": " + ec.message());
  }
  if (empty) return rocks::CreateNew(options);
  if (!fs::exists(dir / "CURRENT", ec)) {
    return absl::FailedPreconditionError(
        options.data_dir + " is not a shardmq data directory (it holds files, e.g. '" +
        first_entry + "', but no RocksDB CURRENT file)");
  }
  return rocks::OpenExisting(options);
}

}  // namespace shardmq::storage
