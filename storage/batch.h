// A group of storage changes applied atomically (one RocksDB WriteBatch).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/types/span.h"

#include "absl/status/status.h"
#include "proto/records.pb.h"

namespace shardmq::storage {

// The persistent sessions one stored message is queued for, kept in its stored encoding
// (records::Recipients): Add appends to one buffer, no allocation per recipient.
class Recipients {
 public:
  void Add(std::string_view client_id, uint32_t qos, bool retain,
           absl::Span<const uint32_t> subscription_ids = {});
  // Capacity for `recipients` more, whose client ids total `client_id_bytes` (a hint).
  void Reserve(size_t recipients, size_t client_id_bytes);
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // records::Recipients wire format.
  const std::string& encoded() const { return encoded_; }
  // True if a client id is empty or holds U+0000 (ValidateBatch refuses the batch: a done mark
  // ends with the client id, keys.h).
  bool HasInvalidClientId() const { return invalid_; }

 private:
  std::string encoded_;
  size_t count_ = 0;
  bool invalid_ = false;
};

class Batch {
 public:
  // Session settings.
  void PutSession(const records::Session& session) { ops_.push_back(PutSessionOp{session}); }
  // Deletes the session and everything stored under its client id: subscriptions, queue and
  // in-flight entries, incoming QoS 2 ids, will. (Message bodies are deleted by DeleteMessage.)
  void DeleteSession(std::string client_id) { ops_.push_back(DeleteSessionOp{std::move(client_id)}); }
  void PutSubscription(std::string client_id, const records::Subscription& sub) {
    ops_.push_back(PutSubscriptionOp{std::move(client_id), sub});
  }
  void DeleteSubscription(std::string client_id, std::string filter) {
    ops_.push_back(DeleteSubscriptionOp{std::move(client_id), std::move(filter)});
  }
  void PutWill(std::string client_id, const records::Will& will) {
    ops_.push_back(PutWillOp{std::move(client_id), will});
  }
  void DeleteWill(std::string client_id) { ops_.push_back(DeleteWillOp{std::move(client_id)}); }
  // A message body, stored once, queued for every session in `recipients` (each gets a QUEUED
  // entry until DeleteEntry finishes it). Ids must be unique and never reused.
  void PutMessage(uint64_t id, const records::Message& message, Recipients recipients = {}) {
    ops_.push_back(PutMessageOp{id, message, std::move(recipients)});
  }
  // Deletes the body, its recipients and every done mark of the message.
  void DeleteMessage(std::string topic, uint64_t id) {
    ops_.push_back(DeleteMessageOp{std::move(topic), id});
  }
  // The entry is in flight (state SENT or RELEASED): stored in `inflight`; it overrides the
  // QUEUED entry of a recipient.
  void PutInflight(std::string client_id, uint64_t message_id, const records::QueueEntry& entry) {
    ops_.push_back(PutInflightOp{std::move(client_id), message_id, entry});
  }
  // Finishes the delivery of message (topic, id) to the client (acknowledged, expired or
  // dropped): deletes its in-flight record and marks it done, so it is no longer queued.
  void DeleteEntry(std::string client_id, std::string topic, uint64_t message_id) {
    ops_.push_back(DeleteEntryOp{std::move(client_id), std::move(topic), message_id});
  }
  void PutIncomingQos2(std::string client_id, uint16_t packet_id) {
    ops_.push_back(PutIncomingQos2Op{std::move(client_id), packet_id});
  }
  void DeleteIncomingQos2(std::string client_id, uint16_t packet_id) {
    ops_.push_back(DeleteIncomingQos2Op{std::move(client_id), packet_id});
  }
  void PutRetained(const records::Message& message) { ops_.push_back(PutRetainedOp{message}); }
  void DeleteRetained(std::string topic) { ops_.push_back(DeleteRetainedOp{std::move(topic)}); }

  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }
  void Append(Batch&& other) {
    for (auto& op : other.ops_) ops_.push_back(std::move(op));
    other.ops_.clear();
  }

  struct PutSessionOp { records::Session session; };
  struct DeleteSessionOp { std::string client_id; };
  struct PutSubscriptionOp { std::string client_id; records::Subscription sub; };
  struct DeleteSubscriptionOp { std::string client_id; std::string filter; };
  struct PutWillOp { std::string client_id; records::Will will; };
  struct DeleteWillOp { std::string client_id; };
  struct PutMessageOp { uint64_t id; records::Message message; Recipients recipients; };
  struct DeleteMessageOp { std::string topic; uint64_t id; };
  struct PutInflightOp { std::string client_id; uint64_t message_id; records::QueueEntry entry; };
  struct DeleteEntryOp { std::string client_id; std::string topic; uint64_t message_id; };
  struct PutIncomingQos2Op { std::string client_id; uint16_t packet_id; };
  struct DeleteIncomingQos2Op { std::string client_id; uint16_t packet_id; };
  struct PutRetainedOp { records::Message message; };
  struct DeleteRetainedOp { std::string topic; };
  using Op = std::variant<PutSessionOp, DeleteSessionOp, PutSubscriptionOp, DeleteSubscriptionOp,
                          PutWillOp, DeleteWillOp, PutMessageOp, DeleteMessageOp, PutInflightOp, DeleteEntryOp, PutIncomingQos2Op, DeleteIncomingQos2Op,
                          PutRetainedOp, DeleteRetainedOp>;
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

// Refuses (as a whole) a batch that no implementation can store: U+0000 in a client id, topic or
// filter (it ends those strings in RocksDB keys, storage/rocksdb/keys.h; MQTT strings cannot hold
// it, so it is a caller bug), or an in-flight entry whose message id differs from its key.
// Every Storage calls it first, so the in-memory fake and RocksDB refuse the same batches.
absl::Status ValidateBatch(const Batch& batch);

}  // namespace shardmq::storage
