// Golden fixtures that pin the on-disk format (version 1): the key bytes of every column family
// (tests/storage/golden/keys.txt) and the value bytes of one fixed record of each type
// (tests/storage/golden/values.txt). A failure here means the format changed: existing data
// directories would no longer read back.
//
// Regenerate ONLY together with a new format version (column_families.h kFormatVersion, and
// a migration of old directories):
//   SHARDMQ_REGENERATE_GOLDEN=1 build/tests/storage/storage_test --gtest_filter='GoldenTest.*'
// which rewrites the files in the source tree; review the diff before committing it.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/records.pb.h"
#include "storage/rocksdb/column_families.h"
#include "storage/rocksdb/keys.h"
#include "tests/storage/storage_test_util.h"

#ifndef SHARDMQ_STORAGE_GOLDEN_DIR
#error "SHARDMQ_STORAGE_GOLDEN_DIR must name tests/storage/golden"
#endif

namespace shardmq::storage {
namespace {

using fixtures::EqualsProto;

// The fixed inputs.
constexpr uint32_t kP = 256;
constexpr char kClient[] = "dev-1";
constexpr char kTopic[] = "fleet/7/temp";
constexpr char kFilter[] = "fleet/+/temp";
constexpr uint64_t kMessageId = 42;
constexpr uint16_t kPacketId = 7;

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

bool Unhex(const std::string& hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int v = 0;
    for (size_t j = i; j < i + 2; ++j) {
      const char c = hex[j];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v |= c - 'a' + 10;
      } else {
        return false;
      }
    }
    out->push_back(static_cast<char>(v));
  }
  return true;
}

using Table = std::vector<std::pair<std::string, std::string>>;  // name -> bytes, in file order

Table ComputedKeys() {
  const uint32_t pc = PartitionOf(kClient, kP);
  const uint32_t pt = PartitionOf(kTopic, kP);
  std::string pc_bytes, pt_bytes;
  keys::AppendBe32(pc_bytes, pc);
  keys::AppendBe32(pt_bytes, pt);
  return {
      {"partition_of_client", pc_bytes},
      {"partition_of_topic", pt_bytes},
      {"sessions", keys::ClientKey(pc, kClient)},
      {"wills", keys::ClientKey(pc, kClient)},
      {"subscriptions", keys::SubscriptionKey(pc, kClient, kFilter)},
      {"queue", keys::EntryKey(pc, kClient, kMessageId)},
      {"inflight", keys::EntryKey(pc, kClient, kMessageId)},
      {"incoming_qos2", keys::IncomingQos2Key(pc, kClient, kPacketId)},
      {"delete_session_begin", keys::ClientPrefix(pc, kClient)},
      {"delete_session_end", keys::ClientPrefixEnd(pc, kClient)},
      {"messages", keys::MessageKey(pt, kMessageId)},
      {"retained", keys::RetainedKey(pt, kTopic)},
      {"meta_format", std::string(rocks::kFormatKey)},
  };
}

// One fixed record of each stored type, every field set.
records::Message FixedMessage() {
  records::Message m;
  m.set_topic(kTopic);
  m.set_payload(std::string("21.5\0\xff", 6));
  m.set_qos(1);
  m.set_retain(true);
  m.set_payload_format_indicator(1);
  m.set_expiry_at_ms(1700000000123);
  m.set_content_type("text/plain");
  m.set_response_topic("fleet/7/reply");
  m.set_correlation_data("corr-1");
  records::UserProperty* p = m.add_user_properties();
  p->set_key("unit");
  p->set_value("C");
  m.set_publisher("dev-9");
  return m;
}

records::Session FixedSession() {
  records::Session s;
  s.set_client_id(kClient);
  s.set_protocol_version(5);
  s.set_expiry_interval_s(0xFFFFFFFF);
  s.set_disconnected_at_ms(1700000000456);
  return s;
}

records::Subscription FixedSubscription() {
  records::Subscription s;
  s.set_filter(kFilter);
  s.set_qos(2);
  s.set_no_local(true);
  s.set_retain_as_published(true);
  s.set_retain_handling(1);
  s.set_subscription_id(77);
  return s;
}

records::Will FixedWill() {
  records::Will w;
  *w.mutable_message() = FixedMessage();
  w.set_delay_interval_s(30);
  w.set_message_expiry_s(600);
  return w;
}

records::QueueEntry FixedEntry() {
  records::QueueEntry e;
  e.set_message_id(kMessageId);
  e.set_qos(2);
  e.set_packet_id(kPacketId);
  e.set_state(records::QueueEntry::RELEASED);
  e.add_subscription_ids(77);
  e.add_subscription_ids(3);
  e.set_retain(true);
  return e;
}

records::Format FixedFormat() {
  records::Format f;
  f.set_version(rocks::kFormatVersion);
  f.set_partitions(kP);
  return f;
}

std::string Deterministic(const google::protobuf::MessageLite& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

Table ComputedValues() {
  return {
      {"session", Deterministic(FixedSession())},
      {"subscription", Deterministic(FixedSubscription())},
      {"will", Deterministic(FixedWill())},
      {"message", Deterministic(FixedMessage())},
      {"queue_entry", Deterministic(FixedEntry())},
      {"format", Deterministic(FixedFormat())},
  };
}

std::string Path(const std::string& file) {
  return std::string(SHARDMQ_STORAGE_GOLDEN_DIR) + "/" + file;
}

// Reads "name hex" lines ('#' starts a comment line).
Table ReadGolden(const std::string& file) {
  std::ifstream in(Path(file));
  EXPECT_TRUE(in.good()) << "cannot read " << Path(file);
  Table out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, hex, bytes;
    fields >> name >> hex;
    EXPECT_TRUE(Unhex(hex, &bytes)) << file << ": bad hex on line: " << line;
    out.emplace_back(name, bytes);
  }
  return out;
}

void WriteGolden(const std::string& file, const std::string& header, const Table& table) {
  std::ofstream out(Path(file), std::ios::trunc);
  out << header;
  for (const auto& [name, bytes] : table) out << name << " " << Hex(bytes) << "\n";
}

bool Regenerate() {
  const char* env = std::getenv("SHARDMQ_REGENERATE_GOLDEN");
  return env != nullptr && std::string(env) == "1";
}

constexpr char kHeaderCommon[] =
    "# On-disk format version 1. Checked by tests/storage/golden_test.cc; regenerate only with a\n"
    "# new format version: SHARDMQ_REGENERATE_GOLDEN=1 storage_test "
    "--gtest_filter='GoldenTest.*'\n";

void ExpectTablesEqual(const Table& golden, const Table& computed, const std::string& file) {
  std::map<std::string, std::string> g(golden.begin(), golden.end());
  std::map<std::string, std::string> c(computed.begin(), computed.end());
  EXPECT_EQ(g.size(), golden.size()) << file << " has duplicate names";
  for (const auto& [name, bytes] : c) {
    auto it = g.find(name);
    if (it == g.end()) {
      ADD_FAILURE() << file << " lacks '" << name << "'";
      continue;
    }
    EXPECT_EQ(Hex(it->second), Hex(bytes)) << file << ": '" << name << "' changed";
  }
  for (const auto& [name, bytes] : g) {
    EXPECT_TRUE(c.contains(name)) << file << " has '" << name << "', which is no longer computed";
  }
}

TEST(GoldenTest, KeysMatch) {
  if (Regenerate()) {
    WriteGolden(
        "keys.txt",
        std::string(kHeaderCommon) +
            "# Keys (storage/rocksdb/keys.h) for client \"dev-1\", topic \"fleet/7/temp\",\n"
            "# filter \"fleet/+/temp\", message id 42, packet id 7, P = 256.\n",
        ComputedKeys());
    GTEST_SKIP() << "regenerated keys.txt";
  }
  ExpectTablesEqual(ReadGolden("keys.txt"), ComputedKeys(), "keys.txt");
}

TEST(GoldenTest, ValuesMatch) {
  if (Regenerate()) {
    WriteGolden("values.txt",
                std::string(kHeaderCommon) +
                    "# Values (proto/records.proto, deterministic serialization) of the fixed\n"
                    "# records in golden_test.cc.\n",
                ComputedValues());
    GTEST_SKIP() << "regenerated values.txt";
  }
  ExpectTablesEqual(ReadGolden("values.txt"), ComputedValues(), "values.txt");
}

// The golden bytes parse back into the fixed records: what an old directory holds stays
// readable, whatever the serializer does today.
TEST(GoldenTest, GoldenValuesParseBack) {
  std::map<std::string, std::string> golden;
  for (auto& [name, bytes] : ReadGolden("values.txt")) golden[name] = bytes;
  records::Session session;
  ASSERT_TRUE(session.ParseFromString(golden["session"]));
  EXPECT_THAT(session, EqualsProto(FixedSession()));
  records::Subscription sub;
  ASSERT_TRUE(sub.ParseFromString(golden["subscription"]));
  EXPECT_THAT(sub, EqualsProto(FixedSubscription()));
  records::Will will;
  ASSERT_TRUE(will.ParseFromString(golden["will"]));
  EXPECT_THAT(will, EqualsProto(FixedWill()));
  records::Message message;
  ASSERT_TRUE(message.ParseFromString(golden["message"]));
  EXPECT_THAT(message, EqualsProto(FixedMessage()));
  records::QueueEntry entry;
  ASSERT_TRUE(entry.ParseFromString(golden["queue_entry"]));
  EXPECT_THAT(entry, EqualsProto(FixedEntry()));
  records::Format format;
  ASSERT_TRUE(format.ParseFromString(golden["format"]));
  EXPECT_THAT(format, EqualsProto(FixedFormat()));
}

// The golden keys decode back into the fixed inputs.
TEST(GoldenTest, GoldenKeysDecodeBack) {
  std::map<std::string, std::string> golden;
  for (auto& [name, bytes] : ReadGolden("keys.txt")) golden[name] = bytes;
  const uint32_t pc = keys::ReadBe32(golden["partition_of_client"]);
  const uint32_t pt = keys::ReadBe32(golden["partition_of_topic"]);
  EXPECT_EQ(pc, PartitionOf(kClient, kP));
  EXPECT_EQ(pt, PartitionOf(kTopic, kP));

  keys::ClientKeyParts ck;
  ASSERT_TRUE(keys::DecodeClientKey(golden["sessions"], &ck));
  EXPECT_EQ(ck.partition, pc);
  EXPECT_EQ(ck.client_id, kClient);
  keys::PerClientKeyParts pk;
  ASSERT_TRUE(keys::DecodeSubscriptionKey(golden["subscriptions"], &pk));
  EXPECT_EQ(pk.client_id, kClient);
  EXPECT_EQ(pk.suffix, kFilter);
  uint64_t id = 0;
  ASSERT_TRUE(keys::DecodeEntryKey(golden["queue"], &pk, &id));
  EXPECT_EQ(id, kMessageId);
  uint16_t pid = 0;
  ASSERT_TRUE(keys::DecodeIncomingQos2Key(golden["incoming_qos2"], &pk, &pid));
  EXPECT_EQ(pid, kPacketId);
  uint32_t p = 0;
  ASSERT_TRUE(keys::DecodeMessageKey(golden["messages"], &p, &id));
  EXPECT_EQ(p, pt);
  EXPECT_EQ(id, kMessageId);
  keys::RetainedKeyParts rk;
  ASSERT_TRUE(keys::DecodeRetainedKey(golden["retained"], &rk));
  EXPECT_EQ(rk.partition, pt);
  EXPECT_EQ(rk.topic, kTopic);
}

// ---- Properties of the encoding (not pinned bytes) ----

TEST(KeysTest, IntegersSortNumerically) {
  const std::vector<uint64_t> ids = {0,
                                     1,
                                     255,
                                     256,
                                     65535,
                                     65536,
                                     uint64_t{1} << 32,
                                     (uint64_t{1} << 63) - 1,
                                     uint64_t{1} << 63,
                                     ~uint64_t{0}};
  for (size_t i = 1; i < ids.size(); ++i) {
    EXPECT_LT(keys::EntryKey(3, "c", ids[i - 1]), keys::EntryKey(3, "c", ids[i])) << ids[i];
    EXPECT_LT(keys::MessageKey(3, ids[i - 1]), keys::MessageKey(3, ids[i])) << ids[i];
  }
  EXPECT_LT(keys::IncomingQos2Key(0, "c", 255), keys::IncomingQos2Key(0, "c", 256));
  EXPECT_LT(keys::PartitionPrefix(255) + "\xff", keys::PartitionPrefix(256));
}

TEST(KeysTest, ClientRangeHoldsExactlyThatClient) {
  const std::string begin = keys::ClientPrefix(0, "a");
  const std::string end = keys::ClientPrefixEnd(0, "a");
  auto inside = [&](const std::string& key) { return begin <= key && key < end; };
  EXPECT_TRUE(inside(keys::EntryKey(0, "a", 0)));
  EXPECT_TRUE(inside(keys::EntryKey(0, "a", ~uint64_t{0})));
  EXPECT_TRUE(inside(keys::SubscriptionKey(0, "a", "\xff\xff")));
  EXPECT_TRUE(inside(keys::SubscriptionKey(0, "a", "")));
  EXPECT_TRUE(inside(keys::IncomingQos2Key(0, "a", 0xffff)));
  for (const std::string& other : {std::string("ab"), std::string("a\x01", 2), std::string(""),
                                   std::string("A"), std::string("a/")}) {
    EXPECT_FALSE(inside(keys::EntryKey(0, other, 0))) << Hex(other);
    EXPECT_FALSE(inside(keys::SubscriptionKey(0, other, ""))) << Hex(other);
    EXPECT_FALSE(inside(keys::IncomingQos2Key(0, other, 0))) << Hex(other);
  }
  EXPECT_FALSE(inside(keys::EntryKey(1, "a", 0)));  // another partition
}

TEST(KeysTest, DecodeRejectsMalformedKeys) {
  keys::ClientKeyParts ck;
  EXPECT_FALSE(keys::DecodeClientKey("abc", &ck));                           // no partition
  EXPECT_FALSE(keys::DecodeClientKey(std::string("\0\0\0\0a\0b", 7), &ck));  // NUL in id
  keys::PerClientKeyParts pk;
  uint64_t id = 0;
  uint16_t pid = 0;
  EXPECT_FALSE(keys::DecodeEntryKey(keys::ClientKey(0, "a"), &pk, &id));  // no terminator
  EXPECT_FALSE(keys::DecodeEntryKey(keys::IncomingQos2Key(0, "a", 1), &pk, &id));
  EXPECT_FALSE(keys::DecodeIncomingQos2Key(keys::EntryKey(0, "a", 1), &pk, &pid));
  uint32_t p = 0;
  EXPECT_FALSE(keys::DecodeMessageKey(keys::PartitionPrefix(1), &p, &id));
  keys::RetainedKeyParts rk;
  EXPECT_FALSE(keys::DecodeRetainedKey("ab", &rk));
}

}  // namespace
}  // namespace shardmq::storage
