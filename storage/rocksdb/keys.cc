#include "storage/rocksdb/keys.h"

#include <cstdint>

namespace shardmq::storage::keys {

void AppendBe16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void AppendBe32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

void AppendBe64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

uint16_t ReadBe16(std::string_view in) {
  return static_cast<uint16_t>((static_cast<uint8_t>(in[0]) << 8) | static_cast<uint8_t>(in[1]));
}

uint32_t ReadBe32(std::string_view in) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

uint64_t ReadBe64(std::string_view in) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

namespace {

std::string WithPartition(uint32_t partition, size_t extra) {
  std::string key;
  key.reserve(kPartitionBytes + extra);
  AppendBe32(key, partition);
  return key;
}

// partition + client id + a terminator byte, with room for `extra` more bytes.
std::string ClientTerminated(uint32_t partition, std::string_view client_id, char terminator,
                             size_t extra) {
  std::string key = WithPartition(partition, client_id.size() + 1 + extra);
  key.append(client_id);
  key.push_back(terminator);
  return key;
}

}  // namespace

std::string ClientKey(uint32_t partition, std::string_view client_id) {
  std::string key = WithPartition(partition, client_id.size());
  key.append(client_id);
  return key;
}

std::string ClientPrefix(uint32_t partition, std::string_view client_id) {
  return ClientTerminated(partition, client_id, '\0', 0);
}

std::string ClientPrefixEnd(uint32_t partition, std::string_view client_id) {
  return ClientTerminated(partition, client_id, '\x01', 0);
}

std::string SubscriptionKey(uint32_t partition, std::string_view client_id,
                            std::string_view filter) {
  std::string key = ClientTerminated(partition, client_id, '\0', filter.size());
  key.append(filter);
  return key;
}

std::string EntryKey(uint32_t partition, std::string_view client_id, uint64_t message_id) {
  std::string key = ClientTerminated(partition, client_id, '\0', 8);
  AppendBe64(key, message_id);
  return key;
}

std::string IncomingQos2Key(uint32_t partition, std::string_view client_id, uint16_t packet_id) {
  std::string key = ClientTerminated(partition, client_id, '\0', 2);
  AppendBe16(key, packet_id);
  return key;
}

std::string MessageKey(uint32_t partition, uint64_t message_id) {
  std::string key = WithPartition(partition, 8);
  AppendBe64(key, message_id);
  return key;
}

std::string DoneKey(uint32_t partition, uint64_t message_id, std::string_view client_id) {
  std::string key = WithPartition(partition, 8 + client_id.size());
  AppendBe64(key, message_id);
  key.append(client_id);
  return key;
}

std::string DoneEnd(uint32_t partition, uint64_t message_id) {
  if (message_id != UINT64_MAX) return MessageKey(partition, message_id + 1);
  // be32(p) ff..ff cid < be32(p) ff..ff ff: no client id starts with 0xFF (not UTF-8).
  std::string key = MessageKey(partition, message_id);
  key.push_back('\xff');
  return key;
}

std::string RetainedKey(uint32_t partition, std::string_view topic) {
  std::string key = WithPartition(partition, topic.size());
  key.append(topic);
  return key;
}

std::string PartitionPrefix(uint32_t partition) { return WithPartition(partition, 0); }

bool DecodeClientKey(std::string_view key, ClientKeyParts* out) {
  if (key.size() < kPartitionBytes) return false;
  const std::string_view cid = key.substr(kPartitionBytes);
  if (cid.find('\0') != std::string_view::npos) return false;
  out->partition = ReadBe32(key);
  out->client_id = cid;
  return true;
}

bool DecodePerClientKey(std::string_view key, PerClientKeyParts* out) {
  if (key.size() < kPartitionBytes + 1) return false;
  const std::string_view rest = key.substr(kPartitionBytes);
  const size_t nul = rest.find('\0');
  if (nul == std::string_view::npos) return false;
  out->partition = ReadBe32(key);
  out->client_id = rest.substr(0, nul);
  out->suffix = rest.substr(nul + 1);
  return true;
}

bool DecodeSubscriptionKey(std::string_view key, PerClientKeyParts* out) {
  return DecodePerClientKey(key, out) && out->suffix.find('\0') == std::string_view::npos;
}

bool DecodeEntryKey(std::string_view key, PerClientKeyParts* out, uint64_t* message_id) {
  if (!DecodePerClientKey(key, out) || out->suffix.size() != 8) return false;
  *message_id = ReadBe64(out->suffix);
  return true;
}

bool DecodeIncomingQos2Key(std::string_view key, PerClientKeyParts* out, uint16_t* packet_id) {
  if (!DecodePerClientKey(key, out) || out->suffix.size() != 2) return false;
  *packet_id = ReadBe16(out->suffix);
  return true;
}

bool DecodeMessageKey(std::string_view key, uint32_t* partition, uint64_t* message_id) {
  if (key.size() != kPartitionBytes + 8) return false;
  *partition = ReadBe32(key);
  *message_id = ReadBe64(key.substr(kPartitionBytes));
  return true;
}

bool DecodeDoneKey(std::string_view key, uint32_t* partition, uint64_t* message_id,
                   std::string_view* client_id) {
  if (key.size() <= kPartitionBytes + 8) return false;
  const std::string_view cid = key.substr(kPartitionBytes + 8);
  if (cid.find('\0') != std::string_view::npos) return false;
  *partition = ReadBe32(key);
  *message_id = ReadBe64(key.substr(kPartitionBytes));
  *client_id = cid;
  return true;
}

bool DecodeRetainedKey(std::string_view key, RetainedKeyParts* out) {
  if (key.size() < kPartitionBytes) return false;
  const std::string_view topic = key.substr(kPartitionBytes);
  if (topic.find('\0') != std::string_view::npos) return false;
  out->partition = ReadBe32(key);
  out->topic = topic;
  return true;
}

}  // namespace shardmq::storage::keys
