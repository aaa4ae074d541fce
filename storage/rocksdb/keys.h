// Order-preserving key encoding of every column family (the on-disk key format, version 2).
//
// Every key starts with the big-endian 32-bit partition id, so one partition is one contiguous
// key range per column family (hand-off is a range scan, clean-up a DeleteRange; DESIGN.md s2).
// Session-keyed data uses partition = PartitionOf(client_id, P), topic-keyed data
// PartitionOf(topic, P):
//
//   family          key                                       value
//   sessions        be32(p) cid                               records::Session
//   subscriptions   be32(p) cid 0x00 filter                   records::Subscription
//   inflight        be32(p) cid 0x00 be64(message_id)         records::QueueEntry
//   incoming_qos2   be32(p) cid 0x00 be16(packet_id)          empty
//   wills           be32(p) cid                               records::Will
//   messages        be32(p(topic)) be64(message_id)           records::Message
//   recipients      be32(p(topic)) be64(message_id)           records::Recipients
//   done            be32(p(topic)) be64(message_id) cid       empty
//   retained        be32(p(topic)) topic                      records::Message
//   meta            "format"                                  records::Format
//
// Client ids, topics and filters are MQTT UTF-8 strings, which cannot contain U+0000 (MQTT 5
// s1.5.4; storage rejects a batch that has one), so 0x00 terminates the client id: the keys of
// one client form the range [ClientPrefix, ClientPrefixEnd) = [be32(p) cid 0x00,
// be32(p) cid 0x01), which holds no key of a client whose id merely starts with `cid` ("ab"
// sorts after "a\x01"). Big-endian integers sort numerically as bytes, so a client's in-flight
// records iterate in message-id order. A message's done marks are the range
// [MessageKey(p, id), DoneEnd(p, id)): the client id ends the key, so it needs no terminator.
//
// Pure functions, no RocksDB types (tests pin the bytes: tests/storage/golden/keys.txt).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shardmq::storage::keys {

// Appends the big-endian encoding of `v`.
void AppendBe16(std::string& out, uint16_t v);
void AppendBe32(std::string& out, uint32_t v);
void AppendBe64(std::string& out, uint64_t v);
// Reads a big-endian integer from the first bytes of `in` (which must be long enough).
uint16_t ReadBe16(std::string_view in);
uint32_t ReadBe32(std::string_view in);
uint64_t ReadBe64(std::string_view in);

inline constexpr size_t kPartitionBytes = 4;

// sessions and wills: be32(p) cid.
std::string ClientKey(uint32_t partition, std::string_view client_id);
// be32(p) cid 0x00: the first key of the client in the per-client families.
std::string ClientPrefix(uint32_t partition, std::string_view client_id);
// be32(p) cid 0x01: the end (exclusive) of the client's range in the per-client families.
std::string ClientPrefixEnd(uint32_t partition, std::string_view client_id);
// subscriptions.
std::string SubscriptionKey(uint32_t partition, std::string_view client_id,
                            std::string_view filter);
// inflight.
std::string EntryKey(uint32_t partition, std::string_view client_id, uint64_t message_id);
// incoming_qos2.
std::string IncomingQos2Key(uint32_t partition, std::string_view client_id, uint16_t packet_id);
// messages and recipients.
std::string MessageKey(uint32_t partition, uint64_t message_id);
// done: the delivery of message `message_id` to `client_id` is finished (acknowledged, dropped
// or expired).
std::string DoneKey(uint32_t partition, uint64_t message_id, std::string_view client_id);
// The end (exclusive) of the done marks of one message: MessageKey(p, id + 1), or the next
// partition's prefix for the largest id.
std::string DoneEnd(uint32_t partition, uint64_t message_id);
// retained.
std::string RetainedKey(uint32_t partition, std::string_view topic);
// be32(p): the first key of partition `p` in every family but meta.
std::string PartitionPrefix(uint32_t partition);

// Decoding (Load). Each returns false if `key` is not a well-formed key of its family; views
// point into `key`.
struct ClientKeyParts {
  uint32_t partition = 0;
  std::string_view client_id;
};
bool DecodeClientKey(std::string_view key, ClientKeyParts* out);

struct PerClientKeyParts {
  uint32_t partition = 0;
  std::string_view client_id;
  std::string_view suffix;  // after the 0x00 terminator
};
bool DecodePerClientKey(std::string_view key, PerClientKeyParts* out);
// subscriptions: suffix is the filter (any length, no 0x00).
bool DecodeSubscriptionKey(std::string_view key, PerClientKeyParts* out);
// inflight: suffix is exactly 8 bytes.
bool DecodeEntryKey(std::string_view key, PerClientKeyParts* out, uint64_t* message_id);
// incoming_qos2: suffix is exactly 2 bytes.
bool DecodeIncomingQos2Key(std::string_view key, PerClientKeyParts* out, uint16_t* packet_id);

bool DecodeMessageKey(std::string_view key, uint32_t* partition, uint64_t* message_id);
// done: be32 be64 and a non-empty client id without 0x00.
bool DecodeDoneKey(std::string_view key, uint32_t* partition, uint64_t* message_id,
                   std::string_view* client_id);
struct RetainedKeyParts {
  uint32_t partition = 0;
  std::string_view topic;
};
bool DecodeRetainedKey(std::string_view key, RetainedKeyParts* out);

}  // namespace shardmq::storage::keys
