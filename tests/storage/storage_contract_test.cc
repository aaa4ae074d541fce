// The behavioural contract of storage::Storage (storage/storage.h, storage/batch.h), run against
// every implementation: the in-memory fake and RocksDB (256 partitions with Durability::kWal, and
// one partition with kFsync, where every client shares a partition so the client-id prefix
// cases really share key ranges).
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/storage.h"
#include "tests/storage/storage_test_util.h"
#include "tests/support/test_util.h"

namespace shardmq::storage {
namespace {

using fixtures::ClientIds;
using fixtures::Describe;
using fixtures::EntryIds;
using fixtures::EqualsProto;
using fixtures::Filters;
using fixtures::FindSession;
using fixtures::MakeEntry;
using fixtures::MakeMessage;
using fixtures::MakeQueued;
using fixtures::MakeSession;
using fixtures::MakeSub;
using fixtures::MakeWill;
using fixtures::RecipientsOf;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

enum class Impl { kMemory, kRocks };

struct Param {
  const char* name;
  Impl impl;
  uint32_t partitions;
  Durability durability;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.name; }

class StorageContractTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (GetParam().impl == Impl::kMemory) {
      storage_ = CreateInMemoryStorage();
    } else {
      StorageOptions options;
      options.data_dir = dir_.Join("data");
      options.partitions = GetParam().partitions;
      options.durability = GetParam().durability;
      auto opened = OpenRocksStorage(options);
      ASSERT_OK(opened);
      storage_ = std::move(opened).value();
    }
  }

  void Commit(Batch batch) { ASSERT_OK(storage_->CommitSync(std::move(batch))); }

  Snapshot Load() {
    auto snapshot = storage_->Load();
    EXPECT_OK(snapshot);
    return snapshot.ok() ? std::move(snapshot).value() : Snapshot{};
  }

  shardmq::test::ScopedTempDir dir_;
  std::unique_ptr<Storage> storage_;
};

// A session with one of everything; message ids `id` (queued: the client is its recipient) and
// `id + 1` (in flight). The empty client id cannot be a recipient (ValidateBatch refuses it: a
// done mark ends with the client id), so its message `id` is in flight too.
Batch FullClient(const std::string& cid, uint64_t id) {
  Batch b;
  b.PutSession(MakeSession(cid));
  b.PutSubscription(cid, MakeSub(cid + "/+/x"));
  b.PutSubscription(cid, MakeSub("$share/g/" + cid, 2, 9));
  b.PutWill(cid, MakeWill(cid));
  if (cid.empty()) {
    b.PutMessage(id, MakeMessage("t/" + cid, "m" + std::to_string(id)));
    b.PutInflight(cid, id, MakeEntry(id, 1, records::QueueEntry::SENT, 2));
  } else {
    b.PutMessage(id, MakeMessage("t/" + cid, "m" + std::to_string(id)), RecipientsOf({cid}));
  }
  b.PutMessage(id + 1, MakeMessage("t/" + cid, "m" + std::to_string(id + 1)));
  b.PutInflight(cid, id + 1, MakeEntry(id + 1, 1, records::QueueEntry::SENT, 3));
  b.PutIncomingQos2(cid, 11);
  return b;
}

TEST_P(StorageContractTest, EmptyStorageLoadsEmptySnapshot) {
  const Snapshot s = Load();
  EXPECT_THAT(s.sessions, IsEmpty());
  EXPECT_THAT(s.messages, IsEmpty());
  EXPECT_THAT(s.retained, IsEmpty());
  EXPECT_EQ(s.max_message_id, 0u);
}

TEST_P(StorageContractTest, EmptyBatchCommits) { Commit(Batch{}); }

TEST_P(StorageContractTest, PutSessionStoresAndReplaces) {
  Batch b;
  b.PutSession(MakeSession("c1", 10));
  b.PutSession(MakeSession("c2", 20));
  Commit(std::move(b));
  Batch replace;
  records::Session replacement = MakeSession("c1", 99);
  replacement.set_protocol_version(4);
  replacement.set_expiry_interval_s(0xFFFFFFFF);
  replace.PutSession(replacement);
  Commit(std::move(replace));

  const Snapshot s = Load();
  ASSERT_EQ(s.sessions.size(), 2u);
  ASSERT_NE(FindSession(s, "c1"), nullptr);
  EXPECT_THAT(FindSession(s, "c1")->session, EqualsProto(replacement));
  EXPECT_THAT(FindSession(s, "c2")->session, EqualsProto(MakeSession("c2", 20)));
  EXPECT_THAT(FindSession(s, "c1")->subscriptions, IsEmpty());
  EXPECT_FALSE(FindSession(s, "c1")->will.has_value());
  EXPECT_THAT(FindSession(s, "c1")->entries, IsEmpty());
  EXPECT_THAT(FindSession(s, "c1")->incoming_qos2, IsEmpty());
}

TEST_P(StorageContractTest, SubscriptionsPutReplaceDelete) {
  Batch b;
  b.PutSession(MakeSession("c"));
  b.PutSubscription("c", MakeSub("a/+/c", 1, 7));
  b.PutSubscription("c", MakeSub("$share/g/x/#", 2));
  b.PutSubscription("c", MakeSub("b", 0));
  b.PutSubscription("other", MakeSub("a/+/c", 0));
  b.PutSession(MakeSession("other"));
  Commit(std::move(b));
  Batch change;
  change.PutSubscription("c", MakeSub("b", 2, 5));  // replaces the options of "b"
  change.DeleteSubscription("c", "a/+/c");
  change.DeleteSubscription("c", "never/subscribed");  // deleting nothing is fine
  Commit(std::move(change));

  const Snapshot s = Load();
  const StoredSession* c = FindSession(s, "c");
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->subscriptions, UnorderedElementsAre(EqualsProto(MakeSub("$share/g/x/#", 2)),
                                                     EqualsProto(MakeSub("b", 2, 5))));
  EXPECT_THAT(FindSession(s, "other")->subscriptions,
              ElementsAre(EqualsProto(MakeSub("a/+/c", 0))));
}

TEST_P(StorageContractTest, WillPutReplaceDelete) {
  Batch b;
  b.PutSession(MakeSession("a"));
  b.PutSession(MakeSession("b"));
  b.PutWill("a", MakeWill("a", 1));
  b.PutWill("b", MakeWill("b", 1));
  Commit(std::move(b));
  Batch change;
  records::Will replaced = MakeWill("a", 30);
  replaced.set_message_expiry_s(60);
  change.PutWill("a", replaced);
  change.DeleteWill("b");
  change.DeleteWill("nobody");
  Commit(std::move(change));

  const Snapshot s = Load();
  ASSERT_TRUE(FindSession(s, "a")->will.has_value());
  EXPECT_THAT(*FindSession(s, "a")->will, EqualsProto(replaced));
  EXPECT_FALSE(FindSession(s, "b")->will.has_value());
  EXPECT_TRUE(FindSession(s, "b") != nullptr);  // deleting the will keeps the session
}

TEST_P(StorageContractTest, EntriesLoadAscendingByMessageIdAcrossQueuedAndInflight) {
  const uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const uint64_t kHigh = uint64_t{1} << 63;  // would sort first if compared as signed
  const std::vector<uint64_t> ids = {kMax, 256, 1, kHigh, 255, uint64_t{1} << 32, 2};
  Batch b;
  b.PutSession(MakeSession("c"));
  // Every message lists "c"; odd positions are in flight too, the rest queued, committed in a
  // scrambled order.
  for (uint64_t id : ids) {
    b.PutMessage(id, MakeMessage("t", "p" + std::to_string(id)), RecipientsOf({"c"}));
  }
  for (size_t i = 1; i < ids.size(); i += 2) {
    b.PutInflight("c", ids[i], MakeEntry(ids[i], 2, records::QueueEntry::SENT, i + 1));
  }
  Commit(std::move(b));

  const Snapshot s = Load();
  const StoredSession* c = FindSession(s, "c");
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(EntryIds(*c), ElementsAre(1, 2, 255, 256, uint64_t{1} << 32, kHigh, kMax));
  for (const auto& [id, entry] : c->entries) {
    EXPECT_EQ(entry.message_id(), id);
    EXPECT_TRUE(s.messages.contains(id)) << id;
  }
  // 256 was at index 1: in flight; 255 at index 4: queued.
  EXPECT_THAT(c->entries[3].second, EqualsProto(MakeEntry(256, 2, records::QueueEntry::SENT, 2)));
  EXPECT_THAT(c->entries[2].second, EqualsProto(MakeEntry(255)));
  EXPECT_EQ(s.max_message_id, kMax);
}

TEST_P(StorageContractTest, EntryMessageIdIsFilledFromTheKey) {
  Batch b;
  b.PutSession(MakeSession("c"));
  b.PutMessage(5, MakeMessage("t", "x"), RecipientsOf({"c"}));
  b.PutInflight("c", 5, MakeEntry(0, 1, records::QueueEntry::SENT, 3));  // no message_id
  b.PutMessage(6, MakeMessage("t", "y"), RecipientsOf({"c"}));             // a QUEUED one
  Commit(std::move(b));
  const Snapshot s = Load();
  EXPECT_THAT(FindSession(s, "c")->entries,
              ElementsAre(Pair(5u, EqualsProto(MakeEntry(5, 1, records::QueueEntry::SENT, 3))),
                          Pair(6u, EqualsProto(MakeQueued(6)))));
}

TEST_P(StorageContractTest, PutInflightOverridesTheQueuedEntry) {
  Batch b;
  b.PutSession(MakeSession("c"));
  b.PutMessage(1, MakeMessage("t", "x"), RecipientsOf({"c"}, 2));
  Commit(std::move(b));
  EXPECT_THAT(FindSession(Load(), "c")->entries,
              ElementsAre(Pair(1u, EqualsProto(MakeQueued(1, 2)))));
  Batch sent;
  sent.PutInflight("c", 1, MakeEntry(1, 2, records::QueueEntry::SENT, 42));
  Commit(std::move(sent));
  Snapshot s = Load();
  EXPECT_THAT(FindSession(s, "c")->entries,
              ElementsAre(Pair(1u, EqualsProto(MakeEntry(1, 2, records::QueueEntry::SENT, 42)))));

  Batch released;  // QoS 2: PUBREC received, PUBREL sent
  released.PutInflight("c", 1, MakeEntry(1, 2, records::QueueEntry::RELEASED, 42));
  Commit(std::move(released));
  s = Load();
  EXPECT_THAT(
      FindSession(s, "c")->entries,
      ElementsAre(Pair(1u, EqualsProto(MakeEntry(1, 2, records::QueueEntry::RELEASED, 42)))));
}

TEST_P(StorageContractTest, InflightOverridesTheQueuedEntryWhateverTheCommitOrder) {
  // The in-flight record is committed before the message that lists the client: it still wins
  // over the recipient's QUEUED entry (there is no "later write wins" between the two).
  Batch b;
  b.PutSession(MakeSession("c"));
  b.PutInflight("c", 1, MakeEntry(1, 1, records::QueueEntry::SENT, 9));
  Commit(std::move(b));
  Batch again;
  again.PutMessage(1, MakeMessage("t", "x"), RecipientsOf({"c"}));
  Commit(std::move(again));
  for (int i = 0; i < 2; ++i) {  // and the QUEUED entry does not come back either
    const Snapshot s = Load();
    EXPECT_THAT(FindSession(s, "c")->entries,
                ElementsAre(Pair(1u, EqualsProto(MakeEntry(1, 1, records::QueueEntry::SENT, 9)))));
  }
}

TEST_P(StorageContractTest, DeleteEntryRemovesQueuedAndInflight) {
  Batch b;
  b.PutSession(MakeSession("c"));
  for (uint64_t id = 1; id <= 4; ++id) b.PutMessage(id, MakeMessage("t", "x"), RecipientsOf({"c"}));
  b.PutInflight("c", 3, MakeEntry(3, 1, records::QueueEntry::SENT, 1));
  b.PutInflight("c", 4, MakeEntry(4, 1, records::QueueEntry::SENT, 2));
  Commit(std::move(b));
  Batch del;
  del.DeleteEntry("c", "t", 1);   // queued
  del.DeleteEntry("c", "t", 4);   // in flight
  del.DeleteEntry("c", "t", 77);  // missing
  del.DeleteEntry("nobody", "t", 2);
  Commit(std::move(del));
  for (int i = 0; i < 2; ++i) {  // finished for good
    const Snapshot s = Load();
    EXPECT_THAT(EntryIds(*FindSession(s, "c")), ElementsAre(2, 3));
    EXPECT_THAT(s.messages, UnorderedElementsAre(Pair(2u, _), Pair(3u, _)));
  }
}

// A done delivery stays done: an in-flight record written after the done mark (a stale write)
// is not returned.
TEST_P(StorageContractTest, DoneMarkHidesALaterInflightRecord) {
  Batch b;
  b.PutSession(MakeSession("c"));
  b.PutMessage(1, MakeMessage("t", "x"), RecipientsOf({"c", "d"}));
  b.PutSession(MakeSession("d"));  // keeps the body needed
  b.DeleteEntry("c", "t", 1);
  Commit(std::move(b));
  Batch stale;
  stale.PutInflight("c", 1, MakeEntry(1, 1, records::QueueEntry::SENT, 4));
  Commit(std::move(stale));
  for (int i = 0; i < 2; ++i) {
    const Snapshot s = Load();
    EXPECT_THAT(FindSession(s, "c")->entries, IsEmpty());
    EXPECT_THAT(EntryIds(*FindSession(s, "d")), ElementsAre(1));
  }
}

TEST_P(StorageContractTest, IncomingQos2PutDeleteAscending) {
  Batch b;
  b.PutSession(MakeSession("c"));
  b.PutSession(MakeSession("other"));
  for (uint16_t pid : {uint16_t{65535}, uint16_t{10}, uint16_t{256}, uint16_t{1}, uint16_t{10}}) {
    b.PutIncomingQos2("c", pid);
  }
  b.PutIncomingQos2("other", 10);
  Commit(std::move(b));
  Batch del;
  del.DeleteIncomingQos2("c", 10);
  del.DeleteIncomingQos2("c", 777);
  del.DeleteIncomingQos2("nobody", 1);
  Commit(std::move(del));
  const Snapshot s = Load();
  EXPECT_THAT(FindSession(s, "c")->incoming_qos2, ElementsAre(1, 256, 65535));
  EXPECT_THAT(FindSession(s, "other")->incoming_qos2, ElementsAre(10));
}

TEST_P(StorageContractTest, MessageBodiesAreLoadedWhenReferencedAndDeletedByTopicAndId) {
  Batch b;
  b.PutSession(MakeSession("a"));
  b.PutSession(MakeSession("b"));
  records::Message full = MakeMessage("fleet/7/temp", std::string("\0\xff binary", 9), 2);
  full.set_payload_format_indicator(0);
  full.set_expiry_at_ms(1700000000000);
  full.set_content_type("text/plain");
  full.set_response_topic("reply/here");
  full.set_correlation_data("corr");
  full.set_publisher("pub-1");
  records::UserProperty* prop = full.add_user_properties();
  prop->set_key("k");
  prop->set_value("v");
  b.PutMessage(1, full, RecipientsOf({"a", "b"}));  // one body, two sessions
  b.PutMessage(2, MakeMessage("other/topic", "two"), RecipientsOf({"b"}));
  Commit(std::move(b));
  Snapshot s = Load();
  ASSERT_EQ(s.messages.size(), 2u);
  EXPECT_THAT(s.messages.at(1), EqualsProto(full));
  EXPECT_THAT(s.messages.at(2), EqualsProto(MakeMessage("other/topic", "two")));

  Batch del;
  del.DeleteEntry("b", "other/topic", 2);
  del.DeleteMessage("other/topic", 2);
  Commit(std::move(del));
  s = Load();
  EXPECT_THAT(s.messages, ElementsAre(Pair(1u, EqualsProto(full))));
}

// One message, three recipients with their own delivery options; each delivery is finished on
// its own.
TEST_P(StorageContractTest, EveryRecipientGetsItsOwnEntryUntilItsDeliveryIsDone) {
  const std::string topic = "fleet/1/temp";
  Batch b;
  for (const char* cid : {"a", "b", "c", "bystander"}) b.PutSession(MakeSession(cid));
  Recipients recipients;
  recipients.Add("a", 0, false);
  recipients.Add("b", 1, true, {5});
  recipients.Add("c", 2, false, {1, 200, 70000});
  EXPECT_EQ(recipients.size(), 3u);
  b.PutMessage(10, MakeMessage(topic, "21.5", 2), recipients);
  Commit(std::move(b));

  Snapshot s = Load();
  EXPECT_THAT(FindSession(s, "a")->entries, ElementsAre(Pair(10u, EqualsProto(MakeQueued(10, 0)))));
  EXPECT_THAT(FindSession(s, "b")->entries,
              ElementsAre(Pair(10u, EqualsProto(MakeQueued(10, 1, true, {5})))));
  EXPECT_THAT(FindSession(s, "c")->entries,
              ElementsAre(Pair(10u, EqualsProto(MakeQueued(10, 2, false, {1, 200, 70000})))));
  EXPECT_THAT(FindSession(s, "bystander")->entries, IsEmpty());
  EXPECT_THAT(s.messages, ElementsAre(Pair(10u, EqualsProto(MakeMessage(topic, "21.5", 2)))));
  EXPECT_EQ(s.max_message_id, 10u);

  // "a" is done with it (PUBACK, or a QoS 0 delivery sent).
  Batch done_a;
  done_a.DeleteEntry("a", topic, 10);
  Commit(std::move(done_a));
  s = Load();
  EXPECT_THAT(FindSession(s, "a")->entries, IsEmpty());
  EXPECT_THAT(EntryIds(*FindSession(s, "b")), ElementsAre(10));
  EXPECT_THAT(EntryIds(*FindSession(s, "c")), ElementsAre(10));

  // "b" gets it in flight: the in-flight record replaces its QUEUED entry.
  records::QueueEntry sent = MakeEntry(10, 1, records::QueueEntry::SENT, 17);
  sent.set_retain(true);
  sent.add_subscription_ids(5);
  Batch send_b;
  send_b.PutInflight("b", 10, sent);
  Commit(std::move(send_b));
  s = Load();
  EXPECT_THAT(FindSession(s, "a")->entries, IsEmpty());
  EXPECT_THAT(FindSession(s, "b")->entries, ElementsAre(Pair(10u, EqualsProto(sent))));
  EXPECT_THAT(FindSession(s, "c")->entries,
              ElementsAre(Pair(10u, EqualsProto(MakeQueued(10, 2, false, {1, 200, 70000})))));
  EXPECT_TRUE(s.messages.contains(10));

  // Both others done (in separate batches): nothing needs the body any more.
  Batch done_b;
  done_b.DeleteEntry("b", topic, 10);
  Commit(std::move(done_b));
  s = Load();
  EXPECT_THAT(FindSession(s, "b")->entries, IsEmpty());
  EXPECT_THAT(EntryIds(*FindSession(s, "c")), ElementsAre(10));
  EXPECT_TRUE(s.messages.contains(10));
  Batch done_c;
  done_c.DeleteEntry("c", topic, 10);
  Commit(std::move(done_c));
  for (int i = 0; i < 2; ++i) {
    s = Load();
    for (const char* cid : {"a", "b", "c", "bystander"}) {
      EXPECT_THAT(FindSession(s, cid)->entries, IsEmpty()) << cid;
    }
    EXPECT_THAT(s.messages, IsEmpty());
  }
  // The body was deleted, not skipped: an in-flight record of it now has nothing to deliver.
  Batch stale;
  stale.PutInflight("c", 10, MakeEntry(10, 2, records::QueueEntry::SENT, 3));
  Commit(std::move(stale));
  s = Load();
  EXPECT_THAT(FindSession(s, "c")->entries, IsEmpty());
  EXPECT_THAT(s.messages, IsEmpty());
}

// Recipients of several messages: each session's entries are exactly the messages listing it.
TEST_P(StorageContractTest, EntriesAreTheMessagesListingTheSessionInIdOrder) {
  Batch b;
  for (const char* cid : {"a", "ab", "b"}) b.PutSession(MakeSession(cid));
  b.PutMessage(3, MakeMessage("x", "3"), RecipientsOf({"a", "b"}));
  b.PutMessage(1, MakeMessage("y", "1"), RecipientsOf({"ab"}));
  b.PutMessage(2, MakeMessage("x", "2"), RecipientsOf({"b", "ab", "a"}));
  b.PutMessage(4, MakeMessage("z", "4"));  // nobody's
  Commit(std::move(b));
  const Snapshot s = Load();
  EXPECT_THAT(EntryIds(*FindSession(s, "a")), ElementsAre(2, 3));
  EXPECT_THAT(EntryIds(*FindSession(s, "ab")), ElementsAre(1, 2));
  EXPECT_THAT(EntryIds(*FindSession(s, "b")), ElementsAre(2, 3));
  EXPECT_THAT(s.messages, UnorderedElementsAre(Pair(1u, _), Pair(2u, _), Pair(3u, _)));
}

// A client listed twice in one message (the broker does that when a session's non-shared and
// shared subscriptions both match: two deliveries). Storage keys a delivery by (client, message):
// in flight, done and Load's entries, so the session has one entry for the message, the
// in-flight record overrides it, and one DeleteEntry finishes it. (Both listings have the same
// options here: which one wins when they differ is not specified.)
TEST_P(StorageContractTest, AClientListedTwiceHasOneEntryForTheMessage) {
  Batch b;
  b.PutSession(MakeSession("a"));
  b.PutSession(MakeSession("b"));
  Recipients recipients;
  recipients.Add("a", 1, false, {3});
  recipients.Add("b", 1, false);
  recipients.Add("a", 1, false, {3});
  b.PutMessage(10, MakeMessage("t", "x"), recipients);
  Commit(std::move(b));
  Snapshot s = Load();
  EXPECT_THAT(FindSession(s, "a")->entries,
              ElementsAre(Pair(10u, EqualsProto(MakeQueued(10, 1, false, {3})))));

  records::QueueEntry sent = MakeEntry(10, 1, records::QueueEntry::SENT, 5);
  sent.add_subscription_ids(3);
  Batch send;
  send.PutInflight("a", 10, sent);
  Commit(std::move(send));
  s = Load();
  EXPECT_THAT(FindSession(s, "a")->entries, ElementsAre(Pair(10u, EqualsProto(sent))));

  Batch done;
  done.DeleteEntry("a", "t", 10);
  Commit(std::move(done));
  s = Load();
  EXPECT_THAT(FindSession(s, "a")->entries, IsEmpty());
  EXPECT_THAT(EntryIds(*FindSession(s, "b")), ElementsAre(10));
}

// A recipient whose session record is missing (never stored, or deleted without DeleteEntry) is
// an orphan: not returned, marked done, and the message is collected once nobody needs it.
TEST_P(StorageContractTest, OrphanRecipientsAreDoneAndTheirMessagesCollected) {
  Batch setup;
  setup.PutSession(MakeSession("alive"));
  setup.PutSession(MakeSession("gone"));
  Commit(std::move(setup));
  Batch drop;
  drop.DeleteSession("gone");  // without finishing its deliveries (see DeleteSessionLeaves...)
  Commit(std::move(drop));
  Batch b;
  b.PutMessage(1, MakeMessage("t", "shared"), RecipientsOf({"alive", "never"}));
  b.PutMessage(2, MakeMessage("t", "orphans only"), RecipientsOf({"never", "gone"}));
  Commit(std::move(b));

  Snapshot s = Load();
  EXPECT_THAT(ClientIds(s), ElementsAre("alive"));
  EXPECT_THAT(EntryIds(*FindSession(s, "alive")), ElementsAre(1));
  EXPECT_THAT(s.messages, ElementsAre(Pair(1u, EqualsProto(MakeMessage("t", "shared")))));
  EXPECT_EQ(s.max_message_id, 2u);

  // The orphans were marked done: sessions created now do not get those messages.
  Batch later;
  later.PutSession(MakeSession("never"));
  later.PutSession(MakeSession("gone"));
  Commit(std::move(later));
  s = Load();
  EXPECT_THAT(FindSession(s, "never")->entries, IsEmpty());
  EXPECT_THAT(FindSession(s, "gone")->entries, IsEmpty());
  EXPECT_THAT(EntryIds(*FindSession(s, "alive")), ElementsAre(1));
  EXPECT_THAT(s.messages, ElementsAre(Pair(1u, _)));

  Batch done;
  done.DeleteEntry("alive", "t", 1);
  Commit(std::move(done));
  s = Load();
  EXPECT_THAT(FindSession(s, "alive")->entries, IsEmpty());
  EXPECT_THAT(s.messages, IsEmpty());
}

// DeleteMessage takes the recipients (and done marks) with the body: nobody has the entry any
// more, whether queued, in flight or done; the other message keeps its own. (That the done marks
// are gone from disk is checked on the RocksDB keys in rocks_storage_test.cc.)
TEST_P(StorageContractTest, DeleteMessageRemovesTheBodyWithItsRecipientsAndDoneMarks) {
  Batch b;
  for (const char* cid : {"a", "b", "c"}) b.PutSession(MakeSession(cid));
  b.PutMessage(5, MakeMessage("t/5", "x"), RecipientsOf({"a", "b", "c"}));
  b.PutMessage(6, MakeMessage("t/6", "y"), RecipientsOf({"a", "b"}));
  b.PutInflight("c", 5, MakeEntry(5, 1, records::QueueEntry::SENT, 8));
  b.DeleteEntry("a", "t/5", 5);
  b.DeleteEntry("a", "t/6", 6);
  Commit(std::move(b));
  Batch del;
  del.DeleteMessage("t/5", 5);  // e.g. expired
  Commit(std::move(del));
  for (int i = 0; i < 2; ++i) {
    const Snapshot s = Load();
    EXPECT_THAT(FindSession(s, "a")->entries, IsEmpty());
    EXPECT_THAT(EntryIds(*FindSession(s, "b")), ElementsAre(6));
    EXPECT_THAT(FindSession(s, "c")->entries, IsEmpty());  // its in-flight record has no body
    EXPECT_THAT(s.messages, ElementsAre(Pair(6u, _)));
  }
}

TEST_P(StorageContractTest, RetainedPutReplaceDelete) {
  Batch b;
  b.PutRetained(MakeMessage("a/b", "one"));
  b.PutRetained(MakeMessage("a/c", "two"));
  b.PutRetained(MakeMessage("$SYS/x", "sys"));
  Commit(std::move(b));
  Batch change;
  change.PutRetained(MakeMessage("a/b", "one again"));
  change.DeleteRetained("a/c");
  change.DeleteRetained("never/retained");
  Commit(std::move(change));
  const Snapshot s = Load();
  EXPECT_THAT(s.retained, UnorderedElementsAre(EqualsProto(MakeMessage("a/b", "one again")),
                                               EqualsProto(MakeMessage("$SYS/x", "sys"))));
  EXPECT_THAT(s.sessions, IsEmpty());  // retained messages belong to no session
}

// Client ids that share prefixes (with one partition they also share a key range).
const std::vector<std::string>& PrefixClients() {
  static const std::vector<std::string> clients = {
      "a", "ab", std::string("a\x01", 2), "a/", "a/b", "", "b", "aa"};
  return clients;
}

TEST_P(StorageContractTest, DeleteSessionRemovesEverythingOfThatClientOnly) {
  uint64_t id = 100;
  for (const std::string& cid : PrefixClients()) {
    Commit(FullClient(cid, id));
    id += 10;
  }
  const std::string before = Describe(Load());

  Batch del;
  del.DeleteSession("a");
  Commit(std::move(del));
  Snapshot s = Load();
  EXPECT_EQ(FindSession(s, "a"), nullptr);
  EXPECT_EQ(s.sessions.size(), PrefixClients().size() - 1);
  uint64_t expected_id = 110;
  for (const std::string& cid : PrefixClients()) {
    if (cid == "a") continue;
    const StoredSession* other = FindSession(s, cid);
    ASSERT_NE(other, nullptr) << "client '" << cid << "'";
    EXPECT_THAT(Filters(*other), ElementsAre("$share/g/" + cid, cid + "/+/x")) << cid;
    EXPECT_TRUE(other->will.has_value()) << cid;
    EXPECT_THAT(EntryIds(*other), ElementsAre(expected_id, expected_id + 1)) << cid;
    EXPECT_THAT(other->incoming_qos2, ElementsAre(11)) << cid;
    expected_id += 10;
  }
  // The bodies of "a" are left to DeleteMessage; unreferenced now (its recipient "a" has no
  // session: an orphan, marked done), Load dropped them.
  EXPECT_FALSE(s.messages.contains(100));
  EXPECT_FALSE(s.messages.contains(101));

  // A new session under the same id starts empty (Load marked message 100 done for "a").
  Batch again;
  again.PutSession(MakeSession("a"));
  Commit(std::move(again));
  s = Load();
  const StoredSession* a = FindSession(s, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_THAT(a->subscriptions, IsEmpty());
  EXPECT_FALSE(a->will.has_value());
  EXPECT_THAT(a->entries, IsEmpty());
  EXPECT_THAT(a->incoming_qos2, IsEmpty());
  EXPECT_NE(Describe(s), before);
}

TEST_P(StorageContractTest, DeleteSessionOfEveryPrefixClient) {
  uint64_t id = 100;
  for (const std::string& cid : PrefixClients()) {
    Commit(FullClient(cid, id));
    id += 10;
  }
  for (const std::string& cid : PrefixClients()) {
    Batch del;
    del.DeleteSession(cid);
    Commit(std::move(del));
    const Snapshot s = Load();
    EXPECT_EQ(FindSession(s, cid), nullptr);
  }
  const Snapshot s = Load();
  EXPECT_THAT(s.sessions, IsEmpty());
  EXPECT_THAT(s.messages, IsEmpty());
}

TEST_P(StorageContractTest, CleanStartInOneBatchDeletesThenRecreates) {
  Commit(FullClient("c", 1));
  Batch clean;
  // The caller finishes every pending delivery of the session it drops (DeleteSession leaves
  // recipient lists alone; see DeleteSessionLeavesPendingDeliveriesToTheCaller).
  clean.DeleteEntry("c", "t/c", 1);
  clean.DeleteEntry("c", "t/c", 2);
  clean.DeleteSession("c");
  clean.PutSession(MakeSession("c", 5));
  clean.PutSubscription("c", MakeSub("new/filter"));
  clean.PutMessage(3, MakeMessage("t", "x"), RecipientsOf({"c"}));
  Commit(std::move(clean));
  const Snapshot s = Load();
  const StoredSession* c = FindSession(s, "c");
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->session, EqualsProto(MakeSession("c", 5)));
  EXPECT_THAT(Filters(*c), ElementsAre("new/filter"));
  EXPECT_FALSE(c->will.has_value());
  EXPECT_THAT(EntryIds(*c), ElementsAre(3));
  EXPECT_THAT(c->incoming_qos2, IsEmpty());
  EXPECT_THAT(s.messages, ElementsAre(Pair(3u, _)));  // 1 and 2 are finished: collected
}

// Documented behaviour (batch.h): DeleteSession deletes the client's own records but not the
// recipient lists of messages queued for it, nor done marks. Finishing those deliveries
// (DeleteEntry for every pending one) is the caller's job; a caller that skips it and recreates
// the session before any Load finds the message queued again.
TEST_P(StorageContractTest, DeleteSessionLeavesPendingDeliveriesToTheCaller) {
  Batch b;
  b.PutSession(MakeSession("a"));
  b.PutMessage(1, MakeMessage("t", "x"), RecipientsOf({"a"}, 2, true));
  Commit(std::move(b));
  Batch del;
  del.DeleteSession("a");
  Commit(std::move(del));
  Batch again;
  again.PutSession(MakeSession("a"));
  Commit(std::move(again));
  const Snapshot s = Load();
  ASSERT_NE(FindSession(s, "a"), nullptr);
  EXPECT_THAT(FindSession(s, "a")->entries,
              ElementsAre(Pair(1u, EqualsProto(MakeQueued(1, 2, true)))));
  EXPECT_TRUE(s.messages.contains(1));
}

TEST_P(StorageContractTest, LoadDropsOrphansForGood) {
  // Everything for "ghost" but its session record.
  Batch b;
  b.PutSubscription("ghost", MakeSub("x"));
  b.PutWill("ghost", MakeWill("ghost"));
  b.PutMessage(7, MakeMessage("t", "x"), RecipientsOf({"ghost"}));
  b.PutMessage(8, MakeMessage("t", "y"), RecipientsOf({"alive", "ghost"}));
  b.PutInflight("ghost", 8, MakeEntry(8, 1, records::QueueEntry::SENT, 1));
  b.PutIncomingQos2("ghost", 3);
  b.PutSession(MakeSession("alive"));
  Commit(std::move(b));

  Snapshot s = Load();
  EXPECT_THAT(ClientIds(s), ElementsAre("alive"));
  EXPECT_THAT(EntryIds(*FindSession(s, "alive")), ElementsAre(8));
  EXPECT_THAT(s.messages, ElementsAre(Pair(8u, EqualsProto(MakeMessage("t", "y")))));

  // They were deleted (the orphan deliveries marked done), not just skipped: a session created
  // now does not inherit them, though message 8 is still stored for "alive".
  Batch later;
  later.PutSession(MakeSession("ghost"));
  later.PutMessage(9, MakeMessage("t", "z"), RecipientsOf({"ghost"}));
  Commit(std::move(later));
  s = Load();
  const StoredSession* ghost = FindSession(s, "ghost");
  ASSERT_NE(ghost, nullptr);
  EXPECT_THAT(ghost->subscriptions, IsEmpty());
  EXPECT_FALSE(ghost->will.has_value());
  EXPECT_THAT(ghost->entries, ElementsAre(Pair(9u, EqualsProto(MakeQueued(9)))));
  EXPECT_THAT(ghost->incoming_qos2, IsEmpty());
  EXPECT_THAT(EntryIds(*FindSession(s, "alive")), ElementsAre(8));
}

TEST_P(StorageContractTest, LoadDropsUnreferencedBodiesForGood) {
  Batch b;
  b.PutMessage(7, MakeMessage("t", "nobody queued me"));
  Commit(std::move(b));
  Snapshot s = Load();
  EXPECT_THAT(s.messages, IsEmpty());
  EXPECT_EQ(s.max_message_id, 7u);

  // The body is gone: an entry referring to it now has nothing to deliver and is dropped too.
  Batch later;
  later.PutSession(MakeSession("c"));
  later.PutInflight("c", 7, MakeEntry(7, 1, records::QueueEntry::SENT, 1));
  Commit(std::move(later));
  s = Load();
  EXPECT_THAT(FindSession(s, "c")->entries, IsEmpty());
  EXPECT_THAT(s.messages, IsEmpty());
}

TEST_P(StorageContractTest, LoadDropsEntriesAndDoneMarksWithoutBody) {
  Batch b;
  b.PutSession(MakeSession("c"));
  b.PutMessage(2, MakeMessage("t", "x"), RecipientsOf({"c"}));
  b.PutInflight("c", 1, MakeEntry(1, 1, records::QueueEntry::SENT, 4));
  b.PutInflight("c", 3, MakeEntry(3, 1, records::QueueEntry::SENT, 5));
  b.DeleteEntry("c", "t", 4);  // a done mark of a message that is not stored
  Commit(std::move(b));
  for (int i = 0; i < 2; ++i) {
    const Snapshot s = Load();
    EXPECT_THAT(EntryIds(*FindSession(s, "c")), ElementsAre(2));
    // The first Load still sees the keys of 3 (inflight) and 4 (done), then deletes them.
    EXPECT_EQ(s.max_message_id, i == 0 ? 4u : 2u);
  }
}

TEST_P(StorageContractTest, MaxMessageIdCoversBodiesAndEntries) {
  Batch bodies;
  bodies.PutSession(MakeSession("c"));
  bodies.PutMessage(40, MakeMessage("t", "x"), RecipientsOf({"c"}));
  bodies.PutMessage(50, MakeMessage("t", "unreferenced"));
  Commit(std::move(bodies));
  EXPECT_EQ(Load().max_message_id, 50u);  // from a body key (then collected)
  EXPECT_EQ(Load().max_message_id, 40u);

  Batch entry_only;
  entry_only.PutInflight("c", 90, MakeEntry(90, 1, records::QueueEntry::SENT, 1));  // no body
  Commit(std::move(entry_only));
  EXPECT_EQ(Load().max_message_id, 90u);  // from an inflight key (then deleted)
  EXPECT_EQ(Load().max_message_id, 40u);

  Batch orphan;
  orphan.PutInflight("ghost", 120, MakeEntry(120, 1, records::QueueEntry::SENT, 1));
  Commit(std::move(orphan));
  EXPECT_EQ(Load().max_message_id, 120u);  // orphans count too
  EXPECT_EQ(Load().max_message_id, 40u);
}

// (The RocksDB suite also counts a recipients key alone: rocks_storage_test.cc.)
TEST_P(StorageContractTest, MaxMessageIdCountsDoneMarksAndOrphanRecipients) {
  Batch b;
  b.PutSession(MakeSession("c"));
  b.PutMessage(40, MakeMessage("t", "x"), RecipientsOf({"c"}));
  Commit(std::move(b));
  EXPECT_EQ(Load().max_message_id, 40u);

  Batch done_only;
  done_only.DeleteEntry("c", "t", 200);  // a done mark and nothing else under id 200
  Commit(std::move(done_only));
  EXPECT_EQ(Load().max_message_id, 200u);
  EXPECT_EQ(Load().max_message_id, 40u);  // the mark was deleted (no body)

  Batch orphan;
  orphan.PutMessage(300, MakeMessage("t", "y"), RecipientsOf({"ghost"}));
  Commit(std::move(orphan));
  Snapshot s = Load();
  EXPECT_EQ(s.max_message_id, 300u);
  EXPECT_FALSE(s.messages.contains(300));  // its only recipient is an orphan: collected
  EXPECT_EQ(Load().max_message_id, 40u);
}

TEST_P(StorageContractTest, LoadIsRepeatable) {
  Commit(FullClient("x", 1));
  Commit(FullClient("y", 3));
  Batch r;
  r.PutRetained(MakeMessage("r", "v"));
  Commit(std::move(r));
  const std::string first = Describe(Load());
  EXPECT_EQ(Describe(Load()), first);
}

TEST_P(StorageContractTest, ManySessionsKeepTheirOwnRecords) {
  constexpr int kClients = 300;
  Batch b;
  for (int i = 0; i < kClients; ++i) {
    const std::string cid = "client-" + std::to_string(i);
    b.PutSession(MakeSession(cid, i));
    b.PutSubscription(cid, MakeSub("f/" + std::to_string(i)));
    b.PutMessage(i + 1, MakeMessage("t/" + std::to_string(i % 17), "p"), RecipientsOf({cid}));
    b.PutIncomingQos2(cid, static_cast<uint16_t>(i));
  }
  Commit(std::move(b));
  const Snapshot s = Load();
  ASSERT_EQ(s.sessions.size(), static_cast<size_t>(kClients));
  for (const StoredSession& stored : s.sessions) {
    const int i = std::stoi(stored.session.client_id().substr(7));
    EXPECT_EQ(stored.session.disconnected_at_ms(), static_cast<uint64_t>(i));
    EXPECT_THAT(Filters(stored), ElementsAre("f/" + std::to_string(i)));
    EXPECT_THAT(EntryIds(stored), ElementsAre(i + 1));
    EXPECT_THAT(stored.incoming_qos2, ElementsAre(i));
  }
  EXPECT_EQ(s.messages.size(), static_cast<size_t>(kClients));
  EXPECT_EQ(s.max_message_id, static_cast<uint64_t>(kClients));
}

TEST_P(StorageContractTest, LargePayloadRoundTrips) {
  std::string payload(3 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 31);
  Batch b;
  b.PutSession(MakeSession("c"));
  b.PutMessage(1, MakeMessage("big", payload), RecipientsOf({"c"}));
  b.PutRetained(MakeMessage("big", payload));
  Commit(std::move(b));
  const Snapshot s = Load();
  EXPECT_EQ(s.messages.at(1).payload(), payload);
  ASSERT_EQ(s.retained.size(), 1u);
  EXPECT_EQ(s.retained[0].payload(), payload);
}

TEST_P(StorageContractTest, BatchesApplyInCommitOrderAndDoneRunsOncePerBatchInOrder) {
  constexpr int kBatches = 200;
  std::mutex mu;
  std::vector<int> done_order;
  std::atomic<int> calls{0};
  for (int i = 1; i <= kBatches; ++i) {
    Batch b;
    b.PutSession(MakeSession("same", i));  // the last write must win
    if (i % 2 == 0) {
      b.PutRetained(MakeMessage("r", "v" + std::to_string(i)));
    } else {
      b.DeleteRetained("r");
    }
    storage_->Commit(std::move(b), [&, i](absl::Status s) {
      EXPECT_OK(s);
      std::lock_guard lock(mu);
      done_order.push_back(i);
      calls.fetch_add(1);
    });
  }
  ASSERT_TRUE(
      shardmq::test::WaitFor([&] { return calls.load() >= kBatches; }, std::chrono::seconds(30)));
  ASSERT_OK(storage_->CommitSync(Batch{}));  // every earlier done has run
  EXPECT_EQ(calls.load(), kBatches);         // and none twice
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(done_order.size(), static_cast<size_t>(kBatches));
    for (int i = 0; i < kBatches; ++i) EXPECT_EQ(done_order[i], i + 1);
  }
  const Snapshot s = Load();
  EXPECT_THAT(FindSession(s, "same")->session, EqualsProto(MakeSession("same", kBatches)));
  EXPECT_THAT(s.retained, ElementsAre(EqualsProto(MakeMessage("r", "v200"))));
}

TEST_P(StorageContractTest, ConcurrentCommittersEachSeeTheirDoneOnce) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::atomic<int> calls{0};
  std::vector<std::vector<int>> seen(kThreads);  // per thread, its own dones in order
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string cid = "t" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        Batch b;
        b.PutSession(MakeSession(cid, i));
        b.PutIncomingQos2(cid, static_cast<uint16_t>(i));
        // Only this thread's batches append to seen[t], and they are done in Commit order.
        storage_->Commit(std::move(b), [&, t, i](absl::Status s) {
          EXPECT_OK(s);
          seen[t].push_back(i);
          calls.fetch_add(1);
        });
      }
    });
  }
  for (std::thread& th : threads) th.join();
  ASSERT_TRUE(shardmq::test::WaitFor([&] { return calls.load() >= kThreads * kPerThread; },
                                     std::chrono::seconds(30)));
  ASSERT_OK(storage_->CommitSync(Batch{}));
  EXPECT_EQ(calls.load(), kThreads * kPerThread);
  const Snapshot s = Load();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) EXPECT_EQ(seen[t][i], i);
    const StoredSession* stored = FindSession(s, "t" + std::to_string(t));
    ASSERT_NE(stored, nullptr);
    EXPECT_EQ(stored->session.disconnected_at_ms(), static_cast<uint64_t>(kPerThread - 1));
    EXPECT_EQ(stored->incoming_qos2.size(), static_cast<size_t>(kPerThread));
  }
}

// Batches that no implementation can store (batch.h ValidateBatch). Each also holds good ops.
std::vector<Batch> InvalidBatches() {
  const std::string nul("a\0b", 3);
  std::vector<Batch> bad(14);
  bad[0].PutSession(MakeSession(nul));
  bad[1].PutSubscription("c", MakeSub(nul));
  bad[2].PutMessage(1, MakeMessage("t", "x"), RecipientsOf({nul}));
  bad[3].PutMessage(1, MakeMessage(nul, "x"));
  bad[4].PutRetained(MakeMessage(nul, "x"));
  bad[5].DeleteSession(nul);
  bad[6].PutInflight(nul, 1, MakeEntry(1, 1, records::QueueEntry::SENT, 1));
  // A recipient with an empty client id (its done mark would have none), alone or among valid
  // recipients.
  bad[7].PutMessage(1, MakeMessage("t", "x"), RecipientsOf({""}));
  bad[8].PutMessage(1, MakeMessage("t", "x"), RecipientsOf({"ok", "", "fine"}));
  bad[9].PutMessage(1, MakeMessage("t", "x"), RecipientsOf({"ok", nul}));
  // DeleteEntry: a client id that is empty or holds U+0000, a topic that holds U+0000.
  bad[10].DeleteEntry("", "t", 1);
  bad[11].DeleteEntry(nul, "t", 1);
  bad[12].DeleteEntry("c", nul, 1);
  // An in-flight entry whose message id differs from its key.
  bad[13].PutInflight("c", 5, MakeEntry(6, 1, records::QueueEntry::SENT, 1));
  for (Batch& b : bad) {
    b.PutSession(MakeSession("innocent"));  // the good op in a bad batch is not applied either
    b.PutMessage(99, MakeMessage("t", "innocent"), RecipientsOf({"innocent"}));
  }
  return bad;
}

TEST(ValidateBatchTest, RefusesWhatNoStorageCanStore) {
  std::vector<Batch> bad = InvalidBatches();
  for (size_t i = 0; i < bad.size(); ++i) {
    const absl::Status st = ValidateBatch(bad[i]);
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << "batch " << i << ": " << st;
  }
}

TEST(ValidateBatchTest, AcceptsTheEdgeCasesThatAreFine) {
  Batch b;
  b.PutSession(MakeSession(""));  // an empty client id may have a session and in-flight records
  b.PutInflight("", 1, MakeEntry(1, 1, records::QueueEntry::SENT, 1));
  b.PutInflight("c", 2, MakeEntry(0, 1, records::QueueEntry::SENT, 1));  // message_id from the key
  b.PutMessage(3, MakeMessage("", "empty topic"), RecipientsOf({"a", "a\x01", "a/b"}));
  b.PutMessage(4, MakeMessage("t", "no recipients"));
  b.DeleteEntry("c", "", 3);  // the empty topic is a topic
  b.DeleteMessage("", 3);
  EXPECT_OK(ValidateBatch(b));
  EXPECT_OK(ValidateBatch(Batch{}));
}

TEST_P(StorageContractTest, BatchWithNulIsRefusedWhole) {
  std::vector<Batch> bad = InvalidBatches();
  for (size_t i = 0; i < bad.size(); ++i) {
    const absl::Status st = storage_->CommitSync(std::move(bad[i]));
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << "batch " << i << ": " << st;
  }
  // Through Commit as well.
  std::vector<Batch> again = InvalidBatches();
  for (size_t i = 0; i < again.size(); ++i) {
    absl::Status st = absl::OkStatus();
    std::atomic<bool> called{false};
    storage_->Commit(std::move(again[i]), [&](absl::Status s) {
      st = s;
      called = true;
    });
    ASSERT_OK(storage_->CommitSync(Batch{}));  // the done above has run
    EXPECT_TRUE(called.load()) << "batch " << i;
    EXPECT_TRUE(absl::IsInvalidArgument(st)) << "batch " << i << ": " << st;
  }

  Batch good;
  good.PutSession(MakeSession("fine"));
  Commit(std::move(good));
  const Snapshot s = Load();
  EXPECT_THAT(ClientIds(s), ElementsAre("fine"));
  EXPECT_THAT(s.messages, IsEmpty());
  EXPECT_EQ(s.max_message_id, 0u);  // not even a key of a refused batch was written
}

TEST_P(StorageContractTest, RefusedBatchDoesNotAffectItsNeighbours) {
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  for (int i = 0; i < 10; ++i) {
    Batch b;
    b.PutSession(MakeSession(i == 5 ? std::string("x\0y", 3) : "c" + std::to_string(i)));
    storage_->Commit(std::move(b), [&](absl::Status s) { (s.ok() ? ok : refused).fetch_add(1); });
  }
  ASSERT_OK(storage_->CommitSync(Batch{}));
  EXPECT_EQ(ok.load(), 9);
  EXPECT_EQ(refused.load(), 1);
  EXPECT_EQ(Load().sessions.size(), 9u);
}

TEST_P(StorageContractTest, CloseWaitsForCommittedBatchesAndLaterCommitsFail) {
  std::atomic<int> ok{0};
  for (int i = 0; i < 50; ++i) {
    Batch b;
    b.PutSession(MakeSession("c" + std::to_string(i)));
    storage_->Commit(std::move(b), [&](absl::Status s) {
      if (s.ok()) ok.fetch_add(1);
    });
  }
  storage_->Close();
  EXPECT_EQ(ok.load(), 50);  // every done ran before Close returned

  absl::Status late = absl::OkStatus();
  bool called = false;
  Batch b;
  b.PutSession(MakeSession("late"));
  storage_->Commit(std::move(b), [&](absl::Status s) {
    late = s;
    called = true;
  });
  EXPECT_TRUE(called);
  EXPECT_TRUE(absl::IsFailedPrecondition(late)) << late;
  EXPECT_TRUE(absl::IsFailedPrecondition(storage_->CommitSync(Batch{})));
  EXPECT_TRUE(absl::IsFailedPrecondition(storage_->Load().status()));
  storage_->Close();  // twice is fine
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(
    Impls, StorageContractTest,
    ::testing::Values(Param{"Memory", Impl::kMemory, 256, Durability::kWal},
                      Param{"RocksP256Wal", Impl::kRocks, 256, Durability::kWal},
                      Param{"RocksP1Fsync", Impl::kRocks, 1, Durability::kFsync}),
    ParamName);

}  // namespace
}  // namespace shardmq::storage
