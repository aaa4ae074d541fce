// A client of an etcd v3 cluster, over our own gRPC stubs (proto/etcd.proto).
//
// Only what shardmq's coordination needs: reads by key and prefix, puts (optionally under a
// lease), compare-and-swap on a key's mod revision, leases, and prefix watches that survive a
// broken stream. No gRPC type appears here; cluster/grpc/etcd_client.cc is the implementation.
//
// Thread-safety: every method may be called from any thread. Calls block for up to the
// configured timeout: never call them on a network worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardmq::cluster {

struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

struct EtcdRange {
  int64_t revision = 0;  // the store's revision at the read
  std::vector<EtcdKeyValue> kvs;
};

struct EtcdEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  EtcdKeyValue kv;  // for kDelete: the key and the revision of the deletion (mod_revision)
};

struct EtcdOptions {
  // "host:port" each; an "http://" prefix is accepted and dropped. At least one.
  std::vector<std::string> endpoints;
  // Deadline of each call.
  std::chrono::milliseconds timeout{2000};
};

// Parses a comma-separated endpoint list ("h1:2379,http://h2:2379"). InvalidArgument names the
// bad entry.
absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(std::string_view list);

class EtcdClient {
 public:
  // Connects and checks that etcd answers (one read). Unavailable if no endpoint answers within
  // the timeout.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Connect(const EtcdOptions& options);
  virtual ~EtcdClient() = default;

  virtual absl::StatusOr<EtcdRange> Get(std::string_view key) = 0;
  virtual absl::StatusOr<EtcdRange> GetPrefix(std::string_view prefix) = 0;
  // Returns the revision of the write.
  virtual absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                                      int64_t lease = 0) = 0;
  // Returns how many keys were deleted (0 or 1).
  virtual absl::StatusOr<int64_t> Delete(std::string_view key) = 0;
  // Writes key = value if the key's mod revision is `expected_mod_revision` (0: only if the key
  // does not exist), atomically. Returns true if written; false if not, with the key's current
  // state in *current (if given; an absent key leaves it with mod_revision 0).
  virtual absl::StatusOr<bool> CompareAndPut(std::string_view key, std::string_view value,
                                             int64_t expected_mod_revision, int64_t lease = 0,
                                             EtcdKeyValue* current = nullptr) = 0;
  // Writes key = value (under `lease`) if every condition holds, atomically. Returns true if
  // written. (CompareAndPut with more than one condition: e.g. "the map is still at the revision
  // I read and my controller key still exists".)
  struct Condition {
    std::string key;
    int64_t mod_revision = 0;  // the key's mod revision must equal this (0: must not exist)
  };
  virtual absl::StatusOr<bool> PutIfAll(const std::vector<Condition>& conditions,
                                        std::string_view key, std::string_view value,
                                        int64_t lease = 0) = 0;
  // Deletes the key if its mod revision is `expected_mod_revision`. Returns true if deleted.
  virtual absl::StatusOr<bool> CompareAndDelete(std::string_view key,
                                                int64_t expected_mod_revision) = 0;

  // Grants a lease of `ttl_s` seconds; returns its id.
  virtual absl::StatusOr<int64_t> GrantLease(int64_t ttl_s) = 0;
  // Revokes the lease: every key under it is deleted at once.
  virtual absl::Status RevokeLease(int64_t lease) = 0;
  // Renews the lease once; returns its new TTL in seconds, <= 0 if it has expired.
  virtual absl::StatusOr<int64_t> KeepAlive(int64_t lease) = 0;

  // A prefix watch running on a thread of its own; destroying it stops the thread.
  class Watch {
   public:
    virtual ~Watch() = default;
  };
  // Called on the watch's thread with each batch of events, in revision order, and `revision`,
  // the store revision they bring the watcher to. `compacted` = etcd no longer holds the history
  // from the requested revision (events is empty): re-read and watch again.
  using WatchCallback =
      std::function<void(const std::vector<EtcdEvent>& events, int64_t revision, bool compacted)>;
  // Watches every key under `prefix` from `start_revision` (inclusive). A broken stream is
  // reopened from the revision after the last one delivered, so no event is lost or repeated.
  virtual std::unique_ptr<Watch> WatchPrefix(std::string prefix, int64_t start_revision,
                                             WatchCallback callback) = 0;
};

// The end of the range of every key with `prefix` (etcd's convention: prefix with its last byte
// incremented, carrying over 0xff).
std::string PrefixRangeEnd(std::string_view prefix);

}  // namespace shardmq::cluster
