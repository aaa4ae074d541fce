// Tests of the in-memory Storage (storage/memory/memory_storage.cc) against the contracts in
// storage/session_store.h, storage/message_queue.h and storage/retained_store.h.
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <google/protobuf/util/message_differencer.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/storage.h"
#include "tests/support/test_util.h"

namespace shardmq::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

MATCHER_P(EqualsProto, expected, "equals " + expected.ShortDebugString()) {
  return google::protobuf::util::MessageDifferencer::Equals(arg, expected);
}

// Topics of `messages`, in the order given.
std::vector<std::string> Topics(const std::vector<records::Message>& messages) {
  std::vector<std::string> out;
  out.reserve(messages.size());
  for (const records::Message& m : messages) out.push_back(m.topic());
  return out;
}

records::Session MakeSession(const std::string& client_id) {
  records::Session s;
  s.set_client_id(client_id);
  s.set_protocol_version(5);
  s.set_expiry_interval_s(3600);
  records::Subscription* sub = s.add_subscriptions();
  sub->set_filter("a/+/c");
  sub->set_qos(1);
  sub->set_subscription_id(7);
  records::Subscription* shared = s.add_subscriptions();
  shared->set_filter("$share/g/x/#");
  shared->set_qos(2);
  shared->set_no_local(false);
  shared->set_retain_as_published(true);
  records::Will* will = s.mutable_will();
  will->mutable_message()->set_topic("wills/" + client_id);
  will->mutable_message()->set_payload("gone");
  will->set_delay_interval_s(5);
  return s;
}

records::QueueEntry MakeEntry(const std::string& topic, uint32_t qos) {
  records::QueueEntry e;
  e.mutable_message()->set_topic(topic);
  e.mutable_message()->set_payload("p-" + topic);
  e.mutable_message()->set_qos(qos);
  e.set_qos(qos);
  return e;
}

records::Message MakeRetained(const std::string& topic, const std::string& payload,
                              uint64_t expiry_at_ms = 0) {
  records::Message m;
  m.set_topic(topic);
  m.set_payload(payload);
  m.set_qos(1);
  m.set_retain(true);
  m.set_expiry_at_ms(expiry_at_ms);
  return m;
}

class MemoryStorageTest : public ::testing::Test {
 protected:
  explicit MemoryStorageTest(StorageLimits limits = {})
      : storage_(CreateInMemoryStorage(limits)) {}

  SessionStore& sessions() { return storage_->sessions(); }
  MessageQueue& queues() { return storage_->queues(); }
  RetainedStore& retained() { return storage_->retained(); }

  // Match() that must succeed; returns the matched topics.
  std::vector<std::string> MatchTopics(std::string_view filter, int64_t now_ms = 0) {
    auto matched = retained().Match(filter, now_ms);
    EXPECT_OK(matched);
    return matched.ok() ? Topics(*matched) : std::vector<std::string>{};
  }

  std::unique_ptr<Storage> storage_;
};

// ---------------------------------------------------------------------------------------------
// SessionStore

TEST_F(MemoryStorageTest, SessionLoadMissingIsNotFound) {
  auto loaded = sessions().Load("nobody");
  EXPECT_TRUE(absl::IsNotFound(loaded.status())) << loaded.status();
}

TEST_F(MemoryStorageTest, SessionSaveThenLoadRoundTrips) {
  const records::Session s = MakeSession("c1");
  ASSERT_OK(sessions().Save(s));
  auto loaded = sessions().Load("c1");
  ASSERT_OK(loaded);
  EXPECT_THAT(*loaded, EqualsProto(s));
}

TEST_F(MemoryStorageTest, SessionSaveReplacesWholeRecord) {
  ASSERT_OK(sessions().Save(MakeSession("c1")));
  records::Session replacement;
  replacement.set_client_id("c1");
  replacement.set_protocol_version(4);
  replacement.set_disconnected_at_ms(1234);
  ASSERT_OK(sessions().Save(replacement));

  auto loaded = sessions().Load("c1");
  ASSERT_OK(loaded);
  EXPECT_THAT(*loaded, EqualsProto(replacement));  // no subscriptions or will left over
  auto all = sessions().LoadAll();
  ASSERT_OK(all);
  EXPECT_EQ(all->size(), 1u);
}

TEST_F(MemoryStorageTest, SessionDelete) {
  ASSERT_OK(sessions().Save(MakeSession("c1")));
  ASSERT_OK(sessions().Save(MakeSession("c2")));
  ASSERT_OK(sessions().Delete("c1"));
  EXPECT_TRUE(absl::IsNotFound(sessions().Load("c1").status()));
  EXPECT_OK(sessions().Load("c2"));
  // Deleting a missing session (again, or never stored) is OK.
  EXPECT_OK(sessions().Delete("c1"));
  EXPECT_OK(sessions().Delete("never-stored"));
}

// storage/session_store.h: Delete "deletes the session and everything stored for it (queue,
// in-flight state)".
TEST_F(MemoryStorageTest, SessionDeleteAlsoDropsQueueAndIncomingQos2) {
  ASSERT_OK(sessions().Save(MakeSession("c1")));
  ASSERT_OK(queues().Put("c1", 1, MakeEntry("t", 1)));
  ASSERT_OK(queues().SetIncomingQos2("c1", 9, true));
  ASSERT_OK(sessions().Delete("c1"));

  auto entries = queues().Load("c1");
  ASSERT_OK(entries);
  EXPECT_THAT(*entries, IsEmpty());
  auto ids = queues().LoadIncomingQos2("c1");
  ASSERT_OK(ids);
  EXPECT_THAT(*ids, IsEmpty());
}

TEST_F(MemoryStorageTest, SessionLoadAllReturnsEverySession) {
  auto empty = sessions().LoadAll();
  ASSERT_OK(empty);
  EXPECT_THAT(*empty, IsEmpty());

  const records::Session a = MakeSession("a");
  const records::Session b = MakeSession("b");
  const records::Session c = MakeSession("c");
  ASSERT_OK(sessions().Save(a));
  ASSERT_OK(sessions().Save(b));
  ASSERT_OK(sessions().Save(c));
  ASSERT_OK(sessions().Delete("b"));

  auto all = sessions().LoadAll();
  ASSERT_OK(all);
  EXPECT_THAT(*all, UnorderedElementsAre(EqualsProto(a), EqualsProto(c)));
}

// ---------------------------------------------------------------------------------------------
// MessageQueue

TEST_F(MemoryStorageTest, QueueLoadUnknownSessionIsEmpty) {
  auto entries = queues().Load("nobody");
  ASSERT_OK(entries);
  EXPECT_THAT(*entries, IsEmpty());
  auto ids = queues().LoadIncomingQos2("nobody");
  ASSERT_OK(ids);
  EXPECT_THAT(*ids, IsEmpty());
}

TEST_F(MemoryStorageTest, QueueLoadIsOrderedBySeqNotInsertion) {
  const uint64_t big = std::numeric_limits<uint64_t>::max();
  const uint64_t high_bit = uint64_t{1} << 63;  // would sort first if compared as signed
  ASSERT_OK(queues().Put("c", 5, MakeEntry("five", 1)));
  ASSERT_OK(queues().Put("c", big, MakeEntry("big", 1)));
  ASSERT_OK(queues().Put("c", 1, MakeEntry("one", 2)));
  ASSERT_OK(queues().Put("c", high_bit, MakeEntry("high", 0)));
  ASSERT_OK(queues().Put("c", 3, MakeEntry("three", 1)));

  auto entries = queues().Load("c");
  ASSERT_OK(entries);
  EXPECT_THAT(*entries, ElementsAre(Pair(1u, EqualsProto(MakeEntry("one", 2))),
                                    Pair(3u, EqualsProto(MakeEntry("three", 1))),
                                    Pair(5u, EqualsProto(MakeEntry("five", 1))),
                                    Pair(high_bit, EqualsProto(MakeEntry("high", 0))),
                                    Pair(big, EqualsProto(MakeEntry("big", 1)))));
}

TEST_F(MemoryStorageTest, QueuePutSameSeqReplacesEntry) {
  ASSERT_OK(queues().Put("c", 1, MakeEntry("t", 1)));
  records::QueueEntry sent = MakeEntry("t", 1);
  sent.set_packet_id(42);
  sent.set_state(records::QueueEntry::SENT);
  ASSERT_OK(queues().Put("c", 1, sent));

  auto entries = queues().Load("c");
  ASSERT_OK(entries);
  EXPECT_THAT(*entries, ElementsAre(Pair(1u, EqualsProto(sent))));
}

TEST_F(MemoryStorageTest, QueueRemove) {
  ASSERT_OK(queues().Put("c", 1, MakeEntry("one", 1)));
  ASSERT_OK(queues().Put("c", 2, MakeEntry("two", 1)));
  ASSERT_OK(queues().Put("c", 3, MakeEntry("three", 1)));
  ASSERT_OK(queues().Remove("c", 2));
  // Removing a missing entry, or from an unknown session, is OK.
  EXPECT_OK(queues().Remove("c", 2));
  EXPECT_OK(queues().Remove("c", 99));
  EXPECT_OK(queues().Remove("nobody", 1));

  auto entries = queues().Load("c");
  ASSERT_OK(entries);
  EXPECT_THAT(*entries, ElementsAre(Pair(1u, EqualsProto(MakeEntry("one", 1))),
                                    Pair(3u, EqualsProto(MakeEntry("three", 1)))));
}

TEST_F(MemoryStorageTest, QueuesAreSeparatePerSession) {
  ASSERT_OK(queues().Put("a", 1, MakeEntry("for-a", 1)));
  ASSERT_OK(queues().Put("b", 1, MakeEntry("for-b", 1)));
  ASSERT_OK(queues().Remove("a", 1));

  auto a = queues().Load("a");
  ASSERT_OK(a);
  EXPECT_THAT(*a, IsEmpty());
  auto b = queues().Load("b");
  ASSERT_OK(b);
  EXPECT_THAT(*b, ElementsAre(Pair(1u, EqualsProto(MakeEntry("for-b", 1)))));
}

TEST_F(MemoryStorageTest, IncomingQos2SetAndForget) {
  ASSERT_OK(queues().SetIncomingQos2("c", 10, true));
  ASSERT_OK(queues().SetIncomingQos2("c", 65535, true));
  ASSERT_OK(queues().SetIncomingQos2("c", 1, true));
  ASSERT_OK(queues().SetIncomingQos2("c", 10, true));  // already present: still one
  ASSERT_OK(queues().SetIncomingQos2("other", 10, true));

  auto ids = queues().LoadIncomingQos2("c");
  ASSERT_OK(ids);
  EXPECT_THAT(*ids, UnorderedElementsAre(1, 10, 65535));

  ASSERT_OK(queues().SetIncomingQos2("c", 10, false));
  EXPECT_OK(queues().SetIncomingQos2("c", 10, false));      // already gone
  EXPECT_OK(queues().SetIncomingQos2("c", 777, false));     // never present
  EXPECT_OK(queues().SetIncomingQos2("nobody", 1, false));  // unknown session
  ids = queues().LoadIncomingQos2("c");
  ASSERT_OK(ids);
  EXPECT_THAT(*ids, UnorderedElementsAre(1, 65535));
  auto other = queues().LoadIncomingQos2("other");
  ASSERT_OK(other);
  EXPECT_THAT(*other, ElementsAre(10));
}

TEST_F(MemoryStorageTest, IncomingQos2DoesNotAffectQueueEntries) {
  ASSERT_OK(queues().Put("c", 1, MakeEntry("t", 2)));
  ASSERT_OK(queues().SetIncomingQos2("c", 1, true));
  ASSERT_OK(queues().SetIncomingQos2("c", 1, false));
  auto entries = queues().Load("c");
  ASSERT_OK(entries);
  EXPECT_THAT(*entries, ElementsAre(Pair(1u, EqualsProto(MakeEntry("t", 2)))));
}

TEST_F(MemoryStorageTest, ClearDropsQueueAndIncomingQos2OfThatSessionOnly) {
  ASSERT_OK(queues().Put("c", 1, MakeEntry("one", 1)));
  ASSERT_OK(queues().Put("c", 2, MakeEntry("two", 1)));
  ASSERT_OK(queues().SetIncomingQos2("c", 5, true));
  ASSERT_OK(queues().Put("keep", 1, MakeEntry("kept", 1)));
  ASSERT_OK(queues().SetIncomingQos2("keep", 6, true));

  ASSERT_OK(queues().Clear("c"));
  EXPECT_OK(queues().Clear("c"));       // twice
  EXPECT_OK(queues().Clear("nobody"));  // unknown session

  auto entries = queues().Load("c");
  ASSERT_OK(entries);
  EXPECT_THAT(*entries, IsEmpty());
  auto ids = queues().LoadIncomingQos2("c");
  ASSERT_OK(ids);
  EXPECT_THAT(*ids, IsEmpty());

  auto kept = queues().Load("keep");
  ASSERT_OK(kept);
  EXPECT_THAT(*kept, ElementsAre(Pair(1u, EqualsProto(MakeEntry("kept", 1)))));
  auto kept_ids = queues().LoadIncomingQos2("keep");
  ASSERT_OK(kept_ids);
  EXPECT_THAT(*kept_ids, ElementsAre(6));

  // The session's queue is usable again after Clear.
  ASSERT_OK(queues().Put("c", 7, MakeEntry("again", 0)));
  entries = queues().Load("c");
  ASSERT_OK(entries);
  EXPECT_THAT(*entries, ElementsAre(Pair(7u, EqualsProto(MakeEntry("again", 0)))));
}

// ---------------------------------------------------------------------------------------------
// RetainedStore

TEST_F(MemoryStorageTest, RetainedSetAndMatchExactTopic) {
  const records::Message m = MakeRetained("a/b", "hello");
  ASSERT_OK(retained().Set(m));
  EXPECT_EQ(retained().Count(), 1u);
  auto matched = retained().Match("a/b", 0);
  ASSERT_OK(matched);
  EXPECT_THAT(*matched, ElementsAre(EqualsProto(m)));
  EXPECT_THAT(MatchTopics("a/c"), IsEmpty());
  EXPECT_THAT(MatchTopics("a"), IsEmpty());
  EXPECT_THAT(MatchTopics("a/b/c"), IsEmpty());
}

TEST_F(MemoryStorageTest, RetainedSetReplacesSameTopic) {
  ASSERT_OK(retained().Set(MakeRetained("a/b", "old")));
  const records::Message newer = MakeRetained("a/b", "new");
  ASSERT_OK(retained().Set(newer));
  EXPECT_EQ(retained().Count(), 1u);
  auto matched = retained().Match("a/b", 0);
  ASSERT_OK(matched);
  EXPECT_THAT(*matched, ElementsAre(EqualsProto(newer)));
}

TEST_F(MemoryStorageTest, RetainedEmptyPayloadClears) {
  ASSERT_OK(retained().Set(MakeRetained("a/b", "x")));
  ASSERT_OK(retained().Set(MakeRetained("a/c", "y")));
  ASSERT_OK(retained().Set(MakeRetained("a/b", "")));  // MQTT s3.3.1.3
  EXPECT_EQ(retained().Count(), 1u);
  EXPECT_THAT(MatchTopics("a/b"), IsEmpty());
  EXPECT_THAT(MatchTopics("a/#"), ElementsAre("a/c"));
  // Clearing a topic that holds nothing is OK and stores nothing.
  EXPECT_OK(retained().Set(MakeRetained("never/set", "")));
  EXPECT_EQ(retained().Count(), 1u);
  EXPECT_THAT(MatchTopics("never/set"), IsEmpty());
}

TEST_F(MemoryStorageTest, RetainedMatchWildcards) {
  for (const char* topic : {"a", "a/b", "a/c", "a/b/c", "b", "/a", "a/", "$SYS/x", "$SYS"}) {
    ASSERT_OK(retained().Set(MakeRetained(topic, "v")));
  }
  ASSERT_EQ(retained().Count(), 9u);

  // MQTT s4.7.2: first-level wildcards do not match topics starting with '$'.
  EXPECT_THAT(MatchTopics("#"), UnorderedElementsAre("a", "a/b", "a/c", "a/b/c", "b", "/a", "a/"));
  EXPECT_THAT(MatchTopics("+"), UnorderedElementsAre("a", "b"));
  EXPECT_THAT(MatchTopics("+/x"), IsEmpty());
  EXPECT_THAT(MatchTopics("+/+"), UnorderedElementsAre("a/b", "a/c", "/a", "a/"));
  EXPECT_THAT(MatchTopics("+/b"), ElementsAre("a/b"));
  // "a/#" includes the parent "a" (s4.7.1.2).
  EXPECT_THAT(MatchTopics("a/#"), UnorderedElementsAre("a", "a/b", "a/c", "a/b/c", "a/"));
  EXPECT_THAT(MatchTopics("a/+"), UnorderedElementsAre("a/b", "a/c", "a/"));
  EXPECT_THAT(MatchTopics("a/+/c"), ElementsAre("a/b/c"));
  EXPECT_THAT(MatchTopics("+/a"), ElementsAre("/a"));  // empty first level is a level
  EXPECT_THAT(MatchTopics("/#"), ElementsAre("/a"));
  // '$' topics are matched by filters that name the '$' level explicitly.
  EXPECT_THAT(MatchTopics("$SYS/#"), UnorderedElementsAre("$SYS", "$SYS/x"));
  EXPECT_THAT(MatchTopics("$SYS/+"), ElementsAre("$SYS/x"));
  EXPECT_THAT(MatchTopics("$SYS"), ElementsAre("$SYS"));
}

TEST_F(MemoryStorageTest, RetainedMatchSkipsAndRemovesExpired) {
  ASSERT_OK(retained().Set(MakeRetained("t/expiring", "e", /*expiry_at_ms=*/1000)));
  ASSERT_OK(retained().Set(MakeRetained("t/later", "l", /*expiry_at_ms=*/5000)));
  ASSERT_OK(retained().Set(MakeRetained("t/forever", "f", /*expiry_at_ms=*/0)));
  ASSERT_OK(retained().Set(MakeRetained("u/expiring", "u", /*expiry_at_ms=*/1000)));
  ASSERT_EQ(retained().Count(), 4u);

  // Not yet expired one millisecond before.
  EXPECT_THAT(MatchTopics("t/#", 999), UnorderedElementsAre("t/expiring", "t/later", "t/forever"));
  EXPECT_EQ(retained().Count(), 4u);

  // Expired at exactly expiry_at_ms: not returned, and removed.
  EXPECT_THAT(MatchTopics("t/#", 1000), UnorderedElementsAre("t/later", "t/forever"));
  EXPECT_EQ(retained().Count(), 3u);
  // Removed for good: an earlier clock does not bring it back.
  EXPECT_THAT(MatchTopics("t/expiring", 0), IsEmpty());

  // Only matched messages are removed: u/expiring was not looked at yet.
  EXPECT_THAT(MatchTopics("u/#", 999), ElementsAre("u/expiring"));
  EXPECT_THAT(MatchTopics("u/#", 2000), IsEmpty());
  EXPECT_EQ(retained().Count(), 2u);

  // expiry_at_ms 0 never expires.
  EXPECT_THAT(MatchTopics("t/#", std::numeric_limits<int64_t>::max()), ElementsAre("t/forever"));
  EXPECT_EQ(retained().Count(), 1u);
}

TEST_F(MemoryStorageTest, RetainedReplaceResetsExpiry) {
  ASSERT_OK(retained().Set(MakeRetained("t", "old", /*expiry_at_ms=*/1000)));
  ASSERT_OK(retained().Set(MakeRetained("t", "new", /*expiry_at_ms=*/0)));
  auto matched = retained().Match("t", 2000);
  ASSERT_OK(matched);
  ASSERT_EQ(matched->size(), 1u);
  EXPECT_EQ((*matched)[0].payload(), "new");
}

TEST_F(MemoryStorageTest, RetainedUnlimitedByDefault) {
  for (int i = 0; i < 1000; ++i) {
    ASSERT_OK(retained().Set(MakeRetained("t/" + std::to_string(i), "v")));
  }
  EXPECT_EQ(retained().Count(), 1000u);
}

class LimitedRetainedTest : public MemoryStorageTest {
 protected:
  LimitedRetainedTest() : MemoryStorageTest(StorageLimits{.max_retained_messages = 2}) {}
};

TEST_F(LimitedRetainedTest, NewTopicBeyondLimitIsResourceExhausted) {
  ASSERT_OK(retained().Set(MakeRetained("a", "1")));
  ASSERT_OK(retained().Set(MakeRetained("b", "2")));
  absl::Status st = retained().Set(MakeRetained("c", "3"));
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_EQ(retained().Count(), 2u);
  EXPECT_THAT(MatchTopics("#"), UnorderedElementsAre("a", "b"));
}

TEST_F(LimitedRetainedTest, ReplaceAndClearAllowedAtLimit) {
  ASSERT_OK(retained().Set(MakeRetained("a", "1")));
  ASSERT_OK(retained().Set(MakeRetained("b", "2")));
  // Replacing an existing topic does not grow the store.
  ASSERT_OK(retained().Set(MakeRetained("a", "1b")));
  auto matched = retained().Match("a", 0);
  ASSERT_OK(matched);
  ASSERT_EQ(matched->size(), 1u);
  EXPECT_EQ((*matched)[0].payload(), "1b");
  // Clearing at the limit works, and frees room for a new topic.
  ASSERT_OK(retained().Set(MakeRetained("c", "")));  // clear of a missing topic: not a new topic
  ASSERT_OK(retained().Set(MakeRetained("b", "")));
  EXPECT_EQ(retained().Count(), 1u);
  ASSERT_OK(retained().Set(MakeRetained("c", "3")));
  EXPECT_THAT(MatchTopics("#"), UnorderedElementsAre("a", "c"));
}

TEST_F(LimitedRetainedTest, ExpiredRemovalFreesRoom) {
  ASSERT_OK(retained().Set(MakeRetained("a", "1", /*expiry_at_ms=*/100)));
  ASSERT_OK(retained().Set(MakeRetained("b", "2")));
  EXPECT_THAT(MatchTopics("#", 100), ElementsAre("b"));
  EXPECT_OK(retained().Set(MakeRetained("c", "3")));
  EXPECT_EQ(retained().Count(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Thread safety: several threads, each owning one session, put and remove concurrently while
// another thread reads. Meant for the tsan preset; under a normal build it checks the end state.

TEST_F(MemoryStorageTest, ConcurrentPutRemoveOnDifferentSessions) {
  static constexpr int kThreads = 4;
  static constexpr uint64_t kOps = 2000;
  std::vector<std::thread> threads;
  threads.reserve(kThreads + 1);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      const std::string cid = "client-" + std::to_string(t);
      for (uint64_t seq = 1; seq <= kOps; ++seq) {
        EXPECT_OK(queues().Put(cid, seq, MakeEntry("t", 1)));
        // Keep every odd seq; remove every even one right away.
        if (seq % 2 == 0) {
          EXPECT_OK(queues().Remove(cid, seq));
        }
        EXPECT_OK(queues().SetIncomingQos2(cid, static_cast<uint16_t>(seq % 100), seq % 3 == 0));
        if (seq % 250 == 0) {
          records::Session s;
          s.set_client_id(cid);
          s.set_disconnected_at_ms(seq);
          EXPECT_OK(sessions().Save(s));
        }
        if (seq % 100 == 0) {
          EXPECT_OK(retained().Set(MakeRetained(cid + "/" + std::to_string(seq % 400), "v")));
        }
      }
    });
  }
  threads.emplace_back([this] {  // a concurrent reader
    for (int i = 0; i < 200; ++i) {
      for (int t = 0; t < kThreads; ++t) {
        const std::string cid = "client-" + std::to_string(t);
        auto entries = queues().Load(cid);
        EXPECT_OK(entries);
        if (entries.ok()) {
          EXPECT_LE(entries->size(), kOps);
        }
        EXPECT_OK(queues().LoadIncomingQos2(cid));
      }
      EXPECT_OK(sessions().LoadAll());
      EXPECT_OK(retained().Match("#", 0));
    }
  });
  for (std::thread& th : threads) th.join();

  for (int t = 0; t < kThreads; ++t) {
    const std::string cid = "client-" + std::to_string(t);
    auto entries = queues().Load(cid);
    ASSERT_OK(entries);
    ASSERT_EQ(entries->size(), kOps / 2) << cid;
    uint64_t expected_seq = 1;
    for (const auto& [seq, entry] : *entries) {
      EXPECT_EQ(seq, expected_seq) << cid;
      expected_seq += 2;
    }
    auto session = sessions().Load(cid);
    ASSERT_OK(session);
    EXPECT_EQ(session->disconnected_at_ms(), kOps);
  }
  auto all = sessions().LoadAll();
  ASSERT_OK(all);
  EXPECT_EQ(all->size(), static_cast<size_t>(kThreads));
  EXPECT_EQ(retained().Count(), static_cast<size_t>(kThreads) * 4);  // seq % 400 in {0,100,200,300}
}

}  // namespace
}  // namespace shardmq::storage
