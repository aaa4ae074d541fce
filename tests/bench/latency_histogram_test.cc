#include "bench/latency_histogram.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace shardmq::bench {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 0u);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 50u);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 99u);
  EXPECT_EQ(h.ValueAtQuantile(1.0), 100u);
  EXPECT_EQ(h.ValueAtQuantile(0.0), 1u);
}

TEST(LatencyHistogramTest, BucketsTileTheRangeWithoutGaps) {
  // Every bucket starts where the previous one ended, and a value maps to the bucket holding it.
  const size_t last = LatencyHistogram::BucketIndex(LatencyHistogram::kMaxValue);
  for (size_t i = 1; i <= last; ++i) {
    EXPECT_EQ(LatencyHistogram::BucketLow(i),
              LatencyHistogram::BucketLow(i - 1) + LatencyHistogram::BucketWidth(i - 1))
        << i;
    EXPECT_EQ(LatencyHistogram::BucketIndex(LatencyHistogram::BucketLow(i)), i);
    EXPECT_EQ(LatencyHistogram::BucketIndex(LatencyHistogram::BucketLow(i) +
                                            LatencyHistogram::BucketWidth(i) - 1),
              i);
  }
}

TEST(LatencyHistogramTest, LargeValuesWithinOnePercent) {
  LatencyHistogram h;
  for (uint64_t v : {uint64_t{1'000}, uint64_t{123'456}, uint64_t{987'654'321}}) {
    LatencyHistogram one;
    one.Record(v);
    one.Record(v + v / 3);  // the quantile answer is a bucket middle, not clamped to max here
    const double got = static_cast<double>(one.ValueAtQuantile(0.5));
    EXPECT_NEAR(got, static_cast<double>(v), static_cast<double>(v) / 128.0) << v;
  }
}

TEST(LatencyHistogramTest, PercentilesOfAUniformSpread) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100'000; ++v) h.Record(v * 1000);  // 1 us .. 100 ms in ns
  EXPECT_NEAR(static_cast<double>(h.ValueAtQuantile(0.5)), 50e6, 50e6 / 128);
  EXPECT_NEAR(static_cast<double>(h.ValueAtQuantile(0.99)), 99e6, 99e6 / 128);
  EXPECT_NEAR(static_cast<double>(h.ValueAtQuantile(0.999)), 99.9e6, 99.9e6 / 128);
}

TEST(LatencyHistogramTest, ClampsHugeValues) {
  LatencyHistogram h;
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.max(), LatencyHistogram::kMaxValue);
  EXPECT_EQ(h.ValueAtQuantile(0.5), LatencyHistogram::kMaxValue);
}

TEST(LatencyHistogramTest, MergeAddsCountsAndExtremes) {
  LatencyHistogram a, b;
  a.Record(10);
  a.Record(20);
  b.Record(5);
  b.Record(1'000'000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 4u);
  EXPECT_EQ(a.min(), 5u);
  EXPECT_EQ(a.max(), 1'000'000u);
  EXPECT_EQ(a.ValueAtQuantile(0.5), 10u);
  LatencyHistogram empty;
  a.Merge(empty);
  EXPECT_EQ(a.count(), 4u);
  empty.Merge(a);
  EXPECT_EQ(empty.min(), 5u);
}

}  // namespace
}  // namespace shardmq::bench
