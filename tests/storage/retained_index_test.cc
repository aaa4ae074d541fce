// Tests of storage::RetainedIndex (storage/retained_index.h).
#include "storage/retained_index.h"

#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/storage/storage_test_util.h"
#include "tests/support/test_util.h"

namespace shardmq::storage {
namespace {

using fixtures::EqualsProto;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

records::Message Retained(const std::string& topic, const std::string& payload,
                          uint64_t expiry_at_ms = 0) {
  records::Message m;
  m.set_topic(topic);
  m.set_payload(payload);
  m.set_qos(1);
  m.set_retain(true);
  m.set_expiry_at_ms(expiry_at_ms);
  return m;
}

class RetainedIndexTest : public ::testing::Test {
 protected:
  explicit RetainedIndexTest(RetainedIndex::Limits limits = {}) : index_(limits) {}

  std::vector<std::string> MatchTopics(std::string_view filter, int64_t now_ms = 0,
                                       std::vector<std::string>* expired = nullptr) {
    std::vector<std::string> out;
    for (const records::Message& m : index_.Match(filter, now_ms, expired)) {
      out.push_back(m.topic());
    }
    return out;
  }

  RetainedIndex index_;
};

TEST_F(RetainedIndexTest, SetAndMatchExactTopic) {
  const records::Message m = Retained("a/b", "hello");
  ASSERT_OK(index_.Set(m));
  EXPECT_EQ(index_.Count(), 1u);
  EXPECT_THAT(index_.Match("a/b", 0), ElementsAre(EqualsProto(m)));
  EXPECT_THAT(MatchTopics("a/c"), IsEmpty());
  EXPECT_THAT(MatchTopics("a"), IsEmpty());
  EXPECT_THAT(MatchTopics("a/b/c"), IsEmpty());
}

TEST_F(RetainedIndexTest, SetReplacesSameTopic) {
  ASSERT_OK(index_.Set(Retained("a/b", "old")));
  const records::Message newer = Retained("a/b", "new");
  ASSERT_OK(index_.Set(newer));
  EXPECT_EQ(index_.Count(), 1u);
  EXPECT_THAT(index_.Match("a/b", 0), ElementsAre(EqualsProto(newer)));
}

TEST_F(RetainedIndexTest, EmptyPayloadClears) {
  ASSERT_OK(index_.Set(Retained("a/b", "x")));
  ASSERT_OK(index_.Set(Retained("a/c", "y")));
  ASSERT_OK(index_.Set(Retained("a/b", "")));  // MQTT s3.3.1.3
  EXPECT_EQ(index_.Count(), 1u);
  EXPECT_THAT(MatchTopics("a/b"), IsEmpty());
  EXPECT_THAT(MatchTopics("a/#"), ElementsAre("a/c"));
  // Clearing a topic that holds nothing is OK and stores nothing.
  EXPECT_OK(index_.Set(Retained("never/set", "")));
  EXPECT_EQ(index_.Count(), 1u);
}

TEST_F(RetainedIndexTest, MatchWildcardsAndTheDollarRule) {
  for (const char* topic : {"a", "a/b", "a/c", "a/b/c", "b", "/a", "a/", "$SYS/x", "$SYS"}) {
    ASSERT_OK(index_.Set(Retained(topic, "v")));
  }
  ASSERT_EQ(index_.Count(), 9u);
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
  EXPECT_THAT(MatchTopics("+/a"), ElementsAre("/a"));  // an empty first level is a level
  // '$' topics are matched by filters that name the '$' level.
  EXPECT_THAT(MatchTopics("$SYS/#"), UnorderedElementsAre("$SYS", "$SYS/x"));
  EXPECT_THAT(MatchTopics("$SYS/+"), ElementsAre("$SYS/x"));
  EXPECT_THAT(MatchTopics("$SYS"), ElementsAre("$SYS"));
}

TEST_F(RetainedIndexTest, ExpiredAreSkippedRemovedAndReported) {
  ASSERT_OK(index_.Set(Retained("t/expiring", "e", /*expiry_at_ms=*/1000)));
  ASSERT_OK(index_.Set(Retained("t/later", "l", /*expiry_at_ms=*/5000)));
  ASSERT_OK(index_.Set(Retained("t/forever", "f", /*expiry_at_ms=*/0)));
  ASSERT_OK(index_.Set(Retained("u/expiring", "u", /*expiry_at_ms=*/1000)));
  ASSERT_EQ(index_.Count(), 4u);

  std::vector<std::string> expired;
  EXPECT_THAT(MatchTopics("t/#", 999, &expired),
              UnorderedElementsAre("t/expiring", "t/later", "t/forever"));
  EXPECT_THAT(expired, IsEmpty());
  // Expired at exactly expiry_at_ms: not returned, removed and reported.
  EXPECT_THAT(MatchTopics("t/#", 1000, &expired), UnorderedElementsAre("t/later", "t/forever"));
  EXPECT_THAT(expired, ElementsAre("t/expiring"));
  EXPECT_EQ(index_.Count(), 3u);
  // Removed for good: an earlier clock does not bring it back.
  EXPECT_THAT(MatchTopics("t/expiring", 0), IsEmpty());
  // Only matched messages are looked at: u/expiring is still there until a filter reaches it,
  // and `expired` is appended to, not replaced.
  EXPECT_THAT(MatchTopics("u/#", 2000, &expired), IsEmpty());
  EXPECT_THAT(expired, ElementsAre("t/expiring", "u/expiring"));
  EXPECT_EQ(index_.Count(), 2u);
  // Without an `expired` vector expired messages are still removed.
  EXPECT_THAT(MatchTopics("t/#", 6000), ElementsAre("t/forever"));
  EXPECT_EQ(index_.Count(), 1u);
  // expiry_at_ms 0 never expires.
  EXPECT_THAT(MatchTopics("t/#", std::numeric_limits<int64_t>::max()), ElementsAre("t/forever"));
}

TEST_F(RetainedIndexTest, FarFutureExpiryIsNotExpired) {
  ASSERT_OK(index_.Set(Retained("t", "v", std::numeric_limits<uint64_t>::max())));
  EXPECT_THAT(MatchTopics("t", std::numeric_limits<int64_t>::max()), ElementsAre("t"));
  EXPECT_THAT(MatchTopics("t", -1), ElementsAre("t"));
}

TEST_F(RetainedIndexTest, ReplaceResetsExpiry) {
  ASSERT_OK(index_.Set(Retained("t", "old", /*expiry_at_ms=*/1000)));
  ASSERT_OK(index_.Set(Retained("t", "new", /*expiry_at_ms=*/0)));
  EXPECT_THAT(index_.Match("t", 2000), ElementsAre(EqualsProto(Retained("t", "new"))));
}

TEST_F(RetainedIndexTest, UnlimitedByDefault) {
  for (int i = 0; i < 1000; ++i) ASSERT_OK(index_.Set(Retained("t/" + std::to_string(i), "v")));
  ASSERT_OK(index_.Set(Retained("big", std::string(1 << 20, 'x'))));
  EXPECT_EQ(index_.Count(), 1001u);
}

class LimitedRetainedIndexTest : public RetainedIndexTest {
 protected:
  LimitedRetainedIndexTest()
      : RetainedIndexTest(RetainedIndex::Limits{.max_messages = 2, .max_payload_bytes = 4}) {}
};

TEST_F(LimitedRetainedIndexTest, NewTopicBeyondLimitIsResourceExhausted) {
  ASSERT_OK(index_.Set(Retained("a", "1")));
  ASSERT_OK(index_.Set(Retained("b", "2")));
  const absl::Status st = index_.Set(Retained("c", "3"));
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_EQ(index_.Count(), 2u);
  EXPECT_THAT(MatchTopics("#"), UnorderedElementsAre("a", "b"));
}

TEST_F(LimitedRetainedIndexTest, ReplaceAndClearAllowedAtLimit) {
  ASSERT_OK(index_.Set(Retained("a", "1")));
  ASSERT_OK(index_.Set(Retained("b", "2")));
  ASSERT_OK(index_.Set(Retained("a", "1b")));  // replacing does not grow the index
  EXPECT_THAT(index_.Match("a", 0), ElementsAre(EqualsProto(Retained("a", "1b"))));
  ASSERT_OK(index_.Set(Retained("c", "")));  // clearing a missing topic is not a new topic
  ASSERT_OK(index_.Set(Retained("b", "")));
  EXPECT_EQ(index_.Count(), 1u);
  ASSERT_OK(index_.Set(Retained("c", "3")));
  EXPECT_THAT(MatchTopics("#"), UnorderedElementsAre("a", "c"));
}

TEST_F(LimitedRetainedIndexTest, PayloadLimit) {
  ASSERT_OK(index_.Set(Retained("a", "1234")));  // exactly the limit
  const absl::Status st = index_.Set(Retained("a", "12345"));
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  // Nothing changed.
  EXPECT_THAT(index_.Match("a", 0), ElementsAre(EqualsProto(Retained("a", "1234"))));
}

TEST_F(LimitedRetainedIndexTest, ExpiredRemovalFreesRoom) {
  ASSERT_OK(index_.Set(Retained("a", "1", /*expiry_at_ms=*/100)));
  ASSERT_OK(index_.Set(Retained("b", "2")));
  EXPECT_THAT(MatchTopics("#", 100), ElementsAre("b"));
  EXPECT_OK(index_.Set(Retained("c", "3")));
  EXPECT_EQ(index_.Count(), 2u);
}

// Meant for the tsan preset; under a normal build it checks the end state.
TEST_F(RetainedIndexTest, ConcurrentSetAndMatch) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 500; ++i) {
        EXPECT_OK(index_.Set(Retained("t" + std::to_string(t) + "/" + std::to_string(i % 50), "v",
                                      i % 7 == 0 ? 1 : 0)));
        if (i % 10 == 0) index_.Match("#", 0);
      }
    });
  }
  threads.emplace_back([this] {
    for (int i = 0; i < 100; ++i) index_.Match("+/+", 2);
  });
  for (std::thread& th : threads) th.join();
  EXPECT_LE(index_.Count(), 200u);
}

}  // namespace
}  // namespace shardmq::storage
