// Golden fixtures that pin the on-disk format (version 2): the key bytes of every column family
// (tests/storage/golden/keys.txt) and the value bytes of one fixed record of each type
// (tests/storage/golden/values.txt). A failure here means the format changed: existing data
// directories would no longer read back.
//
// Version 2 replaced v1's `queue` records with one `recipients` record per message and a `done`
// mark per finished delivery; v1 directories are refused (there is no converter).
//
// Regenerate ONLY together with a new format version (column_families.h kFormatVersion; old
// directories must then be refused by version, or migrated):
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
#include <string_view>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/records.pb.h"
#include "storage/batch.h"
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
      {"inflight", keys::EntryKey(pc, kClient, kMessageId)},
      {"incoming_qos2", keys::IncomingQos2Key(pc, kClient, kPacketId)},
      {"delete_session_begin", keys::ClientPrefix(pc, kClient)},
      {"delete_session_end", keys::ClientPrefixEnd(pc, kClient)},
      {"messages", keys::MessageKey(pt, kMessageId)},
      {"recipients", keys::MessageKey(pt, kMessageId)},
      {"done", keys::DoneKey(pt, kMessageId, kClient)},
      {"delete_message_done_end", keys::DoneEnd(pt, kMessageId)},
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

// Built with storage::Recipients (the writer of the stored bytes), for fixed inputs: every
// field set, defaults left out, subscription ids of 1, 2 and 3 varint bytes.
Recipients FixedRecipients() {
  Recipients r;
  r.Add(kClient, 2, true, {77, 3, 70000});
  r.Add("dev-2", 1, false, {200});
  r.Add("dev-3", 0, false);
  return r;
}

// The same records with the generated API.
records::Recipients FixedRecipientsProto() {
  records::Recipients r;
  records::Recipient* a = r.add_recipients();
  a->set_client_id(kClient);
  a->set_qos(2);
  a->set_retain(true);
  a->add_subscription_ids(77);
  a->add_subscription_ids(3);
  a->add_subscription_ids(70000);
  records::Recipient* b = r.add_recipients();
  b->set_client_id("dev-2");
  b->set_qos(1);
  b->add_subscription_ids(200);
  r.add_recipients()->set_client_id("dev-3");
  return r;
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
      {"recipients", FixedRecipients().encoded()},
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
    "# On-disk format version 2. Checked by tests/storage/golden_test.cc; regenerate only with a\n"
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
  records::Recipients recipients;
  ASSERT_TRUE(recipients.ParseFromString(golden["recipients"]));
  EXPECT_THAT(recipients, EqualsProto(FixedRecipientsProto()));
  // The generated serializer writes the same bytes as storage::Recipients.
  EXPECT_EQ(Hex(Deterministic(FixedRecipientsProto())), Hex(golden["recipients"]));
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
  ASSERT_TRUE(keys::DecodeEntryKey(golden["inflight"], &pk, &id));
  EXPECT_EQ(pk.partition, pc);
  EXPECT_EQ(pk.client_id, kClient);
  EXPECT_EQ(id, kMessageId);
  uint16_t pid = 0;
  ASSERT_TRUE(keys::DecodeIncomingQos2Key(golden["incoming_qos2"], &pk, &pid));
  EXPECT_EQ(pid, kPacketId);
  uint32_t p = 0;
  ASSERT_TRUE(keys::DecodeMessageKey(golden["messages"], &p, &id));
  EXPECT_EQ(p, pt);
  EXPECT_EQ(id, kMessageId);
  p = 0;
  id = 0;
  ASSERT_TRUE(keys::DecodeMessageKey(golden["recipients"], &p, &id));
  EXPECT_EQ(p, pt);
  EXPECT_EQ(id, kMessageId);
  p = 0;
  id = 0;
  std::string_view cid;
  ASSERT_TRUE(keys::DecodeDoneKey(golden["done"], &p, &id, &cid));
  EXPECT_EQ(p, pt);
  EXPECT_EQ(id, kMessageId);
  EXPECT_EQ(cid, kClient);
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
  std::string_view cid;
  EXPECT_FALSE(keys::DecodeDoneKey(keys::MessageKey(0, 1), &p, &id, &cid));  // no client id
  EXPECT_FALSE(keys::DecodeDoneKey(keys::PartitionPrefix(1), &p, &id, &cid));
  EXPECT_FALSE(keys::DecodeDoneKey(keys::DoneKey(0, 1, std::string("a\0b", 3)), &p, &id, &cid));
  ASSERT_TRUE(keys::DecodeDoneKey(keys::DoneKey(3, 9, "a"), &p, &id, &cid));
  EXPECT_EQ(p, 3u);
  EXPECT_EQ(id, 9u);
  EXPECT_EQ(cid, "a");
}

// DeleteMessage deletes [MessageKey(p, id), DoneEnd(p, id)) in `done`: every done mark of that
// message, whatever the client id, and no mark of another message or partition.
TEST(KeysTest, DoneMarksOfAMessageAreOneRange) {
  constexpr uint64_t kMax = ~uint64_t{0};
  const std::vector<std::string> clients = {
      "a", "ab", std::string("a\x01", 2), "\x7f", "\xc3\xbc", "\xef\xbf\xbf",
      "\xf4\x8f\xbf\xbf",  // U+10FFFF: the largest UTF-8 lead byte a client id can start with
      std::string(300, 'z')};
  for (uint32_t p : {0u, 7u, 255u}) {
    for (uint64_t id : {uint64_t{1}, uint64_t{255}, uint64_t{256}, uint64_t{1} << 63, kMax - 1,
                        kMax}) {
      const std::string begin = keys::MessageKey(p, id);
      const std::string end = keys::DoneEnd(p, id);
      auto inside = [&](const std::string& key) { return begin <= key && key < end; };
      EXPECT_LT(begin, end);
      for (const std::string& cid : clients) {
        EXPECT_TRUE(inside(keys::DoneKey(p, id, cid))) << p << " " << id << " " << Hex(cid);
        EXPECT_FALSE(inside(keys::DoneKey(p, id - 1, cid))) << p << " " << id << " " << Hex(cid);
        if (id != kMax) {
          EXPECT_FALSE(inside(keys::DoneKey(p, id + 1, cid))) << p << " " << id << " " << Hex(cid);
        }
        EXPECT_FALSE(inside(keys::DoneKey(p + 1, id, cid))) << p << " " << id << " " << Hex(cid);
        EXPECT_FALSE(inside(keys::DoneKey(p + 1, 0, cid))) << p << " " << id << " " << Hex(cid);
      }
      // The range ends inside the partition.
      EXPECT_LE(end, keys::PartitionPrefix(p + 1));
    }
  }
  EXPECT_EQ(keys::DoneEnd(4, 9), keys::MessageKey(4, 10));
}

// ---- storage::Recipients: the stored records::Recipients, written without the generated code ----

struct RecipientCase {
  std::string client_id;
  uint32_t qos;
  bool retain;
  std::vector<uint32_t> subscription_ids;
};

std::vector<RecipientCase> RecipientCases() {
  std::vector<RecipientCase> cases = {
      {"c", 0, false, {}},
      {"c", 1, false, {}},
      {"c", 2, false, {}},
      {"c", 0, true, {}},
      {"dev-1", 1, true, {1}},
      {"dev-1", 2, false, {127}},
      {"dev-1", 0, true, {128}},
      {"x", 1, false, {16383}},
      {"x", 2, true, {16384}},
      {"y", 1, false, {1, 300, 2097152}},
      {"y", 0, false, {127, 128, 16384}},
      {"y", 2, true, {268435455, 70000, 5}},  // the largest MQTT subscription id
      {"z", 1, true, {0xFFFFFFFFu}},          // a 5-byte varint
      {"\xc3\x9c" "berwachung-\xe6\x97\xa5\xe6\x9c\xac", 1, false, {9}},
      {std::string(200, 'L'), 1, true, {5}},
      {std::string(200, 'L'), 0, false, {}},
      {std::string(20000, 'H'), 2, true, {1, 200, 70000}},  // recipient longer than 16383 bytes
  };
  // Client ids around the 127/128-byte boundary of the recipient's length varint.
  for (size_t n : {124, 125, 126, 127, 128}) {
    cases.push_back({std::string(n, 'b'), 0, false, {}});
    cases.push_back({std::string(n, 'b'), 2, true, {130}});
  }
  return cases;
}

records::Recipient ToProto(const RecipientCase& c) {
  records::Recipient r;
  r.set_client_id(c.client_id);
  r.set_qos(c.qos);
  r.set_retain(c.retain);
  for (uint32_t id : c.subscription_ids) r.add_subscription_ids(id);
  return r;
}

std::string Describe(const RecipientCase& c) {
  std::string out = "client id of " + std::to_string(c.client_id.size()) + " bytes, qos " +
                    std::to_string(c.qos) + (c.retain ? ", retain" : "") + ", ids";
  for (uint32_t id : c.subscription_ids) out += " " + std::to_string(id);
  return out;
}

TEST(RecipientsTest, EmptyEncodesNothing) {
  Recipients r;
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.encoded(), "");
  EXPECT_FALSE(r.HasInvalidClientId());
  records::Recipients parsed;
  ASSERT_TRUE(parsed.ParseFromString(r.encoded()));
  EXPECT_EQ(parsed.recipients_size(), 0);
}

TEST(RecipientsTest, OneRecipientEncodesLikeTheGeneratedSerializer) {
  for (const RecipientCase& c : RecipientCases()) {
    Recipients r;
    r.Add(c.client_id, c.qos, c.retain, c.subscription_ids);
    EXPECT_EQ(r.size(), 1u);
    EXPECT_FALSE(r.empty());
    EXPECT_FALSE(r.HasInvalidClientId()) << Describe(c);

    records::Recipients parsed;
    ASSERT_TRUE(parsed.ParseFromString(r.encoded())) << Describe(c);
    ASSERT_EQ(parsed.recipients_size(), 1) << Describe(c);
    const records::Recipient& got = parsed.recipients(0);
    EXPECT_EQ(got.client_id(), c.client_id) << Describe(c);
    EXPECT_EQ(got.qos(), c.qos) << Describe(c);
    EXPECT_EQ(got.retain(), c.retain) << Describe(c);
    EXPECT_THAT(got.subscription_ids(), ::testing::ElementsAreArray(c.subscription_ids))
        << Describe(c);
    // Nothing else in the bytes (an unknown field would survive parsing as such).
    EXPECT_TRUE(got.GetReflection()->GetUnknownFields(got).empty()) << Describe(c);
    EXPECT_TRUE(parsed.GetReflection()->GetUnknownFields(parsed).empty()) << Describe(c);

    records::Recipients expected;
    *expected.add_recipients() = ToProto(c);
    EXPECT_EQ(Hex(r.encoded()), Hex(expected.SerializeAsString())) << Describe(c);
  }
}

TEST(RecipientsTest, ManyRecipientsAppendInOrder) {
  const std::vector<RecipientCase> cases = RecipientCases();
  Recipients r;
  records::Recipients expected;
  for (const RecipientCase& c : cases) {
    r.Add(c.client_id, c.qos, c.retain, c.subscription_ids);
    *expected.add_recipients() = ToProto(c);
  }
  EXPECT_EQ(r.size(), cases.size());
  EXPECT_FALSE(r.HasInvalidClientId());
  records::Recipients parsed;
  ASSERT_TRUE(parsed.ParseFromString(r.encoded()));
  EXPECT_THAT(parsed, EqualsProto(expected));
  EXPECT_EQ(Hex(r.encoded()), Hex(expected.SerializeAsString()));
  EXPECT_EQ(Hex(r.encoded()), Hex(Deterministic(expected)));
}

TEST(RecipientsTest, FlagsAnEmptyOrNulClientIdButStillEncodesIt) {
  const std::string nul("a\0b", 3);
  for (const std::string& bad : {std::string(), nul, std::string("\0", 1)}) {
    Recipients r;
    r.Add("fine", 1, false);
    EXPECT_FALSE(r.HasInvalidClientId());
    r.Add(bad, 0, false);
    EXPECT_TRUE(r.HasInvalidClientId()) << Hex(bad);
    r.Add("fine-again", 1, false);
    EXPECT_TRUE(r.HasInvalidClientId()) << Hex(bad);  // stays set
    EXPECT_EQ(r.size(), 3u);
    records::Recipients expected;
    expected.add_recipients()->set_client_id("fine");
    expected.mutable_recipients(0)->set_qos(1);
    expected.add_recipients()->set_client_id(bad);
    expected.add_recipients()->set_client_id("fine-again");
    expected.mutable_recipients(2)->set_qos(1);
    EXPECT_EQ(Hex(r.encoded()), Hex(expected.SerializeAsString())) << Hex(bad);
  }
}

TEST(RecipientsTest, CopiesAreIndependent) {
  Recipients a;
  a.Add("a", 1, false);
  Recipients b = a;
  b.Add("b", 2, true, {3});
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(b.size(), 2u);
  records::Recipients parsed;
  ASSERT_TRUE(parsed.ParseFromString(a.encoded()));
  EXPECT_EQ(parsed.recipients_size(), 1);
}

}  // namespace
}  // namespace shardmq::storage
