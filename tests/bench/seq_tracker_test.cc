#include "bench/seq_tracker.h"

#include <gtest/gtest.h>

namespace shardmq::bench {
namespace {

using Result = SeqTracker::Result;

TEST(SeqTrackerTest, InOrderHasNoGaps) {
  SeqTracker t;
  EXPECT_EQ(t.gaps(), 0u);
  EXPECT_EQ(t.end(), 0u);
  for (uint32_t s = 0; s < 5000; ++s) EXPECT_EQ(t.Observe(s), Result::kNew);
  EXPECT_EQ(t.distinct(), 5000u);
  EXPECT_EQ(t.gaps(), 0u);
  EXPECT_EQ(t.duplicates(), 0u);
  EXPECT_EQ(t.end(), 5000u);
}

TEST(SeqTrackerTest, CountsGapsFromTheFirstSeen) {
  SeqTracker t;
  t.Observe(10);  // a subscriber that joined late: 0..9 are not gaps
  t.Observe(11);
  t.Observe(14);
  EXPECT_EQ(t.gaps(), 2u);
  EXPECT_EQ(t.Observe(12), Result::kReordered);  // late, not lost
  EXPECT_EQ(t.gaps(), 1u);
  EXPECT_EQ(t.reordered(), 1u);
}

TEST(SeqTrackerTest, DuplicatesInsideTheWindow) {
  SeqTracker t;
  for (uint32_t s = 0; s < 100; ++s) t.Observe(s);
  EXPECT_EQ(t.Observe(99), Result::kDuplicate);
  EXPECT_EQ(t.Observe(0), Result::kDuplicate);
  EXPECT_EQ(t.duplicates(), 2u);
  EXPECT_EQ(t.distinct(), 100u);
}

TEST(SeqTrackerTest, SlidingTheWindowForgetsOldSlots) {
  SeqTracker t;
  t.Observe(0);
  // Jump by exactly a window: slot 0 now belongs to seq kWindow, which is new.
  EXPECT_EQ(t.Observe(SeqTracker::kWindow), Result::kNew);
  // 1 .. kWindow-1 are inside the window and unseen.
  EXPECT_EQ(t.Observe(1), Result::kReordered);
  EXPECT_EQ(t.Observe(1), Result::kDuplicate);
  EXPECT_EQ(t.gaps(), SeqTracker::kWindow - 2);
  // A big jump clears everything.
  EXPECT_EQ(t.Observe(10 * SeqTracker::kWindow), Result::kNew);
  EXPECT_EQ(t.Observe(10 * SeqTracker::kWindow - 1), Result::kReordered);
}

TEST(SeqTrackerTest, OlderThanTheWindowCountsAsStaleDuplicate) {
  SeqTracker t;
  t.Observe(5000);
  EXPECT_EQ(t.Observe(5000 - SeqTracker::kWindow - 1), Result::kDuplicate);
  EXPECT_EQ(t.stale(), 1u);
  EXPECT_EQ(t.duplicates(), 1u);
}

TEST(SeqTrackerTest, ReorderBelowTheFirstMovesTheStart) {
  SeqTracker t;
  t.Observe(3);
  EXPECT_EQ(t.Observe(1), Result::kReordered);
  EXPECT_EQ(t.gaps(), 1u);  // 2 is missing
  EXPECT_EQ(t.Observe(2), Result::kReordered);
  EXPECT_EQ(t.gaps(), 0u);
}

}  // namespace
}  // namespace shardmq::bench
